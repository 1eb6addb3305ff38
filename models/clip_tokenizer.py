"""CLIP's text tokenizer: lower-cased byte-level byte-pair encoding (BPE).

Sennrich, Haddow & Birch, "Neural Machine Translation of Rare Words with Subword Units", ACL
2016 (BPE: start from single symbols and apply the learned merges, most frequent pair first);
Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML
2021, §2.4: "a lower-cased byte pair encoding (BPE) representation of the text with a 49,152
vocab size ... the text sequence is bracketed with [SOS] and [EOS] tokens", at most 76 tokens
(77 positions with [SOS]). The published checkpoint carries the two files this reads:

* ``vocab.json``: {symbol: id}. Symbols are strings over a 256-character alphabet, one
  printable character per byte (:func:`byte_alphabet`), so every UTF-8 text is covered and no
  character is ever unknown; ``</w>`` marks the end of a word.
* ``merges.txt``: one pair ``a b`` per line (after a ``#version`` header), in the order they
  were learned: the earlier a merge, the higher its priority.

Encoding a text, step by step (:meth:`CLIPTokenizer.encode`):
    1. clean:   Unicode NFC, every run of whitespace -> one space, lower case
    2. split:   special tokens (first, as written); then the contractions 's 't 're 've 'm 'll
                'd, runs of letters, single digits, runs of other non-space characters
                (whitespace is dropped) (:func:`pieces`)
    3. bytes:   each piece's UTF-8 bytes -> the byte alphabet; ``</w>`` joins the last symbol
    4. merge:   apply merges, earliest-learned pair first, until none applies (:meth:`bpe`)
    5. ids:     [SOS] + ids + [EOS], cut to the context (keeping [EOS]), padded

The released code splits with the third-party ``regex`` package (``\\p{L}`` letters, ``\\p{N}``
numbers), which Python's ``re`` lacks; step 2 classifies characters with ``unicodedata``
instead, which gives the same pieces. What may differ: step 1's whitespace is Python's (``\\s``
of ``re``, which also counts the ASCII separators \\x1c-\\x1f), and the released code first
repairs broken Unicode with the optional ``ftfy`` package, which this does not.
"""

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

SOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
CONTRACTIONS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d")
SPECIALS = re.compile(f"({re.escape(SOS)}|{re.escape(EOS)})")  # kept by re.split: a group


@lru_cache(maxsize=1)
def byte_alphabet():
    """{byte: printable character}: the 188 printable Latin-1 bytes stand for themselves; the
    other 68 (controls, space, ...) are given the characters from U+0100 on, in byte order. A
    BPE symbol is then an ordinary string, and no byte is lost or confused with whitespace."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    extra = (b for b in range(256) if b not in printable)
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return table


def clean(text):
    """Step 1: NFC, whitespace runs -> one space, lower case (strip the ends)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()


def _kind(char):
    """L (letter), N (number), S (space) or O (other), from the Unicode category."""
    if char.isspace():
        return "S"
    category = unicodedata.category(char)[0]
    return category if category in "LN" else "O"


def pieces(text):
    """Step 2: the pieces BPE encodes one by one. At each position the first that applies: a
    contraction, a run of letters, one digit, a run of other characters (the special tokens
    are split off before, by :meth:`CLIPTokenizer.encode`)."""
    out, i = [], 0
    while i < len(text):
        kind = _kind(text[i])
        contraction = CONTRACTIONS.match(text, i)
        if kind == "S":  # whitespace separates pieces and is dropped
            i += 1
            continue
        if contraction:
            end = contraction.end()
        elif kind == "N":  # numbers are split into single digits
            end = i + 1
        else:  # a run of letters, or of other characters (punctuation, symbols, marks)
            end = i + 1
            while end < len(text) and _kind(text[end]) == kind:
                end += 1
        out.append(text[i:end])
        i = end
    return out


