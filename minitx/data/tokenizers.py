"""Character-level tokenizer with a fixed set of special tokens.

Each character of the corpus gets an id; five special tokens come first at fixed ids, so a model
can rely on them (e.g. ``pad_id == 0`` for masking padded positions in attention):

    0 <pad>   padding in a batch of unequal lengths
    1 <bos>   beginning of sequence (the decoder's first input)
    2 <eos>   end of sequence (where generation stops)
    3 <unk>   a character not seen in the corpus
    4 <mask>  a masked position (for masked-language-model style training)

The vocabulary is saved as JSON, never pickled, so a saved tokenizer is readable and safe to load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>", "<mask>")
_FORMAT_VERSION = 1


def _ids(ids):
    """Token ids as a flat list of ints; fractional ids are an error, not truncated."""
    ids = np.asarray(ids)
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"decode: token ids must be integers, got dtype {ids.dtype}")
    return ids.astype(np.int64).reshape(-1).tolist()


class CharTokenizer:
    """Map text to lists of character ids and back.

    Args:
        chars: the vocabulary characters, each a single character, no duplicates. Their ids
            follow the specials in the given order.

    Example:
        >>> tok = CharTokenizer.from_corpus(["hallo", "welt"])
        >>> ids = tok.encode("halt", add_bos=True, add_eos=True)
        >>> ids[0] == tok.bos_id, ids[-1] == tok.eos_id, tok.decode(ids)
        (True, True, 'halt')
    """

    pad_id, bos_id, eos_id, unk_id, mask_id = range(len(SPECIAL_TOKENS))

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"vocabulary entries must be single characters, got {bad[:5]}")
        if len(set(chars)) != len(chars):
            dupes = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"vocabulary has duplicate characters: {dupes}")
        self.chars = chars
        self.id_to_token = list(SPECIAL_TOKENS) + chars
        self.char_to_id = {c: i for i, c in enumerate(chars, start=len(SPECIAL_TOKENS))}

    @classmethod
    def from_corpus(cls, texts: Iterable[str]) -> CharTokenizer:
        """Build the vocabulary from every character that occurs in ``texts``, sorted.

        Sorting makes the ids independent of the order of the corpus.
        """
        if isinstance(texts, str):
            raise ValueError("from_corpus expects an iterable of texts, got a single string")
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self.id_to_token)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Return the ids of ``text``; unknown characters become ``unk_id``."""
        ids = [self.char_to_id.get(c, self.unk_id) for c in text]
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Turn ids back into text.

        Args:
            ids: token ids (a list or a 1-D array).
            skip_special: drop special tokens; otherwise they appear as ``<pad>``, ``<eos>``...
        """
        out = []
        for i in _ids(ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            if skip_special and i < len(SPECIAL_TOKENS):
                continue
            out.append(self.id_to_token[i])
        return "".join(out)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode several texts into one right-padded id matrix.

        Args:
            texts: the texts.
            add_bos, add_eos: as in `encode`.
            length: pad to this many columns; default the longest encoded text.

        Returns:
            ``(ids, lengths)``: ids (B, T) int64 padded with ``pad_id``, lengths (B,) int64, the
            number of real tokens in each row.
        """
        encoded = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        longest = int(lengths.max()) if len(encoded) else 0
        if length is None:
            length = longest
        elif length < longest:
            raise ValueError(f"length={length} is shorter than the longest text ({longest} ids)")
        ids = np.full((len(encoded), length), self.pad_id, dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
        return ids, lengths

    def decode_batch(self, ids: np.ndarray, skip_special: bool = True) -> list[str]:
        """Decode each row of a (B, T) id matrix."""
        return [self.decode(row, skip_special=skip_special) for row in np.asarray(ids)]

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to ``path`` as JSON."""
        state = {
            "type": "CharTokenizer",
            "version": _FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "chars": self.chars,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a tokenizer written by `save`, checking that its specials match this version."""
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("type") != "CharTokenizer" or state.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path} is not a CharTokenizer file of version {_FORMAT_VERSION}: "
                f"type={state.get('type')!r}, version={state.get('version')!r}"
            )
        if state["special_tokens"] != list(SPECIAL_TOKENS):
            raise ValueError(
                f"{path} has special tokens {state['special_tokens']}, "
                f"expected {list(SPECIAL_TOKENS)}"
            )
        return cls(state["chars"])
