"""Synthetic sentencepiece tokenizer + MiniCPMVTokenizer + StreamDecoder."""
from __future__ import annotations

import json
import random
import time

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from ovexport.errors import CheckpointError
from ovexport.models.minicpmv2.synth_tokenizer import (
    MIN_VOCAB_SIZE, SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG, build_model_proto, write_tokenizer,
)
from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer, StreamDecoder

pytestmark = pytest.mark.unit

FULL_VOCAB = 122753
T = pb.ModelProto.SentencePiece
FIXED = {
    0: ("<unk>", T.UNKNOWN), 1: ("<s>", T.CONTROL), 2: ("</s>", T.CONTROL),
    101: ("<image>", T.USER_DEFINED), 102: ("</image>", T.USER_DEFINED), 103: ("<ref>", T.USER_DEFINED),
    104: ("</ref>", T.USER_DEFINED), 105: ("<box>", T.USER_DEFINED), 106: ("</box>", T.USER_DEFINED),
    107: ("<quad>", T.USER_DEFINED), 108: ("</quad>", T.USER_DEFINED), 109: ("<point>", T.USER_DEFINED),
    110: ("</point>", T.USER_DEFINED), 111: ("<slice>", T.USER_DEFINED), 112: ("</slice>", T.USER_DEFINED),
}
# "猫", "桌" and "。" are not pieces: they go through byte fallback; "这", "是", "一" are pieces
CHINESE = "这是一张图片。图中有一只猫在桌子上。"
ENGLISH = "What is in the image? Please describe it.\nThere are  two spaces, tabs\tand digits 12345!"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok_tiny")
    write_tokenizer(d, vocab_size=1024, seed=0)
    return d


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok_full")
    t0 = time.perf_counter()
    write_tokenizer(d, vocab_size=FULL_VOCAB, seed=0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"full-size tokenizer took {elapsed:.1f} s to build"
    return d


@pytest.fixture(scope="module", params=["tiny", "full"])
def tok(request, tiny_dir, full_dir):
    return MiniCPMVTokenizer.from_dir(tiny_dir if request.param == "tiny" else full_dir)


# ---------------------------------------------------------------- synthetic tokenizer.model
@pytest.mark.parametrize("vocab_size", [MIN_VOCAB_SIZE, 600, 1024, FULL_VOCAB])
def test_fixed_ids_and_size(vocab_size):
    m = build_model_proto(vocab_size, seed=3)
    assert len(m.pieces) == vocab_size
    for i, (piece, type_) in FIXED.items():
        assert (m.pieces[i].piece, m.pieces[i].type) == (piece, type_), i
    for i in range(3, 101):
        assert m.pieces[i].type == T.CONTROL
    assert [m.pieces[i].type for i in (113, 114)] == [T.USER_DEFINED] * 2
    assert [m.pieces[i].piece for i in (113, 114)] == ["<用户>", "<AI>"]
    assert [p.piece for p in m.pieces[115:371]] == [f"<0x{b:02X}>" for b in range(256)]
    assert all(p.type == T.BYTE for p in m.pieces[115:371])
    assert all(p.type == T.NORMAL for p in m.pieces[371:])
    assert len({p.piece for p in m.pieces}) == vocab_size  # unique
    assert m.trainer_spec.model_type == pb.TrainerSpec.BPE and m.trainer_spec.byte_fallback
    ns = m.normalizer_spec
    assert (ns.name, ns.add_dummy_prefix, ns.remove_extra_whitespaces, ns.escape_whitespaces) == (
        "identity", True, False, True)


def test_too_small_vocab_is_refused():
    with pytest.raises(ValueError, match="too small"):
        build_model_proto(MIN_VOCAB_SIZE - 1)


def test_full_size_loads_with_sentencepiece(full_dir):
    sp = spm.SentencePieceProcessor(model_file=str(full_dir / "tokenizer.model"))
    assert sp.get_piece_size() == FULL_VOCAB
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    for i, (piece, _) in FIXED.items():
        assert sp.id_to_piece(i) == piece


def test_deterministic_for_seed(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    write_tokenizer(a, 3000, seed=7)  # large enough to have filler pieces, the only thing the seed changes
    write_tokenizer(b, 3000, seed=7)
    write_tokenizer(c, 3000, seed=8)
    assert (a / "tokenizer.model").read_bytes() == (b / "tokenizer.model").read_bytes()
    assert (a / "tokenizer.model").read_bytes() != (c / "tokenizer.model").read_bytes()
    # the seed only renames fillers: real text tokenizes the same
    ta, tc = MiniCPMVTokenizer.from_dir(a), MiniCPMVTokenizer.from_dir(c)
    assert ta.encode(ENGLISH + CHINESE) == tc.encode(ENGLISH + CHINESE)


def test_config_files_match_the_real_ones(tiny_dir):
    cfg = json.loads((tiny_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    stm = json.loads((tiny_dir / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert cfg == TOKENIZER_CONFIG and stm == SPECIAL_TOKENS_MAP
    assert cfg["add_bos_token"] is True and cfg["legacy"] is True and cfg["pad_token"] == "<unk>"
    assert {int(k): v["content"] for k, v in cfg["added_tokens_decoder"].items()} == {
        i: p for i, (p, _) in FIXED.items()}
    assert stm["additional_special_tokens"] == [FIXED[i][0] for i in range(101, 113)]


# ---------------------------------------------------------------- MiniCPMVTokenizer
def test_special_ids(tok):
    assert (tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2, 0)
    assert (tok.im_start_id, tok.im_end_id, tok.slice_start_id, tok.slice_end_id) == (101, 102, 111, 112)
    assert tok.id_to_piece(tok.user_id) == "<用户>" and tok.id_to_piece(tok.ai_id) == "<AI>"
    assert tok.vocab_size in (1024, FULL_VOCAB)
    assert tok.special_ids == frozenset([0, 1, 2, *range(101, 113)])


def test_user_and_ai_are_one_id_each(tok):
    ids = tok.encode("<用户>你好<AI>", add_bos=False)
    assert ids.count(tok.user_id) == 1 and ids.count(tok.ai_id) == 1
    assert ids[-1] == tok.ai_id
    # the dummy prefix of sentencepiece gives a "▁" piece before <用户> at the start of a chunk
    assert [tok.id_to_piece(i) for i in ids[:2]] == ["▁", "<用户>"]


def test_placeholder_gives_64_unk_between_image_tokens(tok):
    prompt = "<用户><image>" + "<unk>" * 64 + "</image>\nWhat is in the image?<AI>"
    ids = tok.encode(prompt)
    assert ids[0] == tok.bos_id
    s = ids.index(101)
    assert ids[s + 1:s + 65] == [0] * 64
    assert ids[s + 65] == 102
    assert ids.count(0) == 64 and ids[-1] == tok.ai_id


def test_special_tokens_split_without_stripping(tok):
    ids = tok.encode("a </s> b<s>c", add_bos=False)
    assert ids.count(2) == 1 and ids.count(1) == 1
    pieces = [tok.id_to_piece(i) for i in ids]
    # chunks "a ", " b", "c" each get sentencepiece's dummy prefix; spaces around specials are kept
    assert pieces == ["▁a", "▁", "</s>", "▁", "▁b", "<s>", "▁c"]
    assert tok.decode(ids, skip_special_tokens=True) == "a   b c"


def test_bpe_merges_happen(tok):
    assert tok.tokenize("What is in the image") == ["▁What", "▁is", "▁in", "▁the", "▁image"]


@pytest.mark.parametrize("text", [ENGLISH, CHINESE, "\n", "\n\nx\n", " leading space", "mixed 中文 and English 😀"])
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert ids[0] == 1
    assert tok.decode(ids) == text


def test_chinese_is_partly_pieces_partly_byte_fallback(tok):
    pieces = tok.tokenize(CHINESE)
    assert "这" in pieces and "是" in pieces
    assert "<0xE7>" in pieces  # first byte of 猫 (E7 8C AB)
    assert any(p.startswith("<0x") for p in pieces) and any(not p.startswith("<0x") for p in pieces)


def test_decode_skips_special_tokens(tok):
    body = tok.encode("Hello world", add_bos=False)
    ids = [1] + body + [101, 0, 0, 102, 2]
    assert tok.decode(ids) == "Hello world"
    # legacy slow-LlamaTokenizer rendering: a space before a special token that follows text
    assert tok.decode([1] + body + [2], skip_special_tokens=False) == "<s> Hello world</s>"


def test_decode_rejects_negative_ids(tok):
    with pytest.raises(ValueError, match="negative"):
        tok.decode([-1])


def test_ids_beyond_the_pieces_of_a_padded_vocabulary_decode_to_nothing_with_one_warning(tmp_path):
    """A checkpoint whose config vocab_size (1024) exceeds its tokenizer's pieces (900): what the model may
    generate past the pieces decodes to nothing, with a single warning however many such ids come."""
    import warnings

    from ovexport.models.minicpmv2.tokenizer import UnknownTokenWarning
    from ovexport.models.registry import get_family

    ckpt = tmp_path / "ckpt"
    family = get_family("minicpmv2")
    family.write_synthetic(ckpt, size="tiny", seed=0)
    write_tokenizer(ckpt, vocab_size=900, seed=0)                  # fewer pieces than the model's vocabulary
    assert json.loads((ckpt / "config.json").read_text())["vocab_size"] == 1024
    tok = family.runtime(ckpt).tokenizer
    assert tok.vocab_size == 900
    body = tok.encode("Hello world", add_bos=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert tok.decode(body + [950, 1023]) == "Hello world"
        stream = tok.stream()
        text = "".join(stream.push(i) for i in [*body[:1], 901, *body[1:], 1000, 1001]) + stream.flush()
        assert tok.decode([1, 1023, 2], skip_special_tokens=False) == "<s></s>"
    assert text == "Hello world"
    unknown = [w for w in caught if issubclass(w.category, UnknownTokenWarning)]
    assert len(unknown) == 1 and "beyond the tokenizer's 900 pieces" in str(unknown[0].message)


def test_encode_matches_transformers_legacy_sentencepiece(tiny_dir):
    """Parity with transformers' sentencepiece tokenizer (legacy=True): special-token split + sp per chunk."""
    pytest.importorskip("transformers")
    try:
        from transformers.tokenization_utils_sentencepiece import SentencePieceBackend
    except ImportError:
        pytest.skip("transformers < 5 (pyproject allows >= 4.45) has no SentencePieceBackend: pip install 'transformers>=5'")
    cfg = {k: v for k, v in TOKENIZER_CONFIG.items() if k not in ("auto_map", "tokenizer_class", "added_tokens_decoder")}
    hf = SentencePieceBackend(vocab_file=str(tiny_dir / "tokenizer.model"), **cfg)
    ours = MiniCPMVTokenizer.from_dir(tiny_dir)
    for text in [
        "<用户><image>" + "<unk>" * 64 + "</image><slice><image><unk></image>\n<image><unk></image></slice>\n"
        "What is in the image?<AI>",
        "<用户>你好 there</s><AI> ok <ref>a cat</ref><box>1 2 3 4</box>",
        ENGLISH + CHINESE,
    ]:
        assert ours.encode(text, add_bos=False) == hf.encode(text, add_special_tokens=False), text


def test_from_dir_missing_files(tmp_path, tiny_dir):
    with pytest.raises(CheckpointError, match="tokenizer.model is missing"):
        MiniCPMVTokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes((tiny_dir / "tokenizer.model").read_bytes())
    with pytest.raises(CheckpointError, match="tokenizer_config.json is missing") as e:
        MiniCPMVTokenizer.from_dir(tmp_path)
    assert "\n" not in str(e.value) and "fix:" in str(e.value)


def test_from_dir_corrupt_model(tmp_path, tiny_dir):
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    (tmp_path / "tokenizer_config.json").write_text((tiny_dir / "tokenizer_config.json").read_text())
    with pytest.raises(CheckpointError, match="not a sentencepiece model"):
        MiniCPMVTokenizer.from_dir(tmp_path)


# ---------------------------------------------------------------- StreamDecoder
def _stream(tok, ids):
    sd = StreamDecoder(tok)
    parts = [sd.push(i) for i in ids]
    return parts, sd.flush()


@pytest.mark.parametrize("text", [CHINESE, ENGLISH, "猫猫猫 cat 猫。\n😀 end", " leading space"])
def test_stream_equals_decode_without_replacement_chars(tok, text):
    ids = tok.encode(text) + [tok.eos_id]
    parts, tail = _stream(tok, ids)
    assert "".join(parts) + tail == tok.decode(ids) == text
    assert not any("\ufffd" in p for p in parts)
    assert tail == ""


def test_stream_holds_partial_characters(tok):
    ids = tok.encode("猫", add_bos=False)  # "▁" + <0xE7> <0x8C> <0xAB>
    assert [tok.id_to_piece(i) for i in ids] == ["▁", "<0xE7>", "<0x8C>", "<0xAB>"]
    parts, tail = _stream(tok, ids)
    assert parts == ["", "", "", "猫"] and tail == ""
    # an unfinished character is flushed as the replacement char, like decode
    parts, tail = _stream(tok, ids[:3])
    assert "".join(parts) == "" and tail == tok.decode(ids[:3]) and tail.endswith("\ufffd")


def test_stream_leading_space_rule(tok):
    ids = tok.encode("Hello world", add_bos=False)
    parts, _ = _stream(tok, ids)
    assert parts == ["Hello", " world"]


def test_stream_random_ids_equal_decode(tok):
    rng = random.Random(0)
    n = tok.vocab_size
    for _ in range(200):
        ids = [rng.choice([rng.randrange(n), rng.randrange(115, 371), rng.randrange(0, 120), rng.randrange(371, 700)])
               for _ in range(rng.randrange(1, 30))]
        parts, tail = _stream(tok, ids)
        assert "".join(parts) + tail == tok.decode(ids), ids
