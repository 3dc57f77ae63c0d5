"""A synthetic sentencepiece tokenizer with MiniCPM-V-2's special ids, for synthetic checkpoints.

The real ``tokenizer.model`` is only on the Hub. This one is built directly as a ``ModelProto``
(no training): BPE, byte fallback, identity normalizer with a dummy prefix, and exactly the ids the
real model relies on::

    0 <unk> (UNKNOWN)   1 <s>, 2 </s> (CONTROL)   3..100 <reserved_N> (CONTROL)
    101 <image> 102 </image> 103 <ref> 104 </ref> 105 <box> 106 </box>
    107 <quad> 108 </quad> 109 <point> 110 </point> 111 <slice> 112 </slice> (USER_DEFINED)
    113 <用户> 114 <AI> (USER_DEFINED)   115..370 <0x00>..<0xFF> (BYTE)
    then NORMAL pieces: "▁", printable ASCII, English word/subword merges, common CJK characters,
    and unique fillers up to ``vocab_size``.

"\\n" and every character that is not a piece (most CJK, punctuation like "。") go through byte
fallback, so decoding multi-byte text needs byte buffering (what ``StreamDecoder`` is tested on).
Merges and CJK characters are truncated for small vocabularies; the fixed ids never move.
``seed`` only changes the text of the filler pieces: tokenization of real text does not depend on it.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

__all__ = [
    "write_tokenizer", "build_model_proto", "SPECIAL_PIECES", "TOKENIZER_CONFIG", "SPECIAL_TOKENS_MAP",
    "USER_PIECE", "AI_PIECE", "MIN_VOCAB_SIZE",
]

SPECIAL_PIECES: dict[int, str] = {
    0: "<unk>", 1: "<s>", 2: "</s>",
    101: "<image>", 102: "</image>", 103: "<ref>", 104: "</ref>", 105: "<box>", 106: "</box>",
    107: "<quad>", 108: "</quad>", 109: "<point>", 110: "</point>", 111: "<slice>", 112: "</slice>",
}
USER_PIECE = "<用户>"
AI_PIECE = "<AI>"
SPACE = "\u2581"  # ▁

_ADDITIONAL = ["<image>", "</image>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>",
               "<point>", "</point>", "<slice>", "</slice>"]


def _added(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}


# Same content as the real openbmb/MiniCPM-V-2 tokenizer_config.json (revision 1878519).
TOKENIZER_CONFIG: dict = {
    "add_bos_token": True,
    "add_eos_token": False,
    "added_tokens_decoder": {str(i): _added(c) for i, c in SPECIAL_PIECES.items()},
    "additional_special_tokens": list(_ADDITIONAL),
    "auto_map": {"AutoTokenizer": ["modeling_minicpmv.LlamaTokenizerWrapper", None]},
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": "<unk>",
    "padding_side": "right",
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizerWrapper",
    "truncation_side": "right",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}


def _tok(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


# Same content as the real special_tokens_map.json.
SPECIAL_TOKENS_MAP: dict = {
    "additional_special_tokens": list(_ADDITIONAL),
    "bos_token": _tok("<s>"),
    "eos_token": _tok("</s>"),
    "pad_token": "<unk>",
    "unk_token": _tok("<unk>"),
}

# Common English words (merged as "▁word" through the chain of its prefixes) and subwords.
_WORDS = (
    "the What what is in this image picture photo of a an and to describe Describe color The There "
    "there are on with for you it that Please please man woman people dog cat red blue green white "
    "black yellow sky table text Hello hello world how How many can see shown show This It be was has "
    "have at as by from or not which who where Where Who Is Yes No yes no one two three four five left "
    "right top bottom front background person standing sitting holding wearing looking street "
    "building car tree water large small some his her their they we me my your answer question about "
    "scene appears contains shows In On A An do does Can Could tell detail details describes object "
    "objects animal animals food window door house sign written words title number numbers"
).split()
_SUBWORDS = "ing ed er es ly tion ment ness able ers ings ion al ous ful".split()

# A few hundred frequent CJK characters (frequency order); anything else is byte fallback.
_CJK = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她"
    "里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老"
    "从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机"
    "给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产"
    "入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提"
    "感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛"
    "林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权"
    "往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式"
    "李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据"
    "导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切团图图片张描述颜狗草"
)

FIRST_NORMAL_ID = 113 + 2 + 256  # after specials, <用户>/<AI> and the 256 byte pieces
MIN_VOCAB_SIZE = FIRST_NORMAL_ID + 1 + 94  # "▁" and printable ASCII are mandatory too


def _unique(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _merge_pieces(words: tuple[str, ...] = ()) -> list[str]:
    """Multi-character pieces in priority order; every piece's prefix chain comes before it, so BPE can
    reach it by pairwise merges. ``words`` come first (a task's vocabulary, kept whole in small vocabularies)."""
    out: list[str] = []
    for w in (*words, *_WORDS):
        w = SPACE + w
        out.extend(w[:k] for k in range(2, len(w) + 1))
    for s in _SUBWORDS:
        out.extend(s[:k] for k in range(2, len(s) + 1))
    return _unique(out)


def build_model_proto(vocab_size: int, seed: int = 0, words: tuple[str, ...] = ()):
    """The ``sentencepiece_model_pb2.ModelProto`` of the synthetic tokenizer (see the module docstring);
    ``words`` become whole pieces before the built-in English words."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size {vocab_size} is too small: the fixed pieces need {MIN_VOCAB_SIZE}")
    T = pb.ModelProto.SentencePiece
    m = pb.ModelProto()

    def add(piece: str, type_, score: float = 0.0) -> None:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, type_

    for i in range(101):
        if i == 0:
            add("<unk>", T.UNKNOWN)
        elif i in SPECIAL_PIECES:
            add(SPECIAL_PIECES[i], T.CONTROL)
        else:
            add(f"<reserved_{i}>", T.CONTROL)
    for i in range(101, 113):
        add(SPECIAL_PIECES[i], T.USER_DEFINED)
    add(USER_PIECE, T.USER_DEFINED)
    add(AI_PIECE, T.USER_DEFINED)
    for b in range(256):
        add(f"<0x{b:02X}>", T.BYTE)
    assert len(m.pieces) == FIRST_NORMAL_ID

    # single characters: low scores (they are never merge results)
    chars = [SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    merges = _merge_pieces(tuple(words))
    cjk = [c for c in _unique(_CJK) if c not in chars]
    budget = vocab_size - FIRST_NORMAL_ID - len(chars)
    n_merges = min(len(merges), budget // 2)
    n_cjk = min(len(cjk), budget - n_merges)
    n_fill = budget - n_merges - n_cjk

    for k, c in enumerate(chars):
        add(c, T.NORMAL, -100000.0 - k)
    # merges: earlier = higher score = merged first
    for k, piece in enumerate(merges[:n_merges]):
        add(piece, T.NORMAL, -float(k))
    for k, c in enumerate(cjk[:n_cjk]):
        add(c, T.NORMAL, -200000.0 - k)
    # fillers: never produced by encoding (no piece is a prefix step towards them)
    rng = random.Random(seed)
    for k in range(n_fill):
        add(f"<filler_{k}_{rng.getrandbits(24):06x}>", T.NORMAL, -300000.0 - k)
    assert len(m.pieces) == vocab_size

    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = vocab_size
    ts.byte_fallback = True
    ts.split_digits = True
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
    ts.unk_piece, ts.bos_piece, ts.eos_piece, ts.pad_piece = "<unk>", "<s>", "</s>", "<pad>"
    ts.unk_surface = " \u2047 "
    ts.user_defined_symbols.extend([SPECIAL_PIECES[i] for i in range(101, 113)] + [USER_PIECE, AI_PIECE])
    ts.max_sentencepiece_length = 16
    ts.allow_whitespace_only_pieces = True

    ns = m.normalizer_spec
    ns.name = "identity"
    ns.precompiled_charsmap = b""
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return m


def write_tokenizer(out_dir: Path, vocab_size: int, seed: int = 0, words: tuple[str, ...] = ()) -> Path:
    """Write ``tokenizer.model``, ``tokenizer_config.json`` and ``special_tokens_map.json`` into
    ``out_dir`` (created if needed). Returns the path of ``tokenizer.model``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model_proto(vocab_size, seed, words)
    path = out_dir / "tokenizer.model"
    path.write_bytes(model.SerializeToString())
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(TOKENIZER_CONFIG, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps(SPECIAL_TOKENS_MAP, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
