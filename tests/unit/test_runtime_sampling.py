"""Logits processors, the sampler and beam search of ovexport.runtime, on numpy arrays (no OpenVINO):
checked against Hugging Face's own processors and ``generate(num_beams=N)`` on a toy bigram model."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from ovexport.runtime.beam import beam_search
from ovexport.runtime.sampling import Sampler, apply_repetition_penalty, log_softmax, top_k_mask, top_p_keep

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")


def hf():
    lp = pytest.importorskip("transformers.generation.logits_process")
    return lp


def test_no_openvino_import():
    import subprocess

    code = "import sys, ovexport.runtime.beam, ovexport.runtime.sampling; sys.exit('openvino' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("penalty", [1.05, 1.2, 0.8])
def test_repetition_penalty_equals_hf_processor(penalty):
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, size=(3, 50)).astype(np.float32)
    prev = rng.integers(0, 50, size=(3, 12))
    prev[0, :4] = 7  # repeated ids count once
    want = hf().RepetitionPenaltyLogitsProcessor(penalty)(torch.as_tensor(prev), torch.as_tensor(scores)).numpy()
    got = apply_repetition_penalty(scores.copy(), prev, penalty)
    np.testing.assert_array_equal(got, want)
    # one row, as the greedy/sampling loop calls it
    row = apply_repetition_penalty(scores[1].copy(), prev[1].tolist(), penalty)
    np.testing.assert_array_equal(row, want[1])


def test_repetition_penalty_signs_and_noop():
    s = np.array([2.0, -2.0, 0.5, 3.0], np.float32)
    out = apply_repetition_penalty(s.copy(), [0, 1, 1], 2.0)
    np.testing.assert_array_equal(out, [1.0, -4.0, 0.5, 3.0])  # positive divided, negative multiplied, others kept
    np.testing.assert_array_equal(apply_repetition_penalty(s.copy(), [0, 1], 1.0), s)
    np.testing.assert_array_equal(apply_repetition_penalty(s.copy(), [], 1.3), s)


def test_repetition_penalty_on_log_probs_as_beam_search_uses_it():
    rng = np.random.default_rng(1)
    logp = log_softmax(rng.normal(size=(2, 30)).astype(np.float32))
    prev = np.array([[1, 2, 3], [4, 4, 5]])
    want = hf().RepetitionPenaltyLogitsProcessor(1.2)(torch.as_tensor(prev), torch.as_tensor(logp)).numpy()
    np.testing.assert_array_equal(apply_repetition_penalty(logp.copy(), prev, 1.2), want)
    assert (want[0, [1, 2, 3]] < logp[0, [1, 2, 3]]).all()  # log-probs are negative: the penalty lowers them


def test_log_softmax_matches_torch():
    x = np.random.default_rng(2).normal(0, 5, size=(2, 100)).astype(np.float32)
    np.testing.assert_allclose(log_softmax(x), torch.log_softmax(torch.as_tensor(x), -1).numpy(), atol=1e-5)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_equals_hf(k):
    s = np.random.default_rng(3).normal(size=(1, 100)).astype(np.float32)
    want = hf().TopKLogitsWarper(k)(None, torch.as_tensor(s)).numpy()
    np.testing.assert_array_equal(top_k_mask(s, k), np.isfinite(want))


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.8, 0.95])
def test_top_p_equals_hf(top_p):
    s = np.random.default_rng(4).normal(0, 2, size=(1, 200)).astype(np.float32)
    want = hf().TopPLogitsWarper(top_p)(None, torch.as_tensor(s)).numpy()[0]
    order = np.argsort(-s[0], kind="stable")
    n = top_p_keep(s[0][order], top_p)
    assert set(order[:n].tolist()) == set(np.flatnonzero(np.isfinite(want)).tolist())


def _hf_candidates(scores, prev, temperature, top_k, top_p, penalty):
    lp = hf()
    t = torch.as_tensor(scores[None].copy())
    ids = torch.as_tensor(np.asarray(prev, dtype=np.int64)[None])
    t = lp.RepetitionPenaltyLogitsProcessor(penalty)(ids, t)
    t = lp.TemperatureLogitsWarper(temperature)(ids, t)
    if top_k:
        t = lp.TopKLogitsWarper(top_k)(ids, t)
    t = lp.TopPLogitsWarper(top_p)(ids, t)
    return torch.softmax(t, -1).numpy()[0]


@pytest.mark.parametrize("top_k,top_p", [(100, 0.8), (0, 0.8), (0, 0.3), (10, 1.0)])
def test_sampler_distribution_equals_hf_warpers(top_k, top_p):
    rng = np.random.default_rng(5)
    scores = rng.normal(0, 4, size=5000).astype(np.float32)
    prev = rng.integers(0, 5000, size=20)
    want = _hf_candidates(scores, prev, 0.7, top_k, top_p, 1.05)
    sampler = Sampler(temperature=0.7, top_k=top_k, top_p=top_p, repetition_penalty=1.05, seed=0, head=64)
    ids, probs = sampler.candidates(scores.copy(), prev)
    got = np.zeros_like(want)
    got[ids] = probs
    assert set(ids.tolist()) == set(np.flatnonzero(want > 0).tolist())
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sampler_is_reproducible_and_seed_dependent():
    scores = np.random.default_rng(6).normal(0, 1, size=(200, 300)).astype(np.float32)

    def draw(seed):
        s = Sampler(temperature=1.0, top_k=0, top_p=1.0, seed=seed)
        return [s(row.copy()) for row in scores]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_sampler_frequencies_follow_the_distribution():
    scores = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    s = Sampler(seed=0)
    counts = np.bincount([s(scores.copy()) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_temperature_zero_is_greedy_with_penalty():
    s = Sampler(temperature=0.0, repetition_penalty=10.0, seed=0)
    assert s(np.array([1.0, 5.0, 4.0], np.float32), [1]) == 2


# ------------------------------------------------------------------------------------------ beam search
V, EOS = 12, 2


def bigram_table(seed: int) -> np.ndarray:
    """logits[next | last]; EOS fairly likely so that beams finish at different lengths."""
    rng = np.random.default_rng(seed)
    t = rng.normal(0, 2.0, size=(V, V)).astype(np.float32)
    t[:, EOS] += 1.0
    return t


class Bigram:
    """A 'model' whose next-token logits depend on the last token (the prompt's last token is id 0)."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def run(self, first_rows: int):
        self.last = np.zeros(first_rows, dtype=np.int64)
        return self.table[self.last]

    def step(self, tokens, beam_idx):
        self.calls += 1
        assert len(beam_idx) == len(tokens)
        self.last = tokens
        return self.table[tokens]


def hf_beam(table, num_beams, max_new, penalty, min_new=0):
    from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput

    class Toy(PreTrainedModel, GenerationMixin):
        config_class = PretrainedConfig

        def __init__(self):
            super().__init__(PretrainedConfig(vocab_size=V, is_encoder_decoder=False, num_hidden_layers=1,
                                              hidden_size=4, num_attention_heads=1))
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.table = torch.as_tensor(table)

        def prepare_inputs_for_generation(self, input_ids, inputs_embeds=None, attention_mask=None, **kw):
            return {"input_ids": input_ids}

        def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kw):
            b, t = input_ids.shape
            last = input_ids[:, -1] if t else torch.zeros(b, dtype=torch.int64)
            return CausalLMOutput(logits=self.table[last][:, None, :])

    g = GenerationConfig(num_beams=num_beams, repetition_penalty=penalty, max_new_tokens=max_new, do_sample=False,
                         eos_token_id=EOS, pad_token_id=0, use_cache=False, min_new_tokens=min_new,
                         return_dict_in_generate=True, output_scores=True)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "repetition_penalty ... applies only to newly generated tokens": intended
        out = Toy().eval().generate(inputs_embeds=torch.zeros(1, 1, 4), generation_config=g)
    seq = out.sequences[0].tolist()
    if EOS in seq:
        seq = seq[:seq.index(EOS) + 1]
    return seq, float(out.sequences_scores[0])


