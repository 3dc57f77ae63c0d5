"""The text-embeddings check's edge ids come from the tokenizer the family gives (its named specials and its
``special_ids``), not from one model's markup."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ovexport.validators.text_embeddings import edge_ids

pytestmark = pytest.mark.unit


class _Tok:
    bos_id, eos_id, pad_id = 1, 2, 0
    special_ids = frozenset({0, 1, 2, 7, 9, 500})        # 500: outside the vocabulary below

    def id_to_piece(self, i: int) -> str:
        return {7: "<img>", 9: "<img>"}.get(i, f"p{i}")   # two specials with one piece: both kept


def test_every_special_id_is_an_edge_named_by_its_piece():
    ref = SimpleNamespace(tokenizer=_Tok(), config=SimpleNamespace(vocab_size=100))
    edges = edge_ids(ref)
    assert edges == {"zero": 0, "bos": 1, "eos": 2, "pad": 0, "<img>": 7, "special_9": 9, "last": 99}


def test_a_tokenizer_without_special_ids_or_pieces_gives_its_named_specials():
    tok = SimpleNamespace(bos_id=3, eos_id=4, pad_id=5, unk_id=200)   # unk outside the vocabulary: left out
    assert edge_ids(SimpleNamespace(tokenizer=tok, config=SimpleNamespace(vocab_size=50))) == \
        {"zero": 0, "bos": 3, "eos": 4, "pad": 5, "last": 49}
    tok.special_ids = [3, 6]
    assert edge_ids(SimpleNamespace(tokenizer=tok, config=SimpleNamespace(vocab_size=50)))["special_6"] == 6
