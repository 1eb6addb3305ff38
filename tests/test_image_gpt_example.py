"""``python -m examples.image_gpt``: smoke runs, the checkpoint alone rebuilds the model, resuming
is bit-exact, bad flags are refused."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import minitx as mt
from minitx import serialization
from models.image_gpt import ImageGPT, ImageGPTConfig, ar_inputs
from tests.helpers import ROOT, run_example

pytest.importorskip("sklearn")
TINY = ["--dim", "32", "--depth", "2", "--heads", "2"]  # a smaller model where size is moot


def test_quick_ar_run_learns_and_its_checkpoint_rebuilds_the_model(tmp_path):
    out = run_example("image_gpt", tmp_path, "--quick")
    assert "bits/dim" in out
    folder = tmp_path / "runs" / "image_gpt-quick" / "digits-ar"
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "probe.png", "samples.png",
                 "inpainting.png", "palette.npy"):
        assert (folder / name).exists(), name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    test_bits = [r["test_bits"] for r in rows if "test_bits" in r]
    assert test_bits[-1] < math.log2(17) - 0.8, test_bits  # well below a uniform guess: 4.09

    config = serialization.load_config(folder / "checkpoint.npz", ImageGPTConfig)  # the file alone
    model = ImageGPT(config)
    info = serialization.load_checkpoint(folder / "checkpoint.npz", model=model)
    palette = info["extra"]["palette"]
    assert palette.shape == (17, 1) and info["step"] == 20
    tokens = np.random.default_rng(0).integers(0, 17, (2, 64))
    assert model(mt.tensor(ar_inputs(tokens, 17))).shape == (2, 64, 17)


def test_bert_resume_is_bit_exact(tmp_path):
    flags = ["--quick", "--objective", "bert", "--steps", "6", "--eval-every", "3", *TINY]
    for run in ("whole", "parts"):
        (tmp_path / run).mkdir()
    run_example("image_gpt", tmp_path / "whole", *flags)
    run_example("image_gpt", tmp_path / "parts", *flags, "--stop-after", "3")
    out = run_example("image_gpt", tmp_path / "parts", *flags, "--resume")
    assert "bits/dim" in out
    states = [serialization.load_tree(tmp_path / run / "runs" / "image_gpt-quick" / "digits-bert"
                                      / "checkpoint.npz")["model"] for run in ("whole", "parts")]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        np.testing.assert_array_equal(states[0][name], states[1][name], err_msg=name)


@pytest.mark.parametrize("flags,message", [
    (["--steps", "-3"], "--steps must be positive"),
    (["--batch-size", "5000"], "exceeds the 1438 training images"),
    (["--objective", "mae"], "--objective must be ar or bert"),
])
def test_bad_flags_are_refused(tmp_path, flags, message):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "examples.image_gpt", *flags], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_objectives_experiment_quick(tmp_path):
    out = run_example("image_gpt", tmp_path, "--quick", "--experiment", "objectives", *TINY)
    assert "| ar |" in out and "| bert |" in out and "| pixels |" in out
    rows = json.loads((tmp_path / "runs" / "image_gpt-quick" / "objectives.json").read_text())
    assert len(rows["ar"]["probe_per_layer"]) == 3  # layers 0 … 2
    assert {"finetune", "finetune_no_mask", "finetune_5_masks"} <= set(rows["bert"])