@pytest.mark.parametrize("seed", range(6))  # seeds 0 and 4 end on EOS, the others at the length limit
@pytest.mark.parametrize("num_beams,penalty,min_new", [(2, 1.0, 0), (3, 1.2, 0), (4, 1.2, 3)])
def test_beam_search_equals_hf_generate(seed, num_beams, penalty, min_new):
    pytest.importorskip("transformers")
    table = bigram_table(seed)
    model = Bigram(table)
    res = beam_search(model.run(1), model.step, num_beams=num_beams, max_new_tokens=10, eos_ids={EOS},
                      repetition_penalty=penalty, min_new_tokens=min_new)
    want, score = hf_beam(table, num_beams, 10, penalty, min_new)
    assert res.tokens == want
    assert res.score == pytest.approx(score, abs=1e-5)
    assert len(res.tokens) >= min_new


def test_one_beam_is_greedy():
    table = bigram_table(0)
    table[:, EOS] -= 100  # no EOS: compare whole sequences
    model = Bigram(table)
    res = beam_search(model.run(1), model.step, num_beams=1, max_new_tokens=8, eos_ids={EOS})
    greedy, last = [], 0
    for _ in range(8):
        last = int(table[last].argmax())
        greedy.append(last)
    assert res.tokens == greedy


def test_beam_search_reorders_with_source_beams():
    """beam_idx says which previous row each new row continues."""
    table = bigram_table(3)
    seen = []

    class Rec(Bigram):
        def step(self, tokens, beam_idx):
            seen.append((tokens.copy(), beam_idx.copy()))
            return super().step(tokens, beam_idx)

    m = Rec(table)
    beam_search(m.run(1), m.step, num_beams=3, max_new_tokens=5, eos_ids={EOS})
    assert seen and (seen[0][1] == 0).all()  # the first step expands the single prefill row
    for _, idx in seen:
        assert idx.dtype == np.int32 and len(idx) == 3 and (idx >= 0).all() and (idx < 3).all()


def test_stop_callback_finishes_a_beam():
    table = bigram_table(1)
    table[:, EOS] -= 100
    m = Bigram(table)
    res = beam_search(m.run(1), m.step, num_beams=2, max_new_tokens=20, eos_ids={EOS},
                      is_stop=lambda seq: len(seq) >= 4)
    assert len(res.tokens) == 4
