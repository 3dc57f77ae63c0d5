"""``Pipeline.load(bundle).chat(...)``: the Python API the CLI, the web app and the benchmark share.

One-shot::

    pipe = Pipeline.load("dist/my-model-int4/1.0.0")
    pipe.chat("What is in the image?", image="cat.jpg", config=GenerationConfig.sampling(pipe.adapter.generation_presets),
              on_text=lambda t: print(t, end="", flush=True))

Multi-turn (the image is encoded once per conversation; every turn rebuilds the whole prompt, as the
original model's ``chat`` does; when the LLM's KV cache still holds the conversation so far (the last turn's prompt
and answer, which the new prompt starts with), only the new tokens are prefilled, as openvino.genai's chat mode and
prefix cache do (the cache is cut back to the ids the new prompt shares, where the answer's text re-tokenizes
otherwise); ``ChatResult.timings["reused_tokens"]`` says how many positions came from the cache)::

    conv = Conversation(image="cat.jpg")
    pipe.chat("What is it?", conversation=conv)
    pipe.chat("What colour is it?", conversation=conv)

Streaming without a callback: ``for piece in pipe.stream(...)``; ``.result`` of the stream is the
``ChatResult`` once it is exhausted (closing it early stops generation).
"""
from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ovexport.bundle.layout import MANIFEST
from ovexport.errors import BundleError, InputError
from ovexport.models.registry import family_for, get_family

from .generation import Decoder, GenerationConfig
from .ov_models import BundleModels
from .prefill import encode_pieces, prefill_embeddings

__all__ = ["Pipeline", "Conversation", "ChatResult", "ChatStream", "default_cache_dir"]


@dataclass
class ChatResult:
    prompt_token_ids: list[int]
    token_ids: list[int]        # new tokens only (with the EOS when generation ended on it)
    text: str                   # the answer, special tokens skipped
    timings: dict[str, float] = field(default_factory=dict)
    score: float | None = None  # beam search: length-normalised log-prob score of the returned beam
    finish_reason: str = ""     # "eos", "length", "stop_string", "closed"

    def to_json(self) -> dict:
        return {"prompt_token_ids": self.prompt_token_ids, "token_ids": self.token_ids, "text": self.text}


class Conversation:
    """Messages of one chat and its image (attached to the first user message), with the image features
    cached once encoded. ``Pipeline.chat(question, conversation=conv)`` appends the question and the answer.
    """

    def __init__(self, image: Any = None, msgs: Sequence[Mapping[str, str]] | None = None):
        self.msgs: list[dict[str, str]] = [dict(m) for m in (msgs or [])]
        self.image = None
        self.features: list[np.ndarray] | None = None
        self.set_image(image)

    def set_image(self, image: Any) -> None:
        """A new image (a PIL image or a path, None for none); its features are encoded on the next turn."""
        self.image = image  # a path is opened by the pipeline's loader on first use
        self.features = None

    def add_user(self, text: str) -> None:
        self.msgs.append({"role": "user", "content": text})

    def add_assistant(self, text: str) -> None:
        self.msgs.append({"role": "assistant", "content": text})

    def pop_answer(self) -> str | None:
        """Remove the last answer (to regenerate it); returns its text, None when the last message is not one."""
        if self.msgs and self.msgs[-1]["role"] == "assistant":
            return self.msgs.pop()["content"]
        return None

    def clear(self, keep_image: bool = False) -> None:
        self.msgs.clear()
        if not keep_image:
            self.set_image(None)

    @property
    def turns(self) -> int:
        return sum(1 for m in self.msgs if m["role"] == "user")

    def __repr__(self) -> str:
        return f"Conversation({self.turns} turns, image={'yes' if self.image is not None else 'no'})"


