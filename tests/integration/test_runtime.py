"""Issue 4: the runtime's Python API on the tiny fp32 bundle: greedy parity with PyTorch, sampling, beam search
(checked against Hugging Face ``generate`` on the PyTorch reference), streaming of multi-byte text, multi-turn
reuse of image features, batched slice encoding, stop strings, OpenVINO config."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovexport.errors import InputError
from ovexport.runtime.generation import GenerationConfig as G
from ovexport.runtime.pipeline import ChatResult, Conversation, Pipeline

from runtime_fixtures import F32, rt_bundle, rt_images, rt_pipe, rt_reference  # noqa: F401

pytestmark = pytest.mark.integration

Q = "Describe this image."
MSGS = [{"role": "user", "content": Q}]


def img(rt_images, name) -> Image.Image:
    return Image.open(rt_images[name]).convert("RGB")


# ------------------------------------------------------------------------------------------------ greedy
@pytest.mark.parametrize("case", [None, "448x448", "1344x896"])
def test_greedy_equals_pytorch_reference(rt_pipe, rt_reference, rt_images, case):
    image = img(rt_images, case) if case else None
    r = rt_pipe.chat(Q, image, G(max_new_tokens=24))
    want, _ = rt_reference.greedy(rt_reference.prepare(MSGS, image), 24)
    assert r.token_ids == want
    assert r.prompt_token_ids == rt_reference.prepare(MSGS, image).input_ids.tolist()
    assert r.text == rt_pipe.tokenizer.decode(want)
    assert r.finish_reason in ("eos", "length")
    t = r.timings
    assert t["ttft_s"] > 0 and t["prefill_s"] > 0 and t["new_tokens"] == len(want)
    if case:
        assert t["vision_s"] > 0


def test_logits_are_sliced_to_the_last_position(rt_pipe):
    m = rt_pipe.models
    assert m.sliced_logits
    d = rt_pipe.adapter.config.hidden_size
    m.reset()
    m.lm_step(np.zeros((1, 5, d), np.float32), np.ones((1, 5), np.int64), np.arange(5)[None], np.zeros(1, np.int32))
    assert tuple(m.lm_req.get_tensor("logits").shape) == (1, 1, rt_pipe.tokenizer.vocab_size)


def test_unsliced_graph_gives_the_same_tokens(rt_bundle, rt_pipe):
    from ovexport.runtime.ov_models import BundleModels

    models = BundleModels(rt_bundle, "CPU", F32, slice_logits=False)
    assert not models.sliced_logits
    other = Pipeline(rt_bundle, models, rt_pipe.adapter)
    assert other.chat(Q, None, G(max_new_tokens=12)).token_ids == rt_pipe.chat(Q, None, G(max_new_tokens=12)).token_ids


# ------------------------------------------------------------------------------------------------ sampling
def test_sampling_is_reproducible_with_a_seed_and_differs_across_seeds(rt_pipe, rt_images):
    image = img(rt_images, "448x448")
    presets = rt_pipe.adapter.generation_presets
    runs = {seed: [rt_pipe.chat(Q, image, G.sampling(presets, seed=seed, max_new_tokens=24)).token_ids for _ in range(2)]
            for seed in (1, 2, 3)}
    for a, b in runs.values():
        assert a == b
    assert len({tuple(v[0]) for v in runs.values()}) > 1


def test_sampling_presets_are_the_familys_with_the_generation_config_applied(rt_pipe):
    presets = rt_pipe.adapter.generation_presets
    s, b = G.sampling(presets), G.beam(presets)
    assert (s.do_sample, s.top_p, s.top_k, s.temperature, s.repetition_penalty) == (True, 0.8, 100, 0.7, 1.05)
    assert (b.num_beams, b.repetition_penalty, b.do_sample) == (3, 1.2, False)
    assert G().mode == "greedy" and s.mode == "sample" and b.mode == "beam"


@pytest.mark.parametrize("bad", [dict(num_beams=2, do_sample=True), dict(top_p=0.0), dict(temperature=-1),
                                 dict(max_new_tokens=0), dict(repetition_penalty=0), dict(stop_strings=("",))])
def test_bad_generation_config_is_a_one_line_error(rt_pipe, bad):
    with pytest.raises(InputError) as e:
        rt_pipe.chat(Q, None, G(**bad))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ beam search
def _hf_beam(ref, prefill, num_beams, max_new, penalty):
    """Hugging Face's own beam search on the PyTorch reference (no KV cache: the whole sequence every step)."""
    import torch
    from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput

    c = ref.config

    class Ref(PreTrainedModel, GenerationMixin):
        config_class = PretrainedConfig

        def __init__(self):
            super().__init__(PretrainedConfig(vocab_size=c.vocab_size, is_encoder_decoder=False,
                                              num_hidden_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                                              num_attention_heads=c.num_attention_heads))
            self.llm = ref.llm

        def prepare_inputs_for_generation(self, input_ids, inputs_embeds=None, attention_mask=None, **kw):
            return {"input_ids": input_ids}

        def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kw):
            b = input_ids.shape[0]
            emb = prefill.expand(b, -1, -1)
            if input_ids.shape[1]:
                emb = torch.cat([emb, self.llm.embed(input_ids)], 1)
            t = emb.shape[1]
            logits, _ = self.llm(emb, torch.ones(b, t, dtype=torch.int64), torch.arange(t)[None].expand(b, -1))
            return CausalLMOutput(logits=logits)

    g = GenerationConfig(num_beams=num_beams, repetition_penalty=penalty, max_new_tokens=max_new, do_sample=False,
                         eos_token_id=ref.tokenizer.eos_id, pad_token_id=0, use_cache=False,
                         return_dict_in_generate=True, output_scores=True)
    import warnings
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Ref().eval().generate(inputs_embeds=prefill, generation_config=g)
    seq = out.sequences[0].tolist()
    if ref.tokenizer.eos_id in seq:
        seq = seq[:seq.index(ref.tokenizer.eos_id) + 1]
    return seq, float(out.sequences_scores[0])


