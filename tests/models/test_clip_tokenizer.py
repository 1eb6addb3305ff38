"""models/clip_tokenizer.py: ids equal transformers' CLIPTokenizer's on a set of prompts, with a
small vocabulary and merges learned here (a few hundred merges on a made-up corpus, no
network); and the BPE steps on their own."""

import json
from collections import Counter

import numpy as np
import pytest

from models.clip_tokenizer import EOS, SOS, CLIPTokenizer, byte_alphabet, pieces

CORPUS = """A photo of a cat. A photo of a dog! A blurry photo of the big red car; an image of
two small birds, sitting on a tree. It's a drawing of the cat's toy -- they're playing. We've
seen 3 dogs and 12 cats in 2021. Photos of photographs: a photographer's photo. The dog's
bone, the bird's nest, the tree's leaves. I'm sure you'll like it, he'd say."""


def learn_bpe(text, n_merges):
    """Sennrich et al. 2016, Algorithm 1: count adjacent symbol pairs over the words (each
    ending in </w>), merge the most frequent (ties: the smallest pair), n times."""
    alphabet = byte_alphabet()
    words = Counter(tuple(alphabet[b] for b in w.encode()) for w in pieces(text.lower()))
    words = Counter({w[:-1] + (w[-1] + "</w>",): n for w, n in words.items()})
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    return merges


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """vocab.json + merges.txt laid out as CLIP's: the 256 byte symbols, the same with </w>,
    one symbol per merge, then the two special tokens."""
    folder = tmp_path_factory.mktemp("clip_tok")
    merges = learn_bpe(CORPUS, 300)
    symbols = list(byte_alphabet().values())
    symbols += [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOS, EOS]
    vocab = {s: i for i, s in enumerate(dict.fromkeys(symbols))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(
        f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return folder


PROMPTS = ["a photo of a cat.", "A PHOTO of a Dog!", "  a   blurry\tphoto\nof the big red car ",
           "it's the cat's toy; they're here, we've seen i'm you'll he'd",
           "3 dogs and 12 cats in 2021", "photographs: a photographer's photo",
           "café, naïve façade, Über", "emoji 🐈 and ½ ² Ⅻ and ...!!! -- ?", "",
           "a photo of a <|endoftext|> cat<|startoftext|>!",
           "zebra xylophone quokka (unseen words)", " ".join(["tree"] * 100)]


def test_ids_equal_transformers_clip_tokenizer(folder):
    transformers = pytest.importorskip("transformers")
    reference = transformers.CLIPTokenizer.from_pretrained(str(folder))
    theirs = reference(PROMPTS, padding="max_length", max_length=77,
                       truncation=True)["input_ids"]
    ours = CLIPTokenizer.from_folder(folder)(PROMPTS)
    assert ours.shape == (len(PROMPTS), 77) and ours.dtype == np.int64
    for prompt, a, b in zip(PROMPTS, ours, theirs):
        assert a.tolist() == list(b), prompt


def test_merges_compress_and_decode_inverts(folder):
    tok = CLIPTokenizer.from_folder(folder, context_length=16)
    ids = tok.encode("a photo of a cat.")
    assert ids[0] == tok.sos and ids[-1] == tok.eos
    assert len(ids) - 2 < len("a photo of a cat.".replace(" ", ""))  # merges apply
    assert tok.decode(ids) == "a photo of a cat ."  # pieces end in </w>: a space after each
    assert tok.decode(tok(["Café ÜBER 🐈"])[0]) == "café über 🐈"


def test_cut_to_the_context_keeps_end_of_text_and_pads(folder):
    tok = CLIPTokenizer.from_folder(folder, context_length=8)
    rows = tok(["tree " * 20, "cat"])
    assert rows[0, -1] == tok.eos and (rows[0, 1:-1] != tok.eos).all()
    first = list(rows[1]).index(tok.eos)
    assert (rows[1, first:] == tok.pad).all()


def test_pieces_split_as_the_released_pattern():
    assert pieces("it's 12 cats!!") == ["it", "'s", "1", "2", "cats", "!!"]
    assert pieces("naïve ½x") == ["naïve", "½", "x"]  # ½ is a number (No), not a letter


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        CLIPTokenizer.from_folder(tmp_path)
