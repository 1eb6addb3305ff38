"""German -> English number words, a small translation task with an exact answer.

Each pair spells one integer in two languages with the ``num2words`` package
(https://github.com/savoirfairelinux/num2words), e.g.

    342119  "dreihundertzweiundvierzigtausendeinhundertneunzehn"
            -> "three hundred and forty-two thousand, one hundred and nineteen"

German writes a number as one compound word with the units before the tens ("zweiundvierzig",
two-and-forty) while English spells the tens first, so a model must learn to reorder, not just
to map words. num2words' output is kept exactly as it is (British "and", commas between groups).

The integers, not the pairs, are split into train/validation/test, so no test number is ever
seen in training. The pairs are generated once and cached as JSON in the cache folder (see
`minitx.data.cache`), because num2words takes about a quarter of a millisecond per pair.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from minitx.data.cache import atomic_write_bytes, cache_root
from minitx.data.splits import split_indices

SPLITS = ("train", "validation", "test")
_FORMAT_VERSION = 1


def _spell(number: int, lang: str) -> str:
    """Spell one integer with num2words (imported here: it is an optional dependency)."""
    try:
        from num2words import num2words
    except ImportError as err:
        raise ModuleNotFoundError(
            "number words are generated with num2words: run `pip install num2words` "
            "(or `pip install minitx[examples]`)"
        ) from err
    return num2words(number, lang=lang)


def _cache_name(low: int, high: int, count: int | None, seed: int, source: str, target: str) -> str:
    size = "all" if count is None else str(count)
    return f"number_words_{source}-{target}_{low}-{high}_n{size}_seed{seed}.json"


def _generate(low: int, high: int, count: int | None, seed: int, source: str, target: str) -> dict:
    """Sample the integers (sorted, so the file reads in order) and spell each in both languages."""
    span = high - low + 1
    rng = np.random.default_rng(seed)
    if count is None:
        numbers = np.arange(low, high + 1)
    else:
        numbers = np.sort(rng.choice(span, size=count, replace=False)) + low
    numbers = numbers.tolist()
    return {
        "version": _FORMAT_VERSION,
        "params": dict(low=low, high=high, count=count, seed=seed, source=source, target=target),
        "numbers": numbers,
        source: [_spell(n, source) for n in numbers],
        target: [_spell(n, target) for n in numbers],
    }


def load_number_words(
    split: str = "train",
    *,
    low: int = 0,
    high: int = 999_999,
    count: int | None = 20_000,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    source: str = "de",
    target: str = "en",
    cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load one split of the number-word translation pairs, generating and caching them once.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        low, high: the inclusive range the integers are drawn from.
        count: how many distinct integers to draw (seeded); ``None`` takes the whole range.
            Drawn uniformly, so with the default range almost all have six digits; lower
            ``high`` for a task of short numbers. The first call spells them all (about 5 s
            for the default 20,000), later calls read the cached JSON.
        fractions: shares of train, validation and test; the integers are split, not the pairs.
        seed: seed of the sampling and of the split.
        source, target: num2words language codes of the two sides.
        cache_dir: cache folder (default ``$MINITX_CACHE`` or ``~/.cache/minitx``).

    Returns:
        ``(source_texts, target_texts, numbers)``: two (N,) string arrays and an (N,) int64
        array of the integers they spell, in a seeded random order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if len(fractions) != len(SPLITS):
        raise ValueError(f"fractions must give {len(SPLITS)} shares {SPLITS}, got {fractions}")
    if source == target:
        raise ValueError(f"source and target languages must differ, got {source!r} twice")
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
    span = high - low + 1
    if count is not None and not 0 < count <= span:
        raise ValueError(f"count must be in [1, {span}] for low={low}, high={high}, got {count}")

    path = cache_root(cache_dir) / _cache_name(low, high, count, seed, source, target)
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path} has format version {data.get('version')!r}, expected {_FORMAT_VERSION}; "
                "delete it to regenerate"
            )
    else:
        data = _generate(low, high, count, seed, source, target)
        text = json.dumps(data, ensure_ascii=False, indent=0)
        atomic_write_bytes(path, text.encode("utf-8"))

    numbers = np.array(data["numbers"], dtype=np.int64)
    # The split seed differs from the sampling seed, so which numbers are drawn and which of them
    # are held out are independent choices.
    parts = split_indices(len(numbers), fractions, seed=seed + 1)
    keep = parts[SPLITS.index(split)]
    source_texts = np.array(data[source], dtype=str)[keep]
    target_texts = np.array(data[target], dtype=str)[keep]
    return source_texts, target_texts, numbers[keep]
