"""Helpers shared by the test modules."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project root


def run_example(module, cwd, *args, timeout=600):
    """Run ``python -m examples.<module> *args`` in `cwd` (its ``runs/`` go there), with the
    project on the path, matplotlib's Agg backend and one BLAS thread; assert that it exits 0
    (showing the end of its output if not) and return its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
           "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", f"examples.{module}", *args], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
