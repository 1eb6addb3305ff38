"""Helpers shared by the test modules."""

import contextlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from minitx import serialization

ROOT = Path(__file__).resolve().parents[1]  # the project root


def run_example(module, cwd, *args, timeout=600, returncode=0):
    """Run ``python -m examples.<module> *args`` in `cwd` (its ``runs/`` go there), with the
    project on the path, matplotlib's Agg backend and one BLAS thread; assert that it exits
    with `returncode` (showing the end of its output if not) and return its stdout (its stderr
    when a non-zero code is expected)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
           "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", f"examples.{module}", *args], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == returncode, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout if returncode == 0 else result.stderr


def run_main(module, folder, *args):
    """Call ``examples.<module>.main(args)`` in this process with `folder` (created) as the
    working directory, so its ``runs/`` go there, and with one BLAS thread like
    :func:`run_example`; return what main returns.

    The thread count matters to the tests that compare two runs bit for bit: OpenBLAS splits a
    float32 product differently over one thread and over two, so the same run on another
    thread count differs in the last bits (about 1e-8 after a hundred steps).
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    Path(folder).mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(folder), threadpool_limits(limits=1, user_api="blas"):
        return importlib.import_module(f"examples.{module}").main(list(args))


def assert_same_checkpoint(path_a, path_b, skip=()):
    """Assert that two checkpoints hold bit-identical state: weights, optimizer moments,
    schedule, step, generators and the loader's position (the parts named in `skip` aside)."""
    a, b = serialization.read_checkpoint(path_a), serialization.read_checkpoint(path_b)
    for part in set(a) - set(skip):
        _assert_same(a[part], b[part], part)


def _assert_same(x, y, where):
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), f"{where}: keys {set(x) ^ set(y)}"
        for key in x:
            _assert_same(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), f"{where}: lengths {len(x)} and {len(y)}"
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(x, np.ndarray):
        assert x.shape == y.shape, f"{where}: shapes {x.shape} and {y.shape}"
        assert np.array_equal(x, y), f"{where}: arrays differ by up to {np.max(np.abs(x - y))}"
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"
