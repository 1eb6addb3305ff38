"""examples.swin_classify: a smoke run, bit-exact resuming, the model rebuilt from its checkpoint
alone, and the command line's refusals."""

import numpy as np
import pytest

import minitx as mt
from minitx import serialization
from models.swin import SwinConfig, SwinTransformer
from tests.helpers import assert_same_checkpoint, run_example, run_main

CKPT = "runs/swin_classify-quick/{}/checkpoint.npz"


def test_quick_run_and_the_model_rebuilt_from_its_checkpoint_alone(tmp_path):
    result = run_main("swin_classify", tmp_path, "--quick", "--dataset", "shapes")
    path = tmp_path / CKPT.format("shapes")
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "accuracy.png", "windows.png"):
        assert (path.parent / name).exists(), name
    model = SwinTransformer(serialization.load_config(path, SwinConfig))
    serialization.load_checkpoint(path, model=model)
    x = mt.tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    trained = result["model"]
    model.eval(), trained.eval()
    np.testing.assert_array_equal(model(x).numpy(), trained(x).numpy())


def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path):
    pytest.importorskip("mlxtend")
    args = ("--quick", "--steps", "7", "--train-size", "24")  # 3 batches of 8 an epoch
    run_main("swin_classify", tmp_path / "whole", *args)
    assert run_main("swin_classify", tmp_path / "parts", *args, "--stop-after", "2")[
        "stopped_at"] == 2
    run_example("swin_classify", tmp_path / "parts", *args, "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT.format("mnist_5k"),
                           tmp_path / "parts" / CKPT.format("mnist_5k"))


@pytest.mark.parametrize("args, message", [
    (["--dataset", "shapes", "--train-size", "5"], "training set has 5 images, fewer than"),
    (["--dataset", "svhn"], "argument --dataset: invalid choice: 'svhn'"),
    (["--activation", "relu"], "argument --activation: invalid choice: 'relu'"),
    (["--window-size", "0"], "argument --window-size: must be a positive integer, got 0"),
    (["--head-dim", "1000"], "--head-dim 1000 does not divide --embed-dim 8"),
    (["--shift-augment", "32"], "--shift-augment 32 is not smaller than the 32x32 images"),
    (["--dataset", "digits", "--train-size", "2000"], "--train-size 2000: the digits train set "
                                                      "holds 1,438 images"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("swin_classify", tmp_path, "--quick", *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