def _score(ref, prefill, tokens, penalty) -> float:
    """Length-normalised sum of processed log-probs of ``tokens`` after ``prefill``, as beam search scores it."""
    import torch

    from ovexport.runtime.sampling import apply_repetition_penalty, log_softmax

    with torch.no_grad():
        emb = torch.cat([prefill, ref.llm.embed(torch.tensor([tokens[:-1]]))], 1) if len(tokens) > 1 else prefill
        t = emb.shape[1]
        logits, _ = ref.llm(emb, torch.ones(1, t, dtype=torch.int64), torch.arange(t)[None])
    rows = logits[0, -len(tokens):].float().numpy()
    total = 0.0
    for i, tok in enumerate(tokens):
        lp = log_softmax(rows[i])
        apply_repetition_penalty(lp, tokens[:i], penalty)
        total += float(lp[tok])
    return total / len(tokens)


@pytest.mark.parametrize("num_beams,max_new", [(3, 16), (2, 10)])
def test_beam_search_equals_hf_generate_on_the_reference(rt_pipe, rt_reference, rt_images, num_beams, max_new):
    image = img(rt_images, "448x448")
    r = rt_pipe.chat(Q, image, G.beam(rt_pipe.adapter.generation_presets, num_beams=num_beams,
                                      max_new_tokens=max_new))
    prefill = rt_reference.prefill_embeddings(rt_reference.prepare(MSGS, image))
    want, score = _hf_beam(rt_reference, prefill, num_beams, max_new, 1.2)
    assert r.token_ids == want
    assert r.score == pytest.approx(score, abs=1e-4)
    # the score is the model's length-normalised log-prob of the returned sequence, and beats greedy's
    assert _score(rt_reference, prefill, r.token_ids, 1.2) == pytest.approx(r.score, abs=1e-4)
    greedy = rt_pipe.chat(Q, image, G(max_new_tokens=max_new, repetition_penalty=1.2)).token_ids
    assert r.score >= _score(rt_reference, prefill, greedy, 1.2) - 1e-6


def test_one_beam_equals_greedy(rt_pipe, rt_images):
    image = img(rt_images, "1344x896")
    greedy = rt_pipe.chat(Q, image, G(max_new_tokens=16))
    assert rt_pipe.chat(Q, image, G(num_beams=1, max_new_tokens=16)).token_ids == greedy.token_ids
    # the beam-search code itself with one beam (not the greedy path)
    prepared = rt_pipe.adapter.prepare(MSGS, image)
    res = rt_pipe.decoder.beam(rt_pipe.prefill_embeddings(prepared), G(num_beams=1, max_new_tokens=16))
    assert res.tokens == greedy.token_ids


def test_beam_search_streams_its_answer_once(rt_pipe):
    pieces = []
    r = rt_pipe.chat(Q, None, G.beam(rt_pipe.adapter.generation_presets, max_new_tokens=8), on_text=pieces.append)
    assert pieces == ([r.text] if r.text else [])


# ------------------------------------------------------------------------------------------------ streaming
class ScriptedModels:
    """The bundle's models, but the LLM 'chooses' a scripted sequence of tokens (one-hot logits)."""

    def __init__(self, real, script, vocab):
        self.real, self.script, self.vocab = real, list(script), vocab
        self.calls = real.calls
        self.device, self.config = real.device, real.config

    def reset(self):
        self.i = 0

    def embed(self, ids):
        return self.real.embed(ids)

    def encode_images(self, inputs):
        return self.real.encode_images(inputs)

    def lm_step(self, emb, mask, pos, beam_idx):
        logits = np.zeros((emb.shape[0], self.vocab), np.float32)
        logits[:, self.script[self.i] if self.i < len(self.script) else 2] = 10.0
        self.i += 1
        return logits


