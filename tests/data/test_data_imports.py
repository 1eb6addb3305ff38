"""minitx.data stands alone: pure NumPy, no other minitx module, no optional package at import."""

import ast
import subprocess
import sys
from pathlib import Path

import minitx.data

DATA_DIR = Path(minitx.data.__file__).parent


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")


def test_data_modules_import_only_numpy_the_stdlib_and_each_other():
    for path in sorted(DATA_DIR.glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in ("pickle", "torch", "cupy"), f"{path.name} imports {name}"
            if top == "minitx":
                assert name.startswith("minitx.data"), f"{path.name} imports {name}"


def test_optional_packages_are_not_imported_by_import_minitx_data():
    check = (
        "import sys, minitx.data; "
        "print(sorted({'sklearn', 'mlxtend', 'num2words'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
