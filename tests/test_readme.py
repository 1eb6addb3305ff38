"""Every code block of the README runs as written.

A ```python block is executed on its own in a fresh namespace (in a temporary folder, so the
files it writes go there); each block must therefore carry its own imports and data. For the
```bash blocks, every ``python -m <module>`` they name must at least answer ``--help``.
"""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


PYTHON_BLOCKS = blocks("python")
MODULES = sorted({m for block in blocks("bash")
                  for m in re.findall(r"python -m ([\w.]+)", block) if m != "pytest"})


def test_the_readme_has_code_to_check():
    assert PYTHON_BLOCKS and MODULES


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / f"block_{index}.py"
    script.write_text(PYTHON_BLOCKS[index])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("module", MODULES)
def test_bash_block_module_answers_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
