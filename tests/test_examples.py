"""Smoke runs of the examples (``--quick``): they start, train a few steps, write their outputs."""

import pytest

from tests.helpers import run_example


def test_tour_runs_every_model(tmp_path):
    pytest.importorskip("sklearn")
    out = run_example("__main__", tmp_path, "--quick")
    for name in ("mlp_digits", "transformer", "vit", "swin", "swin_segment"):
        assert f"| {name} |" in out


def test_mlp_digits_quick_and_resume(tmp_path):
    pytest.importorskip("sklearn")
    out = run_example("mlp_digits", tmp_path, "--quick")
    assert "test accuracy" in out
    folder = tmp_path / "runs" / "mlp_digits"
    for name in ("checkpoint.npz", "metrics.csv", "metrics.jsonl", "loss.png"):
        assert (folder / name).exists(), name
    out = run_example("mlp_digits", tmp_path, "--steps", "30", "--warmup-steps", "5", "--resume")
    assert "30 steps" in out
