"""The published OpenVINO notebooks' way of running a VLM, over a bundle's own IRs: the baseline of
``ovexport bench --baseline notebook``.

What the model's openvino_notebooks chatbot notebook (its ``OvModel...`` helper class) does, and
what this module reproduces so that both are timed side by side on the same machine, IRs and OpenVINO config:

- every image piece goes through the image encoder on its own, one call per piece (ours: same-size pieces in
  one call);
- the language model returns logits for the whole sequence (ours: the graph is cut to the last position);
- transformers' ``generate`` drives the stateful OpenVINO model through a small ``GenerationMixin`` /
  ``PreTrainedModel`` wrapper (ours: a numpy loop), torch tensors in and out of every step.

The prompt and the image preprocessing are the model family's runtime adapter's, the same as ours (the notebook
runs the model's own processing code), and the IRs and OpenVINO config are the same, so the figures differ
only by the three points above. ``bench`` runs the baseline in its own process (``NotebookServer`` in an
``engine.worker.Worker``, with a pipeline of its own whose LLM keeps every position's logits): each process
holds one set of compiled models, and each reports its own peak memory.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .prefill import piece_alone


def _wrapper_class():
    """``NotebookLM``: built on first use (transformers and torch are imported only by the baseline)."""
    import torch
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class NotebookLM(PreTrainedModel, GenerationMixin):
        """The stateful OpenVINO LLM behind transformers' ``generate`` (the notebook's
        ``OvModelForCausalLMWithEmb``): the first call takes ``inputs_embeds`` (text and image features), later
        calls take the new token's id, embedded by the text-embeddings model; the KV cache lives in the
        model's state, so generate only has to tell a first call from the next ones (``continuing``)."""

        config_class = PretrainedConfig
        main_input_name = "input_ids"
        _is_stateful = True
        _supports_cache_class = False

        def __init__(self, config, request, embed, ordered_inputs):
            super().__init__(config)
            self.request, self.embed, self.inputs = request, embed, ordered_inputs
            self.past_len = 0
            self.forward_ends: list[float] = []

        @property
        def device(self):  # no torch parameters: generate asks where its tensors go
            return torch.device("cpu")

        @property
        def dtype(self):
            return torch.float32

        def can_generate(self) -> bool:  # noqa: D401
            return True

        def _supports_default_dynamic_cache(self) -> bool:
            return False

        def forward(self, input_ids=None, attention_mask=None, continuing=False, inputs_embeds=None, **kwargs):
            if not continuing:  # a new prompt: the state starts empty
                self.request.reset_state()
                self.past_len = 0
            if inputs_embeds is None:
                inputs_embeds = self.embed(input_ids.numpy())
            elif isinstance(inputs_embeds, torch.Tensor):
                inputs_embeds = inputs_embeds.numpy()
            b, t = inputs_embeds.shape[:2]
            feed = {
                "inputs_embeds": np.ascontiguousarray(inputs_embeds, dtype=np.float32),
                "attention_mask": np.ones((b, self.past_len + t), dtype=np.int64),
                "position_ids": np.broadcast_to(np.arange(self.past_len, self.past_len + t, dtype=np.int64),
                                                (b, t)).copy(),
                "beam_idx": np.arange(b, dtype=np.int32),
            }
            self.request.infer({k: feed[k] for k in self.inputs})
            self.past_len += t
            logits = torch.from_numpy(self.request.get_tensor("logits").data.copy())  # [B, T, V]: every position
            self.forward_ends.append(time.perf_counter())
            return CausalLMOutputWithPast(logits=logits)

        def prepare_inputs_for_generation(self, input_ids, continuing=False, inputs_embeds=None, **kwargs):
            if continuing:  # decoding: only the last token, embedded in forward
                return {"input_ids": input_ids[:, -1:], "continuing": True}
            return {"inputs_embeds": inputs_embeds, "continuing": False}

        def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False,
                                                num_new_tokens=1):
            model_kwargs["continuing"] = True
            model_kwargs.pop("inputs_embeds", None)
            return model_kwargs

        def _reorder_cache(self, past_key_values, beam_idx):
            return past_key_values

    return NotebookLM