def test_chinese_answer_streams_whole_characters(rt_pipe, rt_bundle):
    tok = rt_pipe.tokenizer
    answer = "图片里有一只猫，它在睡觉。Then 你好！"
    ids = tok.encode(answer, add_bos=False)
    byte_ids = [i for i in ids if tok.sp.is_byte(i)]
    assert len(byte_ids) >= 6, "the synthetic tokenizer should encode some of these characters as bytes"
    pipe = Pipeline(rt_bundle, ScriptedModels(rt_pipe.models, ids + [tok.eos_id], tok.vocab_size), rt_pipe.adapter)
    pieces: list[str] = []
    r = pipe.chat("你好", None, G(max_new_tokens=200), on_text=pieces.append)
    assert r.token_ids == ids + [tok.eos_id] and r.finish_reason == "eos"
    assert "".join(pieces) == r.text == tok.decode(ids) == answer
    assert len(pieces) > 5 and all(pieces) and not any("\ufffd" in p for p in pieces)
    # every piece boundary falls between whole characters of the answer
    done = ""
    for p in pieces:
        done += p
        assert answer.startswith(done)


def test_stream_iterator_and_close_stops_generation(rt_pipe):
    stream = rt_pipe.stream(Q, None, G(max_new_tokens=50, min_new_tokens=50))
    first = next(stream)
    assert first
    steps_before = rt_pipe.decoder.stats.steps
    stream.close()
    assert rt_pipe.decoder.stats.steps == steps_before < 49
    assert isinstance(stream.result, ChatResult) and stream.result.text.startswith(first)
    assert stream.result.finish_reason == "closed"
    assert rt_pipe.lock.acquire(blocking=False)  # closing released the pipeline
    rt_pipe.lock.release()


