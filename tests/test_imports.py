"""Every module imports on its own in a fresh interpreter (the one import cycle is handled),
and the package's docstring examples run."""

import pkgutil
import subprocess
import sys

import pytest

import minitx

MODULES = sorted(m.name for m in pkgutil.walk_packages(minitx.__path__, "minitx."))


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_in_a_fresh_interpreter(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_import_does_not_load_cupy_or_torch():
    code = "import minitx, sys; print('cupy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "False False"
