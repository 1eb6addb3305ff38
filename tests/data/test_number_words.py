"""Number words: disjoint splits of the integers, num2words' spelling kept, the JSON cache."""

import json

import numpy as np
import pytest

import minitx.data.number_words as nw
from minitx.data import load_number_words

num2words = pytest.importorskip("num2words", reason="number words need `pip install num2words`")

SMALL = dict(low=0, high=5_000, count=300, seed=2)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITX_CACHE", str(tmp_path / "env-cache"))
    return tmp_path / "explicit-cache"


def load_all(cache, **kwargs):
    return {s: load_number_words(s, cache_dir=cache, **{**SMALL, **kwargs}) for s in nw.SPLITS}


def test_splits_are_disjoint_and_cover_the_sample(cache):
    splits = load_all(cache)
    numbers = {s: set(n.tolist()) for s, (_, _, n) in splits.items()}
    assert not numbers["train"] & numbers["test"]
    assert not numbers["train"] & numbers["validation"]
    assert not numbers["validation"] & numbers["test"]
    assert sum(len(v) for v in numbers.values()) == 300
    assert [len(splits[s][2]) for s in nw.SPLITS] == [240, 30, 30]
    assert all(0 <= n <= 5_000 for v in numbers.values() for n in v)


def test_pairs_are_num2words_output_unchanged(cache):
    german, english, numbers = load_number_words("test", cache_dir=cache, **SMALL)
    assert german.dtype.kind == english.dtype.kind == "U" and numbers.dtype == np.int64
    for de, en, n in zip(german, english, numbers.tolist(), strict=True):
        assert de == num2words.num2words(n, lang="de")
        assert en == num2words.num2words(n, lang="en")


def test_spelling_sample():
    assert nw._spell(342, "en") == "three hundred and forty-two"
    assert nw._spell(342, "de") == "dreihundertzweiundvierzig"


def test_cached_file_is_written_once_and_reused(cache, monkeypatch):
    first = load_all(cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"
    stamp = files[0].stat().st_mtime_ns
    assert json.loads(files[0].read_text(encoding="utf-8"))["params"]["count"] == 300

    def no_spelling(number, lang):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(nw, "_spell", no_spelling)
    second = load_all(cache)
    assert files[0].stat().st_mtime_ns == stamp
    for s in nw.SPLITS:
        for a, b in zip(first[s], second[s], strict=True):
            np.testing.assert_array_equal(a, b)


def test_cache_folder_comes_from_the_environment(cache, tmp_path):
    load_number_words("train", **SMALL)
    assert len(list((tmp_path / "env-cache").glob("number_words_*.json"))) == 1
    assert not cache.exists()


def test_other_seeds_give_other_numbers(cache):
    a = load_number_words("train", cache_dir=cache, **SMALL)[2]
    b = load_number_words("train", cache_dir=cache, **{**SMALL, "seed": 3})[2]
    assert set(a.tolist()) != set(b.tolist())


def test_bad_arguments(cache):
    with pytest.raises(ValueError, match="split"):
        load_number_words("dev", cache_dir=cache)
    with pytest.raises(ValueError, match="count"):
        load_number_words("train", low=0, high=9, count=11, cache_dir=cache)
    with pytest.raises(ValueError, match="fractions"):
        load_number_words("train", fractions=(0.9, 0.1), cache_dir=cache, **{"count": 5})
