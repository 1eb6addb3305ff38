"""The tour (``python -m examples``): every example's smoke run, one after the other."""

import pytest

from tests.helpers import run_example


def test_tour_runs_every_model(tmp_path):
    pytest.importorskip("sklearn")
    out = run_example("__main__", tmp_path, "--quick")
    for name in ("mlp_digits", "transformer", "vit", "swin", "swin_segment", "image_gpt",
                 "clip"):
        assert f"| {name} |" in out
    # a smoke run tests on what its own output line says (vit: 100 of the 359 digits)
    assert "| test accuracy, the test set in its line above |" in out
    assert "| 359 held-out" not in out and "100 held-out" in out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [  # smoke runs only
        "clip-quick", "image_gpt-quick", "mlp_digits-quick", "swin_classify-quick",
        "swin_segment-quick", "translate-quick", "vit_classify-quick"]