class ChatStream:
    """Iterator of answer text pieces; ``result`` is the ``ChatResult`` once the iterator is exhausted or
    closed."""

    def __init__(self, gen: Iterator[str]):
        self._gen = gen
        self.result: ChatResult | None = None

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> "ChatStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Turn:
    """One turn, ready to generate: the prepared prompt, its prefill embeddings, the config it runs with."""
    prepared: Any
    prefill: np.ndarray
    positions: np.ndarray       # the prompt's position ids ([T] or [R, T], the family adapter's)
    reuse: int                  # prompt positions already in the KV cache (an earlier turn of the conversation)
    config: GenerationConfig
    timings: dict[str, float]   # prepare_s, vision_s, prompt_tokens


@dataclass
class _CachedTurn:
    """What the LLM's KV cache holds after a turn of a conversation: ``ids`` (the prompt and the answer but its
    last token), for ``conversation`` with image ``features``, in decoder state ``epoch``. The next turn of the same
    conversation, whose prompt starts with these ids, prefills only its new tokens."""
    conversation: Any            # weakref.ref to the Conversation
    features: Any                # the conversation's image features then (the same object, or None)
    ids: list[int]
    epoch: int


@dataclass
class _Answer:
    """The answer as generation goes (what ``ChatResult`` gets, even when the stream is closed early)."""
    tokens: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    reason: str = "closed"
    score: float | None = None


def _text_embedder(models, scale: float) -> Callable[[np.ndarray], np.ndarray]:
    scale = np.float32(scale)

    def embed(ids: np.ndarray) -> np.ndarray:
        emb = models.embed(ids)
        emb *= scale
        return emb

    return embed


def default_cache_dir(bundle: Path) -> Path | None:
    """``<bundle parent>/.ov_cache`` (beside the versions, outside the hashed bundle) when writable."""
    parent = Path(bundle).absolute().parent
    cache = parent / ".ov_cache"
    try:
        cache.mkdir(exist_ok=True)
        probe = cache / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
        return cache
    except OSError:
        return None