def test_stop_strings_end_generation(rt_pipe):
    full = rt_pipe.chat(Q, None, G(max_new_tokens=40))
    text = full.text
    stop = text[len(text) // 3: len(text) // 3 + 3]
    assert len(stop) == 3
    r = rt_pipe.chat(Q, None, G(max_new_tokens=40, stop_strings=(stop,)))
    assert r.finish_reason == "stop_string"
    assert stop in r.text and full.text.startswith(r.text) and len(r.token_ids) < len(full.token_ids)
    assert r.text.find(stop) == text.find(stop)


# ------------------------------------------------------------------------------------------------ multi-turn
def test_multi_turn_encodes_the_image_once_and_rebuilds_the_prompt(rt_pipe, rt_images):
    image = img(rt_images, "1344x896")
    conv = Conversation(image=image)
    before = rt_pipe.models.calls["image"]
    r1 = rt_pipe.chat("What is in the image?", conversation=conv, config=G(max_new_tokens=8))
    assert rt_pipe.models.calls["image"] - before == 2  # the source + one batch of 6 slices
    r2 = rt_pipe.chat("And the colours?", conversation=conv, config=G(max_new_tokens=8))
    assert rt_pipe.models.calls["image"] - before == 2  # features reused on the second turn
    assert r2.timings["vision_s"] == 0.0
    assert [m["role"] for m in conv.msgs] == ["user", "assistant", "user", "assistant"]
    assert conv.msgs[1]["content"] == r1.text and conv.msgs[3]["content"] == r2.text
    # turn 2 = the whole conversation re-prompted (image placeholder in the first user message) ...
    expected = rt_pipe.adapter.prepare(conv.msgs[:3], image)
    assert r2.prompt_token_ids == expected.input_ids.tolist()
    assert r2.prompt_token_ids[:len(r1.prompt_token_ids)] == r1.prompt_token_ids
    # ... giving what a fresh one-shot chat over the same messages gives (which encodes the image again)
    fresh = rt_pipe.chat(conv.msgs[:3], image, G(max_new_tokens=8))
    assert fresh.token_ids == r2.token_ids
    # turn 2 prefilled only what it does not share with what the KV cache held (turn 1's prompt and its answer but
    # the last token; the answer's text may re-tokenize otherwise), and answered as the fresh chat did
    assert r1.timings["reused_tokens"] == 0 and fresh.timings["reused_tokens"] == 0
    fed = r1.prompt_token_ids + r1.token_ids[:-1]
    shared = next((i for i, (a, b) in enumerate(zip(fed, r2.prompt_token_ids)) if a != b), len(fed))
    assert r2.timings["reused_tokens"] == shared >= len(r1.prompt_token_ids)


def test_a_turn_after_another_generation_prefills_everything(rt_pipe, rt_images):
    image = img(rt_images, "448x448")
    conv = Conversation(image=image)
    rt_pipe.chat("What is in the image?", conversation=conv, config=G(max_new_tokens=6))
    rt_pipe.chat("Something else", None, G(max_new_tokens=3))       # overwrites the KV cache
    r2 = rt_pipe.chat("And the colours?", conversation=conv, config=G(max_new_tokens=6))
    assert r2.timings["reused_tokens"] == 0
    fresh = rt_pipe.chat(conv.msgs[:3], image, G(max_new_tokens=6))
    assert fresh.token_ids == r2.token_ids


def test_conversation_regenerate_clear_and_new_image(rt_pipe, rt_images):
    conv = Conversation(image=str(rt_images["448x448"]))  # a path: loaded on first use
    presets = rt_pipe.adapter.generation_presets
    r1 = rt_pipe.chat(Q, conversation=conv, config=G.sampling(presets, seed=1, max_new_tokens=6))
    assert conv.pop_answer() == r1.text and conv.msgs[-1]["role"] == "user"
    r2 = rt_pipe.chat(None, conversation=conv, config=G.sampling(presets, seed=1, max_new_tokens=6))
    assert r2.token_ids == r1.token_ids and len(conv.msgs) == 2
    assert r2.timings["reused_tokens"] == len(r1.prompt_token_ids) - 1   # the same prompt: all but its last token
    calls = rt_pipe.models.calls["image"]
    conv.set_image(img(rt_images, "1344x896"))
    rt_pipe.chat("Now?", conversation=conv, config=G(max_new_tokens=4))
    assert rt_pipe.models.calls["image"] - calls == 2  # a new image is encoded
    conv.clear()
    assert conv.msgs == [] and conv.image is None and conv.features is None
    with pytest.raises(InputError):
        rt_pipe.chat(None, conversation=conv)  # nothing to answer


def test_failed_turn_leaves_the_conversation_unchanged(rt_pipe):
    conv = Conversation()
    with pytest.raises(InputError):
        rt_pipe.chat("x" * 5000, conversation=conv, config=G(max_new_tokens=4))  # longer than the model's positions
    assert conv.msgs == []


# ------------------------------------------------------------------------------------------------ images
def test_slices_are_encoded_in_one_batched_call(rt_pipe, rt_images):
    prepared = rt_pipe.adapter.prepare(MSGS, img(rt_images, "1344x896"))
    assert prepared.grid == (3, 2) and len(prepared.pixel_values) == 7
    before = rt_pipe.models.calls["image"]
    feats = rt_pipe.encode_images(prepared)
    assert rt_pipe.models.calls["image"] - before == 2
    p = rt_pipe.adapter.config.patch_size
    for px, f in zip(prepared.pixel_values, feats):
        tgt = np.array([-(-px.shape[1] // p), -(-px.shape[2] // p)])
        one = rt_pipe.models.encode_images({"pixel_values": px[None], "tgt_size": tgt})[0]
        np.testing.assert_allclose(f, one, atol=1e-5)


def test_image_paths_and_errors(rt_pipe, rt_images, tmp_path):
    r = rt_pipe.chat(Q, str(rt_images["448x448"]), G(max_new_tokens=3))
    assert 101 in r.prompt_token_ids
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    for path in (bad, tmp_path / "missing.jpg"):
        with pytest.raises(InputError) as e:
            rt_pipe.chat(Q, str(path), G(max_new_tokens=3))
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ OpenVINO config
def test_ov_config_reaches_the_compiled_models(rt_bundle, tmp_path):
    pipe = Pipeline.load(rt_bundle, ov_config={"KV_CACHE_PRECISION": "f16", "INFERENCE_PRECISION_HINT": "f32"},
                         cache_dir=tmp_path / "cache")
    assert "16" in str(pipe.models.get_property("KV_CACHE_PRECISION"))
    assert "32" in str(pipe.models.get_property("INFERENCE_PRECISION_HINT"))
    assert pipe.models.config["PERFORMANCE_HINT"] == "LATENCY" and pipe.models.config["NUM_STREAMS"] == "1"
    assert any((tmp_path / "cache").iterdir())  # compiled-model cache written
    assert pipe.chat(Q, None, G(max_new_tokens=3)).token_ids


def test_bad_device_and_config_are_one_line_errors(rt_bundle):
    from ovexport.errors import OvexportError
    from ovexport.runtime.ov_models import parse_ov_config

    with pytest.raises(InputError):
        parse_ov_config(["NOEQUALS"])
    assert parse_ov_config(["A=1", "B = x=y"]) == {"A": "1", "B": "x=y"}
    with pytest.raises(OvexportError) as e:
        Pipeline.load(rt_bundle, device="NOSUCHDEVICE", cache_dir=False)
    assert "\n" not in str(e.value)
