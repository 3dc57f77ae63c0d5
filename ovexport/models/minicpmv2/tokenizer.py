"""MiniCPM-V-2's tokenizer without transformers: sentencepiece plus the special-token splitting of the
HF slow ``LlamaTokenizer`` (``legacy=True``) that the original ``LlamaTokenizerWrapper`` subclasses.

Encoding: the text is split on the added tokens of ``tokenizer_config.json`` (``<unk>``, ``<s>``,
``</s>``, ``<image>`` ... ``</slice>``; no stripping around them, as their ``lstrip``/``rstrip`` are
false), those map to their ids directly, and every non-empty chunk in between goes through
``sp.encode(chunk)`` (which applies the model's dummy-prefix rule, per chunk). BOS is prepended.
``<用户>``/``<AI>`` are ordinary sentencepiece pieces (user-defined symbols), not added tokens.

Decoding with ``skip_special_tokens=True`` drops the special ids and decodes the rest with
sentencepiece; ``StreamDecoder`` produces the same text incrementally.

A checkpoint may pad its vocabulary (config ``vocab_size`` larger than the tokenizer's pieces, for matmul
alignment): the model can then generate an id no piece stands for. Such an id decodes to nothing, with one
``UnknownTokenWarning`` per tokenizer (not one per token); a negative id is still a bug and raises.
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from ovexport.errors import CheckpointError

__all__ = ["MiniCPMVTokenizer", "StreamDecoder", "UnknownTokenWarning"]


class UnknownTokenWarning(RuntimeWarning):
    """The model generated an id beyond the tokenizer's pieces (a padded vocabulary); it decodes to nothing."""

_FIX = "point the recipe's source at a complete MiniCPM-V-2 checkpoint (tokenizer.model, tokenizer_config.json)"