class Pipeline:
    def __init__(self, bundle: Path, models: BundleModels, adapter):
        self.bundle = Path(bundle)
        self.models = models
        self.adapter = adapter
        self.tokenizer = adapter.tokenizer
        self.eos_ids = set(adapter.eos_ids)
        self._embed_text = _text_embedder(models, adapter.embed_scale)
        # the decoder gets a function that does not reference the pipeline: no reference cycle, so a dropped
        # pipeline frees its OpenVINO objects at once rather than whenever the cyclic GC runs
        self.decoder = Decoder(models, self._embed_text, self.eos_ids)
        self.max_positions: int | None = getattr(getattr(adapter, "config", None), "max_position_embeddings", None)
        self.lock = threading.Lock()  # one generation at a time: the infer requests are shared
        self._cached: _CachedTurn | None = None   # the KV cache's conversation, re-used by its next turn
        self.load_s = getattr(models, "compile_s", 0.0)

    @classmethod
    def load(cls, bundle: str | Path, device: str = "CPU", ov_config: Mapping[str, str] | None = None,
             cache_dir: str | Path | None | bool = None, slice_logits: bool = True) -> "Pipeline":
        """Load a bundle. ``cache_dir``: OpenVINO's compiled-model cache directory; None/False = no cache (the
        default: on the full-size int4 bundle the cache saved ~1.5 s of a ~13 s start for 3.4 GB of disk),
        True = ``<bundle parent>/.ov_cache`` when writable. ``slice_logits=False`` keeps every position's
        logits (the notebook baseline's way; ours computes the last position's only)."""
        t0 = time.perf_counter()
        bundle = Path(bundle)
        if not bundle.is_dir():
            raise BundleError(f"bundle {bundle} does not exist", fix="pass a directory written by `ovexport run`")
        manifest = bundle / MANIFEST
        family = None
        if manifest.is_file():
            try:
                name = json.loads(manifest.read_text()).get("model_family")
            except json.JSONDecodeError:
                name = None
            family = get_family(name) if name else None
        family = family or family_for(bundle)
        if cache_dir is True:
            cache_dir = default_cache_dir(bundle)
        elif cache_dir is False:
            cache_dir = None
        adapter = family.runtime(bundle)
        models = BundleModels(bundle, device, ov_config, cache_dir=cache_dir, slice_logits=slice_logits,
                              family=family, model_config=adapter.config)
        pipe = cls(bundle, models, adapter)
        pipe.load_s = time.perf_counter() - t0
        return pipe

    def warmup(self, background: bool = False) -> threading.Thread | None:
        """Run each model once on a tiny input. OpenVINO prepares the weights on the first inference (about
        12 s for the full-size int4 LLM on 2 cores, then 0.3 s per call): doing it now, or in a background
        thread while the user types (``background=True``), keeps that out of the first answer."""
        if background:
            th = threading.Thread(target=self.warmup, name="ovexport-warmup", daemon=True)
            th.start()
            return th
        with self.lock:
            t0 = time.perf_counter()
            self._cached = None
            self.decoder.prefill(self.embed_text(np.array([[self.tokenizer.bos_id]], dtype=np.int64)))
            self.models.reset()
            self.encode_images(self.adapter.prepare([{"role": "user", "content": "?"}], _warmup_image()))
            self.warmup_s = time.perf_counter() - t0
        return None

    # pieces --------------------------------------------------------------------------------------
    def load_image(self, image: Any):
        """A PIL image from a path (through the model family's loader: one-line errors), or the image itself."""
        if image is None or not isinstance(image, (str, Path)):
            return image
        loader = getattr(self.adapter, "load_image", None)
        if loader is not None:
            return loader(image)
        from PIL import Image
        try:
            with Image.open(image) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as e:
            raise InputError(f"image {image} is unreadable ({e})", fix="pass a readable JPEG/PNG image") from None

    def embed_text(self, ids: np.ndarray) -> np.ndarray:
        """[B, T] ids -> [B, T, D] text embeddings times the model's ``scale_emb`` (what the LLM takes)."""
        return self._embed_text(ids)

    def encode_images(self, prepared) -> list[np.ndarray]:
        """Features of each image piece of ``prepared``, encoded as the family's adapter batches them (e.g. the
        same-size pieces in one call)."""
        return encode_pieces(self.adapter, prepared, self.models.encode_images)

    def prefill_embeddings(self, prepared, image_features: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """``[1, T, D]``: the prompt's scaled text embeddings with the image features merged in (the family's)."""
        return prefill_embeddings(self.adapter, prepared, self._embed_text, self.models.encode_images, image_features)

    def position_ids(self, prepared) -> np.ndarray:
        """The prompt's position ids (the family adapter's: ``[T]`` or ``[R, T]``)."""
        return self.adapter.position_ids(prepared)

    # chat ----------------------------------------------------------------------------------------
    def chat(self, prompt: str | Sequence[Mapping[str, str]] | None = None, image: Any = None,
             config: GenerationConfig | None = None, on_text: Callable[[str], None] | None = None, *,
             conversation: Conversation | None = None) -> ChatResult:
        """Answer ``prompt`` (a question, or a whole message list) about ``image`` (PIL image or path).

        With ``conversation``, ``prompt`` is the next question (None = answer the conversation's last user
        message again, e.g. after ``pop_answer()``), and the answer is appended to it. ``on_text`` receives
        the answer as it is generated (whole characters only; beam search calls it once, at the end).
        """
        stream = self.stream(prompt, image, config, conversation=conversation)
        with stream:
            for piece in stream:
                if on_text is not None:
                    on_text(piece)
        assert stream.result is not None
        return stream.result

    def stream(self, prompt: str | Sequence[Mapping[str, str]] | None = None, image: Any = None,
               config: GenerationConfig | None = None, *, conversation: Conversation | None = None) -> ChatStream:
        """Like ``chat``, as an iterator of text pieces (see ``ChatStream``)."""
        config = (config or GenerationConfig()).check()
        if conversation is None:
            if prompt is None:
                raise InputError("no prompt given", fix="pass a question or a list of messages")
            msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
            conv, question = Conversation(image=image, msgs=msgs), None
        else:
            conv = conversation
            if prompt is not None and not isinstance(prompt, str):
                raise InputError("with a conversation, the prompt is the next question (a string)",
                                 fix="pass the question text, or None to answer the last question again")
            if prompt is None and (not conv.msgs or conv.msgs[-1]["role"] != "user"):
                raise InputError("the conversation does not end with a question", fix="ask a question first")
            if image is not None and image is not conv.image:
                conv.set_image(image)
            question = prompt
        sink = ChatStream(iter(()))
        sink._gen = self._run(conv, question, config, sink, record=conversation is not None)
        return sink

    def _run(self, conv: Conversation, question: str | None, config: GenerationConfig, sink: ChatStream,
             record: bool) -> Iterator[str]:
        """The generation behind ``stream``. The conversation changes only once this runs: the question is
        added first (and removed again if the turn fails before generating), the answer at the end."""
        with self.lock:
            t0 = time.perf_counter()
            cached, self._cached = self._cached, None   # whatever runs now overwrites the KV cache
            turn = self._prepare_turn(conv, question, config, record, t0, cached)
            answer = _Answer()
            try:
                if turn.config.num_beams > 1:
                    yield from self._beam_search(turn, answer)
                else:
                    yield from self._stream_tokens(turn, answer)
                    if record and answer.tokens:
                        fed = [int(i) for i in turn.prepared.input_ids] + answer.tokens[:-1]
                        self._cached = _CachedTurn(weakref.ref(conv), conv.features, fed, self.decoder.epoch)
            finally:
                timings = {**turn.timings, **self._generation_timings(t0, answer)}
                text = "".join(answer.parts)
                sink.result = ChatResult(prompt_token_ids=[int(i) for i in turn.prepared.input_ids],
                                         token_ids=answer.tokens, text=text, timings=timings, score=answer.score,
                                         finish_reason=answer.reason)
                if record:
                    conv.add_assistant(text)

    def _prepare_turn(self, conv: Conversation, question: str | None, config: GenerationConfig, record: bool,
                      t0: float, cached: "_CachedTurn | None" = None) -> "_Turn":
        """The prompt of this turn as prefill embeddings (the image encoded once per conversation), and
        ``max_new_tokens`` cut to what fits in the model's positions. On failure the question added is removed.
        ``t0``: when the turn started (``prepare_s`` counts from it); ``cached``: what the KV cache holds."""
        timings: dict[str, float] = {}
        if question is not None:
            conv.add_user(question)
        try:
            if isinstance(conv.image, (str, Path)):
                conv.image = self.load_image(conv.image)
            prepared = self.adapter.prepare(conv.msgs, conv.image)
            n_prompt = int(len(prepared.input_ids))
            max_new = config.max_new_tokens
            if self.max_positions:
                if n_prompt >= self.max_positions:
                    raise InputError(f"the prompt is {n_prompt} tokens, the model takes at most "
                                     f"{self.max_positions}",
                                     fix="start a new conversation or ask a shorter question")
                max_new = min(max_new, self.max_positions - n_prompt)
            if max_new != config.max_new_tokens:
                config = config.updated(max_new_tokens=max_new)
            timings["prepare_s"] = time.perf_counter() - t0
            feats = None
            if len(prepared.pixel_values):
                if conv.features is None or len(conv.features) != len(prepared.pixel_values):
                    tv = time.perf_counter()
                    conv.features = self.encode_images(prepared)
                    timings["vision_s"] = time.perf_counter() - tv
                else:
                    timings["vision_s"] = 0.0
                feats = conv.features
            prefill = self.prefill_embeddings(prepared, feats)
            positions = self.position_ids(prepared)
        except BaseException:
            if question is not None and record:
                conv.msgs.pop()
            raise
        reuse = self._reusable(cached, conv, prepared.input_ids) if config.num_beams == 1 else 0
        timings["prompt_tokens"] = n_prompt
        timings["image_pieces"] = len(prepared.pixel_values)   # the image and its pieces (0: no image)
        return _Turn(prepared, prefill, positions, reuse, config, timings)

    def _reusable(self, cached: "_CachedTurn | None", conv: Conversation, ids: np.ndarray) -> int:
        """How many of this prompt's first positions the KV cache holds already: the ids this prompt shares with the
        start of the last turn's (its prompt and answer), when this is the same conversation with the same image
        (the answer's text may re-tokenize otherwise; a regenerated answer shares the prompt); at least one
        position is left to run. Else 0."""
        if (cached is None or cached.conversation() is not conv or cached.features is not conv.features
                or cached.epoch != self.decoder.epoch or self.decoder.length != len(cached.ids)):
            return 0
        n = 0
        for a, b in zip(cached.ids, ids[:-1]):
            if a != int(b):
                break
            n += 1
        return n

    def _beam_search(self, turn: "_Turn", answer: "_Answer") -> Iterator[str]:
        """Beam search: the answer comes out whole, once the best beam is known."""
        stops = tuple(turn.config.stop_strings)
        is_stop = self._beam_stop_check(stops) if stops else None
        res = self.decoder.beam(turn.prefill, turn.config, is_stop, turn.positions)
        answer.tokens = res.tokens
        answer.score = res.score
        text = self.tokenizer.decode(answer.tokens, skip_special_tokens=True)
        answer.reason = ("eos" if answer.tokens and answer.tokens[-1] in self.eos_ids else
                         "stop_string" if stops and any(s in text for s in stops) else "length")
        answer.parts.append(text)
        if text:
            yield text

    def _stream_tokens(self, turn: "_Turn", answer: "_Answer") -> Iterator[str]:
        """Greedy or sampled decoding, streamed as whole characters; stops at EOS, a stop string or the limit."""
        stream = self.tokenizer.stream()
        stops = tuple(turn.config.stop_strings)
        tail = ""
        longest = max((len(s) for s in stops), default=0)
        it = self.decoder.iter_tokens(turn.prefill, turn.config, turn.positions, turn.reuse)
        try:
            for tok in it:
                answer.tokens.append(tok)
                if tok in self.eos_ids:
                    answer.reason = "eos"
                    break
                piece = stream.push(tok)
                if piece:
                    answer.parts.append(piece)
                    yield piece
                    if stops:
                        tail = (tail + piece)[-(longest + len(piece)):]
                        if any(s in tail for s in stops):
                            answer.reason = "stop_string"
                            break
            else:
                answer.reason = "length"
        finally:
            it.close()
        rest = stream.flush()
        if rest:
            answer.parts.append(rest)
            yield rest

    def _generation_timings(self, t0: float, answer: "_Answer") -> dict[str, float]:
        """Prefill, time to first token (from ``t0``, the start of the turn), decode and total times."""
        st = self.decoder.stats
        t_end = time.perf_counter()
        timings: dict[str, float] = {"prefill_s": st.prefill_s, "reused_tokens": self.decoder.reused}
        if st.first_token_at:
            timings["ttft_s"] = st.first_token_at - t0
        timings["decode_s"] = st.decode_s
        timings["new_tokens"] = len(answer.tokens)
        if len(answer.tokens) > 1 and st.decode_s > 0:
            timings["decode_tokens_per_s"] = (len(answer.tokens) - 1) / st.decode_s
        timings["total_s"] = t_end - t0
        return timings

    def _beam_stop_check(self, stops: tuple[str, ...]) -> Callable[[np.ndarray], bool]:
        window = 4 * max(len(s) for s in stops) + 4  # enough tokens for the longest stop string, byte pieces too
        decode = self.tokenizer.decode

        def is_stop(seq: np.ndarray) -> bool:
            text = decode(seq[-window:].tolist(), skip_special_tokens=True)
            return any(s in text for s in stops)

        return is_stop


def _warmup_image():
    """A small grey image: warming up runs the image encoder on what the family's preprocessing makes of it."""
    from PIL import Image
    return Image.new("RGB", (64, 64), (128, 128, 128))
