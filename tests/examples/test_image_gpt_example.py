"""``python -m examples.image_gpt``: smoke runs, the checkpoint alone rebuilds the model, a run
stopped and resumed in a new process equals an uninterrupted one bit for bit, bad flags are
refused."""

import json
import math
import re

import numpy as np
import pytest

import minitx as mt
from examples import image_gpt
from minitx import serialization
from models.image_gpt import ImageGPT, ImageGPTConfig, ar_inputs
from tests.helpers import assert_same_checkpoint, run_example, run_main

pytest.importorskip("sklearn")
TINY = ["--dim", "32", "--depth", "2", "--heads", "2"]  # a smaller model where size is moot


def test_quick_ar_run_learns_and_its_checkpoint_rebuilds_the_model(tmp_path):
    result = run_main("image_gpt", tmp_path, "--quick")
    assert not (tmp_path / "runs" / "image_gpt").exists()  # a smoke run stays apart
    folder = tmp_path / "runs" / "image_gpt-quick" / "digits-ar"
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "probe.png", "samples.png",
                 "inpainting.png", "palette.npy"):
        assert (folder / name).exists(), name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    test_bits = [r["test_bits"] for r in rows if "test_bits" in r]
    assert test_bits[-1] < math.log2(17) - 0.8, test_bits  # well below a uniform guess: 4.09
    assert result["test_bits"] == test_bits[-1]

    config = serialization.load_config(folder / "checkpoint.npz", ImageGPTConfig)  # the file alone
    model = ImageGPT(config)
    info = serialization.load_checkpoint(folder / "checkpoint.npz", model=model)
    palette = info["extra"]["palette"]
    assert palette.shape == (17, 1) and info["step"] == 20
    tokens = np.random.default_rng(0).integers(0, 17, (2, 64))
    x = mt.tensor(ar_inputs(tokens, 17))
    model.eval(), result["model"].eval()
    np.testing.assert_array_equal(model(x).numpy(), result["model"](x).numpy())


@pytest.mark.parametrize("objective, stop_after", [("bert", 3), ("ar", 4)])
def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path, objective, stop_after):
    flags = ["--quick", "--objective", objective, "--steps", "8", "--eval-every", "3", *TINY]
    run_main("image_gpt", tmp_path / "whole", *flags)
    out = run_main("image_gpt", tmp_path / "parts", *flags, "--stop-after", str(stop_after))
    assert out["stopped_at"] == stop_after
    assert "bits/dim" in run_example("image_gpt", tmp_path / "parts", *flags, "--resume")
    ckpt = f"runs/image_gpt-quick/digits-{objective}/checkpoint.npz"
    assert_same_checkpoint(tmp_path / "whole" / ckpt, tmp_path / "parts" / ckpt)


@pytest.mark.parametrize("flags, message", [
    (["--steps", "-3"], "argument --steps: must be a positive integer, got -3"),
    (["--steps", "50"], r"--warmup-steps \(100\) must be smaller than --steps \(50\)"),
    (["--batch-size", "5000"], "exceeds the 1438 training images"),
    (["--objective", "mae"], "argument --objective: invalid choice: 'mae'"),
    (["--dataset", "svhn"], "argument --dataset: invalid choice: 'svhn'"),
    (["--dropout", "1"], r"argument --dropout: must be a number in \[0, 1\)"),
    (["--experiment", "scaling"], "--experiment must be objectives"),
    (["--quick", "--experiment", "objectives", "--resume"], "runs whole"),
    (["--dataset", "shapes", "--train-size", "10"], "--train-size 10 is smaller than"),
    (["--resume"], "--resume: there is no checkpoint"),
    (["--quick", "--image-size", "16"], r"--image-size 16 is larger than the digits images"),
    (["--quick", "--colors", "100000"], r"argument --colors: must be between 1 and 4096"),
    (["--quick", "--image-size", "1", "--colors", "400"], "--colors 400 exceeds the 300 pixels"),
    (["--quick", "--batch-size", "400"], "--batch-size 400 exceeds the 300 training images"),
    (["--quick", "--colors", "40"], "--colors 40: the training images hold only 17 distinct"),
    (["--quick", "--experiment", "objectives", "--finetune-steps", "0"],
     "--finetune-steps 0: --experiment objectives reports fine-tuned accuracy"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("image_gpt", tmp_path, *flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m examples.image_gpt" in err
    assert re.search(message, err), err
    if "--resume" not in flags:
        assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_resize_averages_blocks_crops_the_rest_and_refuses_to_enlarge():
    images = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    np.testing.assert_array_equal(image_gpt.resize(images, 4)[0, 0, 0, :2],
                                  [images[0, 0, :2, :2].mean(), images[0, 0, :2, 2:4].mean()])
    np.testing.assert_array_equal(image_gpt.resize(images, 5), images[:, :, 1:6, 1:6])
    with pytest.raises(ValueError, match="size must be in 1..8"):
        image_gpt.resize(images, 16)


def test_an_odd_image_size_draws_its_inpainting(tmp_path):
    run_main("image_gpt", tmp_path, "--quick", "--image-size", "5", "--steps", "6", *TINY)
    assert (tmp_path / "runs" / "image_gpt-quick" / "digits-ar" / "inpainting.png").exists()


def test_quick_keeps_the_dataset_s_own_defaults_and_explicit_flags_win(tmp_path):
    run_main("image_gpt", tmp_path, "--dataset", "shapes", "--quick", "--steps", "6", *TINY)
    ckpt = tmp_path / "runs" / "image_gpt-quick" / "shapes-ar" / "checkpoint.npz"
    example = serialization.read_checkpoint(ckpt)["extra"]["example"]
    assert (example["image_size"], example["colors"]) == (16, 16)  # the shapes config
    assert (example["steps"], example["warmup_steps"], example["train_size"]) == (6, 5, 300)
    assert serialization.load_config(ckpt, ImageGPTConfig).seq_len == 256


def test_objectives_experiment_quick(tmp_path):
    out = run_example("image_gpt", tmp_path, "--quick", "--experiment", "objectives", *TINY)
    assert "| ar |" in out and "| bert |" in out and "| pixels |" in out
    rows = json.loads((tmp_path / "runs" / "image_gpt-quick" / "objectives.json").read_text())
    assert len(rows["ar"]["probe_per_layer"]) == 3  # layers 0 … 2
    assert {"finetune", "finetune_no_mask", "finetune_5_masks"} <= set(rows["bert"])