class MiniCPMVTokenizer:
    """Encode/decode like the original ``LlamaTokenizerWrapper`` of openbmb/MiniCPM-V-2."""

    def __init__(self, sp, config: dict, where: str = "tokenizer"):
        self.sp = sp
        self.config = dict(config)
        self.where = where
        n = sp.get_piece_size()
        added: dict[int, str] = {}
        special: set[int] = set()
        for k, v in (self.config.get("added_tokens_decoder") or {}).items():
            content = v["content"] if isinstance(v, dict) else str(v)
            added[int(k)] = content
            if not isinstance(v, dict) or v.get("special", True):
                special.add(int(k))
        if not added:  # a bare tokenizer.model: fall back to the real checkpoint's added tokens
            from .synth_tokenizer import SPECIAL_PIECES
            added = dict(SPECIAL_PIECES)
            special = set(added)
        self.added_tokens: dict[str, int] = {c: i for i, c in added.items()}
        bad = sorted(i for i in added if i >= n)
        if bad:
            raise CheckpointError(f"{where}: added token id {bad[0]} is outside the vocabulary of {n} pieces", fix=_FIX)
        # the special tokens named in the config (bos/eos/unk/pad) are special whatever the decoder says
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            tok = self.config.get(key)
            if isinstance(tok, dict):
                tok = tok.get("content")
            if tok in self.added_tokens:
                special.add(self.added_tokens[tok])
        self.special_ids: frozenset[int] = frozenset(special)
        self.add_bos_token: bool = bool(self.config.get("add_bos_token", True))
        alternatives = sorted(self.added_tokens, key=len, reverse=True)
        self._split_re = re.compile("(" + "|".join(re.escape(a) for a in alternatives) + ")")
        for piece in ("<image>", "</image>", "<slice>", "</slice>"):
            if piece not in self.added_tokens:
                raise CheckpointError(f"{where}: the added token {piece} is not defined", fix=_FIX)
        self._user_id = self._piece_id("<用户>")
        self._ai_id = self._piece_id("<AI>")
        self._warned_unknown = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dir(cls, path: str | Path) -> "MiniCPMVTokenizer":
        """Load ``tokenizer.model`` and ``tokenizer_config.json`` from a checkpoint directory."""
        import sentencepiece as spm

        path = Path(path)
        model_file = path / "tokenizer.model"
        config_file = path / "tokenizer_config.json"
        for f in (model_file, config_file):
            if not f.is_file():
                raise CheckpointError(f"{f} is missing", fix=_FIX)
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{config_file}: not valid JSON ({e})".replace("\n", " "),
                                  fix="re-download the checkpoint") from None
        try:
            sp = spm.SentencePieceProcessor(model_file=str(model_file))
        except (RuntimeError, OSError) as e:
            raise CheckpointError(f"{model_file}: not a sentencepiece model ({e})".replace("\n", " "),
                                  fix="re-download the checkpoint") from None
        return cls(sp, config, where=str(path))

    def _piece_id(self, piece: str) -> int:
        i = self.sp.piece_to_id(piece)
        if self.sp.id_to_piece(i) != piece:
            raise CheckpointError(f"{self.where}: tokenizer.model has no piece {piece}", fix=_FIX)
        return i

    # ------------------------------------------------------------------ ids
    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def bos_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    @property
    def unk_id(self) -> int:
        return self.sp.unk_id()

    @property
    def pad_id(self) -> int:
        """``pad_token`` is ``<unk>`` in the real config (the original pads with 0)."""
        pad = self.config.get("pad_token", "<unk>")
        if isinstance(pad, dict):
            pad = pad.get("content")
        return self.added_tokens.get(pad, self.unk_id)

    @property
    def im_start_id(self) -> int:
        return self.added_tokens["<image>"]

    @property
    def im_end_id(self) -> int:
        return self.added_tokens["</image>"]

    @property
    def slice_start_id(self) -> int:
        return self.added_tokens["<slice>"]

    @property
    def slice_end_id(self) -> int:
        return self.added_tokens["</slice>"]

    @property
    def user_id(self) -> int:
        return self._user_id

    @property
    def ai_id(self) -> int:
        return self._ai_id

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def piece_to_id(self, piece: str) -> int:
        return self.added_tokens.get(piece, self.sp.piece_to_id(piece))

    # ------------------------------------------------------------------ encode / decode
    def tokenize(self, text: str) -> list[str]:
        """The pieces of ``encode(text, add_bos=False)``."""
        return [self.id_to_piece(i) for i in self.encode(text, add_bos=False)]

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids: list[int] = [self.bos_id] if add_bos else []
        for chunk in self._split_re.split(text):
            if not chunk:
                continue
            special = self.added_tokens.get(chunk)
            if special is not None:
                ids.append(special)
            else:
                ids.extend(self.sp.encode(chunk))
        return ids

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """The ids as ints, without those beyond the pieces (padded vocabulary: warned about once)."""
        out = [int(i) for i in ids]
        n = self.vocab_size
        beyond = [i for i in out if i >= n]
        for i in out:
            if i < 0:
                raise ValueError(f"token id {i} is negative")
        if beyond:
            if not self._warned_unknown:
                self._warned_unknown = True
                warnings.warn(f"token id {beyond[0]} is beyond the tokenizer's {n} pieces (the checkpoint pads its "
                              "vocabulary); such ids decode to nothing", UnknownTokenWarning, stacklevel=3)
            out = [i for i in out if i < n]
        return out

    def _decode_text(self, ids: list[int]) -> str:
        """sentencepiece decode of ids that contain no special token; control pieces decode to ''."""
        return self.sp.decode([i for i in ids if not self.sp.is_control(i)])

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``. With ``skip_special_tokens=False``, special tokens are written out the way the
        legacy slow LlamaTokenizer does (a space before a special token that follows text)."""
        ids = self._check_ids(ids)
        if skip_special_tokens:
            return self._decode_text([i for i in ids if i not in self.special_ids])
        id_to_added = {v: k for k, v in self.added_tokens.items()}
        out, cur, prev_special = "", [], False
        for k, i in enumerate(ids):
            if i in self.special_ids:
                if not prev_special and k != 0:
                    out += " "
                out += self._decode_text(cur) + id_to_added.get(i, self.id_to_piece(i))
                cur, prev_special = [], True
            else:
                cur.append(i)
                prev_special = False
        return out + self._decode_text(cur)

    def stream(self) -> "StreamDecoder":
        return StreamDecoder(self)


class StreamDecoder:
    """Incremental detokenizer: ``"".join(push(i) for i in ids) + flush() == tokenizer.decode(ids)``
    (special tokens skipped).

    Text is emitted only once it is final: bytes of a multi-byte character split over byte-fallback
    pieces are held until the character is complete (no U+FFFD for valid text), and the leading-space
    rule of sentencepiece (the first piece loses its "▁") is applied once, at the very start.
    It decodes a short window (from the last emitted boundary), not the whole history.
    """

    def __init__(self, tokenizer: MiniCPMVTokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the decode window (a token already emitted, for the space rule)
        self._read = 0  # tokens before this are emitted

    def push(self, token_id: int) -> str:
        tok = self.tokenizer
        checked = tok._check_ids([token_id])
        if not checked:  # beyond the pieces (padded vocabulary): nothing to show
            return ""
        token_id = checked[0]
        if token_id in tok.special_ids or tok.sp.is_control(token_id):
            return ""
        self.ids.append(token_id)
        return self._emit(final=False)

    def flush(self) -> str:
        """Whatever is still held (an unfinished byte sequence decodes to U+FFFD, as in ``decode``)."""
        return self._emit(final=True)

    def reset(self) -> None:
        self.ids.clear()
        self._prefix = self._read = 0

    def _emit(self, final: bool) -> str:
        if self._read == len(self.ids):
            return ""
        dec = self.tokenizer._decode_text
        prefix_text = dec(self.ids[self._prefix:self._read])
        new_text = dec(self.ids[self._prefix:])
        if not final and (len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd")):
            return ""
        out = new_text[len(prefix_text):]
        self._prefix, self._read = self._read, len(self.ids)
        return out
