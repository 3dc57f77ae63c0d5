"""The reference side's answers on an eval set, computed once and cached by fingerprint.

The key holds what decides the numbers: the checkpoint's content digest (or the digest of every file of the
reference bundle the runtime reads: IRs, tokenizer, configs), the eval set's content digest, the generation
length, the code that computes them and (``reference_cache.cache_key``) the versions of the libraries. Adding a
variant, rerunning a compare or comparing from another recipe of the same checkpoint reads the cache.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovexport.engine.fingerprint import digest_dir
from ovexport.bundle.layout import MANIFEST, VALIDATION
from ovexport.engine.code_digest import code_digest
from ovexport.models.registry import code_digest_of

from .evalset import EvalSet
from .reference_cache import ReferenceCache
from .torch_and_ir_sides import IRSide, TorchSide

# bundle files that describe it and are never read to answer (the card, the manifest's build record...)
DESCRIBING = frozenset({MANIFEST, VALIDATION, "README.md", "compare.json", "bench.json"})


def torch_code() -> dict:
    """The code that decides a PyTorch reference's numbers: the family's reference (import closure), this
    module's TorchSide (torch_and_ir_sides.py itself: its IRSide runs the runtime, which the PyTorch side never does) and
    log-softmax. Not the metrics (scoring.py): changing how variants are scored keeps the PyTorch reference
    (5-6 minutes on the full-size model)."""
    return {"family": code_digest_of("ovexport.evaluation.logprobs", roles=("reference",)),
            "sides": code_digest("evaluation/torch_and_ir_sides.py")}


def torch_key(ckpt: Path, evalset: EvalSet, max_new_tokens: int) -> dict:
    return {"what": "answers", "reference": "torch-fp32", "checkpoint": digest_dir(ckpt)[0],
            "evalset": evalset.digest, "max_new_tokens": int(max_new_tokens), "code": torch_code()}


def bundle_key(ir_dir: Path, evalset: EvalSet, max_new_tokens: int, ov_config: dict) -> dict:
    """A bundle reference: every file its runtime reads (IRs, tokenizer, config files), by content."""
    files = {rel: rec["hash"] for rel, rec in digest_dir(ir_dir)[1].items() if rel not in DESCRIBING}
    return {"what": "answers", "reference": "bundle", "files": files, "ov_config": dict(ov_config),
            "evalset": evalset.digest, "max_new_tokens": int(max_new_tokens),
            "code": code_digest_of("ovexport.evaluation.torch_and_ir_sides", roles=("runtime",))}


def _collect(side, evalset: EvalSet, max_new_tokens: int, progress, **kw) -> dict:
    prompts, tokens, texts, logp = [], [], [], []
    n = len(evalset.items)
    for i, item in enumerate(evalset.items):
        ans = side.answer(item, max_new_tokens, **kw)
        prompts.append(np.asarray(ans.prompt_ids, np.int64))
        tokens.append(ans.tokens)
        texts.append(ans.text)
        logp.append(np.asarray(ans.logp, np.float32))
        if progress:
            progress(i + 1, n)
    return {"prompt_ids": prompts, "tokens": tokens, "texts": texts, "logp": logp}


def _compute(family, evalset: EvalSet, max_new_tokens: int, ckpt: Path | None, bundle: Path | None,
             ov_config: dict | None, progress: Callable[[int, int], None] | None) -> dict:
    if bundle is not None:
        side: IRSide | TorchSide = IRSide(bundle, bundle, family, ov_config=ov_config)
        kw = {"with_logp": True}
    else:
        assert ckpt is not None
        side, kw = TorchSide(ckpt, family), {}
    try:
        return _collect(side, evalset, max_new_tokens, progress, **kw)
    finally:
        side.close()


class ReferenceWorker:
    """The reference side in its own process (``engine.worker.Worker(ReferenceWorker)``): the PyTorch model
    (or reference bundle) lives and dies there, so the process that later loads the variants' IRs never
    holds both. ``compute`` writes into the cache and returns nothing (the parent reads the entry), or
    returns the answers when there is no cache."""

    def compute(self, cache_root: Path | None, key: dict, family, evalset: EvalSet, max_new_tokens: int,
                ckpt: Path | None, bundle: Path | None, ov_config: dict | None,
                progress: Callable[[int, int], None] | None = None) -> dict | None:
        values = _compute(family, evalset, max_new_tokens, ckpt, bundle, ov_config, progress)
        if cache_root is None:
            return values
        ReferenceCache(cache_root).put(key, values)
        return None


def reference_answers(cache: ReferenceCache, family, evalset: EvalSet, max_new_tokens: int, *,
                      ckpt: Path | None = None, bundle: Path | None = None, ov_config: dict | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      isolate: bool = False) -> tuple[dict, dict, bool]:
    """``(answers, key, hit)``: PyTorch (``ckpt``) or a bundle's IRs (``bundle``) answering every question.
    ``isolate=True`` computes a missing reference in a subprocess (``ReferenceWorker``); its peak memory is
    then in ``cache.compute_peak_rss_bytes``."""
    key = (bundle_key(bundle, evalset, max_new_tokens, ov_config or {}) if bundle is not None
           else torch_key(ckpt, evalset, max_new_tokens))
    answers = cache.get(key)
    hit = answers is not None
    if hit:
        cache.hits += 1
    else:
        cache.misses += 1
        if isolate:
            from ovexport.engine.worker import Worker

            with Worker(ReferenceWorker, name="reference") as worker:
                answers = worker.call("compute", cache.root if cache.enabled else None, key, family, evalset,
                                      max_new_tokens, ckpt, bundle, ov_config, progress=progress)
                cache.compute_peak_rss_bytes = worker.peak_rss_bytes
            if answers is None:
                answers = cache.get(key)
            if answers is None:
                raise RuntimeError(f"the reference process wrote no cache entry under {cache.root}")
        else:
            answers = _compute(family, evalset, max_new_tokens, ckpt, bundle, ov_config, progress)
            cache.put(key, answers)
    answers["tokens"] = [[int(t) for t in toks] for toks in answers["tokens"]]
    return answers, key, hit