class CLIPTokenizer:
    """Text -> (B, context) int64 ids, from a checkpoint's ``vocab.json`` and ``merges.txt``.

    >>> tok = CLIPTokenizer.from_folder("path/to/clip-vit-base-patch32")  # doctest: +SKIP
    >>> tok(["a photo of a cat."]).shape  # doctest: +SKIP
    (1, 77)
    """

    def __init__(self, vocab, merges, context_length=77, pad_token=EOS):
        """vocab: {symbol: id}; merges: [(a, b)] in the order learned; padding with
        `pad_token` (transformers' choice for CLIP: <|endoftext|>; the released code pads 0)."""
        missing = [t for t in (SOS, EOS, pad_token) if t not in vocab]
        if missing:
            raise ValueError(f"CLIPTokenizer: the vocabulary lacks {missing}")
        self.vocab, self.context_length = dict(vocab), context_length
        self.ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}  # lower: earlier
        self.sos, self.eos, self.pad = vocab[SOS], vocab[EOS], vocab[pad_token]
        self.symbols = {i: s for s, i in vocab.items()}
        self._cache = {}

    @classmethod
    def from_folder(cls, folder, context_length=77):
        """Read ``vocab.json`` and ``merges.txt`` (and the pad token of
        ``special_tokens_map.json``, when the folder has one)."""
        folder = Path(folder)
        for name in ("vocab.json", "merges.txt"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"CLIPTokenizer: {folder} has no {name} (CLIP's BPE "
                                        f"vocabulary is part of the published checkpoint)")
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split()) for line in lines
                  if line.strip() and not line.startswith("#version")]
        pad = EOS
        specials = folder / "special_tokens_map.json"
        if specials.exists():
            entry = json.loads(specials.read_text()).get("pad_token", EOS)
            pad = entry["content"] if isinstance(entry, dict) else entry
        return cls(vocab, merges, context_length, pad)

    def bpe(self, piece):
        """Steps 3-4: one piece -> its BPE symbols (Sennrich et al. 2016, Algorithm 1 applied:
        repeatedly merge every occurrence of the earliest-learned adjacent pair)."""
        if piece in self._cache:
            return self._cache[piece]
        alphabet = byte_alphabet()
        word = [alphabet[b] for b in piece.encode("utf-8")]
        word[-1] += END_OF_WORD  # the last symbol ends the word: "cat" -> c a t</w>
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break  # no learned merge applies any more
            merged, i = [], 0
            while i < len(word):  # left to right, non-overlapping
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[piece] = word
        return word

    def encode(self, text):
        """One text -> [SOS] + its ids + [EOS] (not cut, not padded). A symbol missing from
        the vocabulary (only in a truncated vocabulary) becomes <|endoftext|>."""
        ids = [self.sos]
        for part in SPECIALS.split(text):  # special tokens first, as written, anywhere
            if part in (SOS, EOS):
                ids.append(self.vocab[part])
                continue
            for piece in pieces(clean(part)):
                ids += [self.vocab.get(s, self.eos) for s in self.bpe(piece)]
        return ids + [self.eos]

    def __call__(self, texts):
        """Step 5: a list of texts -> (B, context) int64, each cut to the context with [EOS]
        kept last, then padded."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.full((len(texts), self.context_length), self.pad, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            if len(ids) > self.context_length:  # cut, and end with [EOS] again
                ids = ids[:self.context_length - 1] + [self.eos]
            out[row, :len(ids)] = ids
        return out

    def decode(self, ids):
        """Ids -> text: symbols joined, ``</w>`` -> a space, bytes back to UTF-8 (specials and
        padding dropped)."""
        to_byte = {c: b for b, c in byte_alphabet().items()} | {" ": ord(" ")}
        symbols = "".join(self.symbols[int(i)] for i in ids
                          if int(i) not in (self.sos, self.eos, self.pad))
        data = bytes(to_byte[c] for c in symbols.replace(END_OF_WORD, " "))
        return data.decode("utf-8", errors="replace").strip()