class NotebookRunner:
    """``NotebookRunner(pipe)``: answers like the notebook, with a pipeline loaded with ``slice_logits=False``
    (its LLM returns every position's logits). ``run(question, image, n)`` returns the same timings keys as
    ``Pipeline.chat`` (``vision_s``, ``prefill_s``, ``ttft_s``, ``decode_tokens_per_s``, ``new_tokens``,
    ``prompt_tokens``) and the generated ids."""

    def __init__(self, pipe: Any):
        from transformers import GenerationConfig as HFGenerationConfig, PretrainedConfig

        models = pipe.models
        if models.sliced_logits:
            raise ValueError("the notebook baseline needs whole-sequence logits: load with slice_logits=False")
        self.pipe = pipe
        self.lm = models.lm
        request = self.lm.create_infer_request()
        names = [p.get_any_name() for p in self.lm.inputs]
        scale = np.float32(pipe.adapter.embed_scale)

        def embed(ids: np.ndarray) -> np.ndarray:
            return models.embed(ids) * scale

        cfg = PretrainedConfig(is_decoder=True, vocab_size=int(pipe.adapter.config.vocab_size))
        self.model = _wrapper_class()(cfg, request, embed, names)
        self.model.eval()
        eos = sorted(pipe.eos_ids)
        self.gen_config = HFGenerationConfig(do_sample=False, num_beams=1, eos_token_id=eos,
                                             pad_token_id=int(pipe.tokenizer.pad_id), bos_token_id=None)
        self.calls = {"image": 0}

    def encode_images(self, prepared) -> list[np.ndarray]:
        """One encoder call per image piece, as the notebook's ``get_vision_embedding`` loop (each piece batched
        alone by the family's adapter)."""
        out = []
        for px in prepared.pixel_values:
            batch = piece_alone(self.pipe.adapter, prepared, px)
            self.calls["image"] += 1
            out.append(self.pipe.models.encode_images(batch.inputs)[0])
        return out

    def run(self, question: str, image: Any, max_new_tokens: int) -> dict:
        import torch

        t0 = time.perf_counter()
        prepared = self.pipe.adapter.prepare([{"role": "user", "content": question}], image)
        tv = time.perf_counter()
        feats = self.encode_images(prepared) if len(prepared.pixel_values) else None
        vision_s = time.perf_counter() - tv
        embeds = self.pipe.prefill_embeddings(prepared, feats)
        self.model.forward_ends = []
        t_gen = time.perf_counter()
        self.gen_config.max_new_tokens = self.gen_config.min_new_tokens = max_new_tokens
        with torch.no_grad():  # scoped: a global switch would break training later in this process
            out = self.model.generate(inputs_embeds=torch.from_numpy(embeds),
                                      attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                      generation_config=self.gen_config)
        ends = self.model.forward_ends
        tokens = [int(t) for t in out[0].tolist()]
        n = len(tokens)
        # the first forward is the prefill; token k comes out of forward k. The last token is chosen after the
        # last forward, so decode time runs from the first forward's end to the last forward's end: (n-1) steps.
        timings = {"vision_s": vision_s, "prefill_s": ends[0] - t_gen, "ttft_s": ends[0] - t0,
                   "new_tokens": n, "prompt_tokens": int(len(prepared.input_ids))}
        if n > 1 and len(ends) >= n:
            timings["decode_tokens_per_s"] = (n - 1) / (ends[n - 1] - ends[0])
        return {"tokens": tokens, "timings": timings}


class NotebookServer:
    """The baseline as ``bench`` runs it, in its own process (``Worker(NotebookServer, bundle, device,
    config)``): loads the bundle with whole-sequence logits, then answers ``run(width, height, n)`` on
    ``bench``'s synthetic image of that size."""

    def __init__(self, bundle: str, device: str, config: dict):
        from .pipeline import Pipeline

        pipe = Pipeline.load(bundle, device=device, ov_config=config, slice_logits=False)
        self.compile_s = pipe.load_s
        self.runner = NotebookRunner(pipe)

    def load_seconds(self) -> float:
        return self.compile_s

    def run(self, width: int, height: int, max_new_tokens: int) -> dict:
        from .bench_inputs import QUESTION, synthetic_image

        calls = self.runner.calls["image"]
        out = self.runner.run(QUESTION, synthetic_image(width, height), max_new_tokens)
        out["encoder_calls"] = self.runner.calls["image"] - calls
        return out

