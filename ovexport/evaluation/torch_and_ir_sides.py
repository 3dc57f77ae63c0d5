"""The two sides of a comparison, answering the same questions the same way.

- ``TorchSide``: the model family's PyTorch reference (fp32 arithmetic by default): greedy answers and the
  next-token log-probabilities of each answer token;
- ``IRSide``: the IRs of a bundle (or of the ``compressed_ir`` artifact, with the checkpoint's
  tokenizer and config) through the real runtime: ``Pipeline.chat`` answers greedily (image preprocessing, prompt,
  streaming detokenizer), and ``teacher_force`` runs the reference's answer tokens through the stateful LLM
  in one prefill to read the log-probabilities at every answer position.

Both give ``Answer``s; an answer's ``tokens`` end with the EOS when generation ended on it, and
``logp[i]`` is the log-softmax of the logits that predicted ``tokens[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ovexport.models import positions
from ovexport.parts import REFERENCE_PARTS

from .evalset import EvalItem
from .logprobs import log_softmax


@dataclass
class Answer:
    prompt_ids: np.ndarray
    tokens: list[int]
    text: str
    logp: np.ndarray | None = None   # [len(tokens), V] float32
    features: list | None = None     # IR side: the image features the answer used (teacher forcing reuses them)


def _msgs(item: EvalItem) -> list[dict[str, str]]:
    return [{"role": "user", "content": item.question}]


class TorchSide:
    """``family.reference(ckpt)``; parts load on first use and are freed by ``close``."""

    def __init__(self, ckpt: Path, family, dtype: Any = None):
        kw = {} if dtype is None else {"dtype": dtype}
        self.ref = family.reference(Path(ckpt), **kw)

    def answer(self, item: EvalItem, max_new_tokens: int) -> Answer:
        prepared = self.ref.prepare(_msgs(item), item.image)
        tokens, step_logits = self.ref.greedy(prepared, max_new_tokens)
        logp = log_softmax(np.stack(step_logits[:len(tokens)])).astype(np.float32)
        text = self.ref.tokenizer.decode(tokens, skip_special_tokens=True)
        return Answer(np.asarray(prepared.input_ids, np.int64), [int(t) for t in tokens], text, logp)

    def close(self) -> None:
        for part in REFERENCE_PARTS:
            self.ref.release(part)
        from ovexport.util.memory import release_memory
        release_memory()


class IRSide:
    """The IRs in ``ir_dir`` with the runtime adapter of ``meta_dir`` (a bundle: itself; the ``compressed_ir``
    artifact: its checkpoint)."""

    def __init__(self, ir_dir: Path, meta_dir: Path, family, device: str = "CPU",
                 ov_config: dict[str, str] | None = None):
        from ovexport.runtime.ov_models import BundleModels
        from ovexport.runtime.pipeline import Pipeline

        adapter = family.runtime(Path(meta_dir))
        self.models = BundleModels(Path(ir_dir), device, ov_config, slice_logits=False, family=family,
                                   model_config=adapter.config)
        self.pipe = Pipeline(Path(ir_dir), self.models, adapter)

    def answer(self, item: EvalItem, max_new_tokens: int, with_logp: bool = False) -> Answer:
        from ovexport.runtime.generation import GenerationConfig
        from ovexport.runtime.pipeline import Conversation

        conv = Conversation(image=item.image)   # keeps the encoded image features for teacher_force
        res = self.pipe.chat(item.question, conversation=conv,
                             config=GenerationConfig.greedy(max_new_tokens=max_new_tokens))
        ans = Answer(np.asarray(res.prompt_token_ids, np.int64), [int(t) for t in res.token_ids], res.text,
                     features=conv.features)
        if with_logp:
            ans.logp = self.teacher_force(item, ans.tokens, ans.prompt_ids, ans.features)
        return ans

    def teacher_force(self, item: EvalItem, tokens: list[int], expect_prompt: np.ndarray | None = None,
                      features: list | None = None) -> np.ndarray:
        """[len(tokens), V] log-probabilities of the logits that predict each of ``tokens`` after the prompt.
        ``features``: the image features of an earlier ``answer`` to the same item (not encoded again)."""
        pipe = self.pipe
        prepared = pipe.adapter.prepare(_msgs(item), pipe.load_image(item.image))
        if expect_prompt is not None and not np.array_equal(np.asarray(prepared.input_ids), expect_prompt):
            raise ValueError(f"question {item.id}: the bundle builds another prompt than the reference "
                             "(tokenizer or prompt format differ)")
        emb = pipe.prefill_embeddings(prepared, features)
        pos = pipe.position_ids(prepared)
        if len(tokens) > 1:
            emb = np.concatenate([emb, pipe.embed_text(np.asarray([tokens[:-1]], np.int64))], axis=1)
            pos = positions.continued(pos, len(tokens) - 1)
        t = emb.shape[1]
        n_prompt = int(len(prepared.input_ids))
        self.models.reset()
        logits = self.models.lm_all_logits(np.ascontiguousarray(emb, np.float32), np.ones((1, t), np.int64),
                                           positions.batched(pos), np.zeros(1, np.int32))
        self.models.reset()
        return log_softmax(logits[0, n_prompt - 1:n_prompt - 1 + len(tokens)]).astype(np.float32)

    def close(self) -> None:
        del self.pipe, self.models
        from ovexport.util.memory import release_memory
        release_memory()
