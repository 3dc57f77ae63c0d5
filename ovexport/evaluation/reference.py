"""The reference side's answers on an eval set, computed once and cached by fingerprint.

The key holds what decides the numbers: the checkpoint's content digest (or the reference bundle's IR
digest), the eval set's content digest, the generation length, and the code that computes them. Adding a
variant, rerunning a compare or comparing from another recipe of the same checkpoint reads the cache.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovexport.engine.fingerprint import digest_dir
from ovexport.steps.common import code_digest

from .evalset import EvalSet
from .reference_cache import ReferenceCache
from .sides import IRSide, TorchSide

# the code that decides a reference's numbers: model code, how the sides run, log-softmax; a bundle reference
# also runs through the runtime. Not the metrics (scoring.py): changing how variants are scored keeps the
# PyTorch reference (5-6 minutes on the full-size model).
TORCH_REFERENCE_CODE = ("models", "evaluation/sides.py", "evaluation/logprobs.py")
BUNDLE_REFERENCE_CODE = TORCH_REFERENCE_CODE + ("runtime",)


def torch_key(ckpt: Path, evalset: EvalSet, max_new_tokens: int) -> dict:
    return {"what": "answers", "reference": "torch-fp32", "checkpoint": digest_dir(ckpt)[0],
            "evalset": evalset.digest, "max_new_tokens": int(max_new_tokens),
            "code": code_digest(*TORCH_REFERENCE_CODE)}


def bundle_key(ir_dir: Path, evalset: EvalSet, max_new_tokens: int, ov_config: dict, family) -> dict:
    from ovexport.bundle.layout import ir_files
    from ovexport.parts import family_ir_files

    files = [f for xml in family_ir_files(family) for f in ir_files(xml)]
    irs = {f: digest_dir(Path(ir_dir) / f)[0] for f in files}
    return {"what": "answers", "reference": "bundle", "irs": irs, "ov_config": dict(ov_config),
            "evalset": evalset.digest, "max_new_tokens": int(max_new_tokens),
            "code": code_digest(*BUNDLE_REFERENCE_CODE)}


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
    key = (bundle_key(bundle, evalset, max_new_tokens, ov_config or {}, family) if bundle is not None
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
