"""openvino.genai's ``VLMPipeline`` on a bundle: the runtime the OpenVINO world deploys (its C++ core, its Python
and JavaScript bindings, OpenVINO Model Server), driven the way ovexport's own runtime is driven, so that the
two can be compared answer for answer (tests), checked end to end (``ovexport validate --runtime genai``) and
timed side by side (``ovexport bench --baseline genai``).

Token ids come from a streamer (``VLMPipeline`` returns text only); timings are taken here, on the wall clock,
the same way ``runtime.bench_harness`` times ours: time to first token from the call, decode rate over the tokens after
the first.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ovexport.errors import BundleError, InputError, one_line


def _genai():
    """``openvino_genai``, checked to pair with the installed openvino (X.Y.Z.0 needs X.Y.Z)."""
    import openvino as ov

    try:
        import openvino_genai as og
    except ImportError:
        raise InputError("openvino-genai is not installed",
                         fix=f"pip install openvino-genai=={ov.__version__.split('-')[0]}.0") from None
    want = ov.__version__.split("-")[0]
    have = og.__version__.split("-")[0]
    if not have.startswith(want):
        raise InputError(f"openvino-genai {have} does not pair with openvino {want}",
                         fix=f"pip install openvino-genai=={want}.0")
    return og


@dataclass
class GenaiAnswer:
    token_ids: list[int]                  # the new tokens, without the EOS generation stopped on
    text: str
    timings: dict[str, float] = field(default_factory=dict)   # ttft_s, decode_s, total_s, new_tokens


def image_tensor(image: Any):
    """A PIL image (or a path) as the uint8 [1, H, W, 3] tensor ``VLMPipeline`` takes."""
    import openvino as ov
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            image = im.convert("RGB")
    return ov.Tensor(np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)[None]))


class GenaiPipeline:
    """``VLMPipeline(bundle, device, **ov_config)`` with greedy, token-id-reporting ``generate`` and chat turns."""

    def __init__(self, bundle: str | Path, device: str = "CPU", ov_config: Mapping[str, str] | None = None,
                 prefix_caching: bool = True):
        """``prefix_caching=False`` turns off genai's prefix cache (on by default: a request whose prompt starts
        like an earlier one's re-uses that KV cache, so a repeated request times a cache hit, not a prefill)."""
        og = _genai()
        self.og = og
        t0 = time.perf_counter()
        kw = dict(ov_config or {})
        if not prefix_caching:
            sc = og.SchedulerConfig()
            sc.enable_prefix_caching = False
            kw["scheduler_config"] = sc
        try:
            self.pipe = og.VLMPipeline(str(bundle), device, **kw)
        except RuntimeError as e:
            raise BundleError(f"openvino.genai's VLMPipeline cannot load {bundle} ({one_line(e)})",
                              fix="rebuild the bundle with this ovexport (`ovexport run RECIPE`), or upgrade "
                                  "openvino-genai to the version the model card names") from None
        self.load_s = time.perf_counter() - t0
        gen = self.pipe.get_generation_config()
        self.eos_ids = {int(t) for t in (getattr(gen, "stop_token_ids", None) or ())} | {int(gen.eos_token_id)}

    def config(self, max_new_tokens: int, min_new_tokens: int = 0):
        cfg = self.og.GenerationConfig()
        cfg.max_new_tokens = int(max_new_tokens)
        cfg.min_new_tokens = int(min_new_tokens)
        cfg.do_sample = False
        return cfg

    def generate(self, prompt: str, image: Any = None, max_new_tokens: int = 64,
                 min_new_tokens: int = 0) -> GenaiAnswer:
        """Greedy answer to ``prompt`` about ``image`` (in a chat: the next turn, ``image`` only on the first)."""
        og = self.og
        tokens: list[int] = []
        first: list[float] = []

        class Collect(og.StreamerBase):
            def write(self, token):
                if not first:
                    first.append(time.perf_counter())
                tokens.extend([int(t) for t in token] if isinstance(token, (list, tuple)) else [int(token)])
                return og.StreamingStatus.RUNNING

            def end(self):
                pass

        images = [image_tensor(image)] if image is not None else []
        t0 = time.perf_counter()
        result = self.pipe.generate(prompt, images=images, generation_config=self.config(max_new_tokens,
                                                                                         min_new_tokens),
                                    streamer=Collect())
        t1 = time.perf_counter()
        ttft = (first[0] if first else t1) - t0
        tokens = [t for t in tokens if t not in self.eos_ids]   # genai streams the EOS it stopped on
        perf = result.perf_metrics
        vision = perf.get_vision_encoding_duration().mean / 1e3 if images else 0.0   # genai's own clock, ms
        decode = t1 - t0 - ttft
        return GenaiAnswer(token_ids=tokens, text=result.texts[0],
                           timings={"vision_s": vision, "prefill_s": max(ttft - vision, 0.0), "ttft_s": ttft,
                                    "decode_s": decode, "total_s": t1 - t0, "new_tokens": len(tokens),
                                    "prompt_tokens": int(perf.get_num_input_tokens()),
                                    "image_pieces": int(perf.get_total_image_slice_count()) if images else 0,
                                    "decode_tokens_per_s": (len(tokens) - 1) / decode if decode > 0 else 0.0})

    def start_chat(self) -> None:
        self.pipe.start_chat()

    def finish_chat(self) -> None:
        self.pipe.finish_chat()


def genai_prepare(family, adapter, msgs, image):
    """What ``VLMPipeline`` feeds the model for the chat ``msgs`` about ``image``: the family's ``genai_prepare``
    where genai prepares it otherwise than the model does, else ``adapter.prepare``."""
    hook = getattr(family, "genai_prepare", None)
    return hook(adapter, msgs, image) if hook is not None else adapter.prepare(msgs, image)


class GenaiServer:
    """``bench --baseline genai``: ``VLMPipeline`` on the same bundle, in its own process (``engine.worker``), with
    the same OpenVINO config; ``run(width, height, n)`` answers bench's question about its synthetic image of that
    size with exactly ``n`` greedy tokens, and returns the figures bench reads (vision: genai's own
    vision-encoding duration; TTFT and decode on the wall clock, as ours). Bench asks the same question about the
    same image every run: genai's prefix cache is off, or runs after the first would re-use the first's KV cache
    and time a cache hit (~0.1 s for a 612-token prompt, ``benchmarks/genai_prefill.py``) instead of a prefill."""

    def __init__(self, bundle: str, device: str, config: dict):
        self.pipe = GenaiPipeline(bundle, device, config, prefix_caching=False)

    def load_seconds(self) -> float:
        return self.pipe.load_s

    def run(self, width: int, height: int, max_new_tokens: int) -> dict:
        from .bench_inputs import QUESTION, synthetic_image

        answer = self.pipe.generate(QUESTION, synthetic_image(width, height), max_new_tokens, max_new_tokens)
        return {"tokens": answer.token_ids, "timings": answer.timings, "encoder_calls": None}
