"""CharTokenizer: round trips, the fixed special ids, batches and the JSON file."""

import json

import numpy as np
import pytest

from minitx.data import CharTokenizer
from minitx.data.tokenizers import SPECIAL_TOKENS

CORPUS = ["dreihundertzweiundvierzig", "three hundred and forty-two", "fünfzehn, groß"]


@pytest.fixture
def tok():
    return CharTokenizer.from_corpus(CORPUS)


def test_specials_have_fixed_ids(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.id_to_token[:5] == ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>"]
    assert tok.vocab_size == len(SPECIAL_TOKENS) + len(set("".join(CORPUS)))


def test_round_trip_including_non_ascii(tok):
    for text in CORPUS:
        ids = tok.encode(text)
        assert min(ids) >= len(SPECIAL_TOKENS)
        assert tok.decode(ids) == text


def test_bos_eos_unknown_and_skip_special(tok):
    ids = tok.encode("zwei?", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert ids[-2] == tok.unk_id  # "?" is not in the corpus
    assert tok.decode(ids) == "zwei"
    assert tok.decode(ids, skip_special=False) == "<bos>zwei<unk><eos>"
    assert tok.decode(np.array(ids)) == "zwei"


def test_vocabulary_does_not_depend_on_corpus_order():
    assert CharTokenizer.from_corpus(CORPUS).chars == CharTokenizer.from_corpus(CORPUS[::-1]).chars


def test_encode_batch_pads_with_pad_id(tok):
    ids, lengths = tok.encode_batch(["drei", "zweiundvierzig"], add_eos=True)
    assert ids.dtype == np.int64 and ids.shape == (2, 15)
    assert lengths.tolist() == [5, 15]
    assert np.all(ids[0, 5:] == tok.pad_id)
    assert ids[0, 4] == tok.eos_id
    assert tok.decode_batch(ids) == ["drei", "zweiundvierzig"]
    wide, _ = tok.encode_batch(["drei"], length=8)
    assert wide.shape == (1, 8)
    with pytest.raises(ValueError, match="length=2"):
        tok.encode_batch(["drei"], length=2)


def test_save_load_round_trip_as_json(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    state = json.loads(path.read_text(encoding="utf-8"))  # a readable JSON file, not a pickle
    assert state["special_tokens"] == list(SPECIAL_TOKENS)
    loaded = CharTokenizer.load(path)
    assert loaded.id_to_token == tok.id_to_token
    assert loaded.encode("fünf") == tok.encode("fünf")


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"type": "BPE", "version": 1}))
    with pytest.raises(ValueError, match="not a CharTokenizer"):
        CharTokenizer.load(path)


def test_bad_vocabularies_and_ids_raise(tok):
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="single string"):
        CharTokenizer.from_corpus("abc")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_decode_refuses_fractional_ids():
    tok = CharTokenizer.from_corpus(["abc"])
    assert tok.decode([]) == ""
    with pytest.raises(TypeError, match="decode: token ids must be integers, got dtype float64"):
        tok.decode([5.7])
