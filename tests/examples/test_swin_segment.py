"""examples.swin_segment: a smoke run, bit-exact resuming, the model rebuilt from its checkpoint
alone, and the command line's refusals."""

import numpy as np
import pytest

import minitx as mt
from examples.swin_segment import build_model
from minitx import serialization
from models.swin_segment import SegmenterConfig
from tests.helpers import assert_same_checkpoint, run_example, run_main

CKPT = "runs/swin_segment-quick/checkpoint.npz"


def test_quick_run_and_the_model_rebuilt_from_its_checkpoint_alone(tmp_path):
    result = run_main("swin_segment", tmp_path, "--quick")
    path = tmp_path / CKPT
    for name in ("checkpoint.npz", "metrics.csv", "loss.png", "masks.png"):
        assert (path.parent / name).exists(), name
    model = build_model(serialization.load_config(path, SegmenterConfig))
    serialization.load_checkpoint(path, model=model)
    x = mt.tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    trained = result["model"]
    model.eval(), trained.eval()
    np.testing.assert_array_equal(model(x).numpy(), trained(x).numpy())


def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path):
    args = ("--quick", "--steps", "7", "--train-images", "24")  # 3 batches of 8 an epoch
    run_main("swin_segment", tmp_path / "whole", *args)
    assert run_main("swin_segment", tmp_path / "parts", *args, "--stop-after", "4")[
        "stopped_at"] == 4
    run_example("swin_segment", tmp_path / "parts", *args, "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT, tmp_path / "parts" / CKPT)


@pytest.mark.parametrize("args, message", [
    (["--train-images", "5", "--batch-size", "8"], "training set has 5 images, fewer than"),
    (["--train-images", "0"], "argument --train-images: must be a positive integer, got 0"),
    (["--dataset", "cifar10"], "argument --dataset: invalid choice: 'cifar10'"),
    (["--quick", "--head-dim", "3"], "--head-dim 3 does not divide --embed-dim 8"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("swin_segment", tmp_path, *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
