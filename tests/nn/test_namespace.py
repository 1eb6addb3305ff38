"""Layers and models call ops one way: through ``minitx.functional`` (F) or Tensor methods,
never ``minitx.ops`` directly or the ``mt.<op>`` aliases (which are for users' scripts)."""

import pathlib
import re

import minitx.functional as F
from minitx import ops

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "minitx" / "nn").glob("*.py"), *(ROOT / "models").glob("*.py")])
DIRECT = re.compile(r"from minitx(\.ops| import [\w, ]*\bops\b)|\bops\.\w+\(|"
                    r"\bmt\.(?!tensor\b|no_grad\b|Tensor\b|zeros\b|ones\b|arange\b|randn\b|"
                    r"backend\b|count_macs\b|full\b)\w+\(")


def test_layers_and_models_call_ops_through_F():
    assert SOURCES
    offenders = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
                 for path in SOURCES
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if DIRECT.search(line) and not line.lstrip().startswith((">>>", "..."))]
    assert not offenders, "\n".join(offenders)


def test_F_has_the_shape_ops():
    for name in ("concat", "stack", "split", "chunk", "pad", "roll", "flatten", "gather",
                 "take", "where", "masked_fill", "reshape", "transpose", "swapaxes",
                 "squeeze", "unsqueeze", "broadcast_to"):
        assert getattr(F, name) is getattr(ops, name), name
        assert name in F.__all__
