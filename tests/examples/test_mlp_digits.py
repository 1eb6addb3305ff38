"""examples.mlp_digits: a smoke run, bit-exact resuming, training longer, the model rebuilt from
its checkpoint alone, and the command line's refusals."""

import json
import re

import numpy as np
import pytest

import minitx as mt
from examples.mlp_digits import MLPConfig, build_model
from minitx import optim, serialization
from tests.helpers import assert_same_checkpoint, run_example, run_main

pytest.importorskip("sklearn")
CKPT = "runs/mlp_digits-quick/checkpoint.npz"


def test_quick_run_and_the_model_rebuilt_from_its_checkpoint_alone(tmp_path):
    result = run_main("mlp_digits", tmp_path, "--quick")
    folder = tmp_path / "runs" / "mlp_digits-quick"  # a smoke run stays apart from real runs
    for name in ("checkpoint.npz", "metrics.csv", "metrics.jsonl", "loss.png"):
        assert (folder / name).exists(), name
    assert not (tmp_path / "runs" / "mlp_digits").exists()
    model = build_model(serialization.load_config(tmp_path / CKPT, MLPConfig))
    serialization.load_checkpoint(tmp_path / CKPT, model=model)
    x = mt.tensor(np.random.default_rng(0).random((5, 64), dtype=np.float32))
    trained = result["model"]
    model.eval(), trained.eval()
    np.testing.assert_array_equal(model(x).numpy(), trained(x).numpy())


@pytest.mark.parametrize("stop_after", [7, 14, 23])  # 14 batches an epoch: mid-epoch and at its end
def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path, stop_after):
    run_main("mlp_digits", tmp_path / "whole", "--quick", "--steps", "30")
    out = run_main("mlp_digits", tmp_path / "parts", "--quick", "--steps", "30",
                   "--stop-after", str(stop_after))
    assert out["stopped_at"] == stop_after
    run_example("mlp_digits", tmp_path / "parts", "--quick", "--steps", "30", "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT, tmp_path / "parts" / CKPT)


def test_resume_to_train_longer_follows_the_longer_runs_schedule(tmp_path):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "10", "--log-every", "1")
    before = serialization.read_checkpoint(tmp_path / CKPT)["model"]
    out = run_example("mlp_digits", tmp_path, "--quick", "--steps", "20", "--log-every", "1",
                      "--resume")
    assert "steps 10 -> 20" in out
    after = serialization.read_checkpoint(tmp_path / CKPT)["model"]
    assert all(not np.array_equal(before[k], after[k]) for k in before)  # not trained at lr 0
    rows = [json.loads(line) for line in (tmp_path / CKPT).with_name("metrics.jsonl").open()]
    lrs = {row["step"]: row["lr"] for row in rows if "lr" in row}
    opt = optim.SGD([mt.zeros(1, requires_grad=True)], lr=3e-3)  # the 20-step schedule
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=5, total_steps=20)
    for step in range(1, 21):
        sched.step()
        if step > 10:
            assert lrs[step] == pytest.approx(sched.get_last_lr()[0], rel=1e-12), step


def test_a_resumed_run_takes_the_optimizer_settings_of_its_command_line(tmp_path):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "10", "--stop-after", "5")
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "10", "--weight-decay", "0.5",
             "--resume")
    groups = serialization.read_checkpoint(tmp_path / CKPT)["optimizer"]["param_groups"]
    assert [group["weight_decay"] for group in groups] == [0.5]


@pytest.mark.parametrize("args, message", [
    (["--steps", "-5"], "argument --steps: must be a positive integer, got -5"),
    (["--steps", "12"], r"--warmup-steps \(50\) must be smaller than --steps \(12\)"),
    (["--batch-size", "5000"], "training set has 1438 images, fewer than --batch-size 5000"),
    (["--lr", "0"], "argument --lr: must be a positive number"),
    (["--dropout", "1.5"], r"argument --dropout: must be a number in \[0, 1\)"),
    (["--resume"], "--resume: there is no checkpoint"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("mlp_digits", tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m examples.mlp_digits" in err
    assert re.search(message, err), err


def test_quick_with_steps_scales_the_warm_up_too(tmp_path):
    result = run_main("mlp_digits", tmp_path, "--quick", "--steps", "12")
    assert "test_accuracy" in result
    example = serialization.read_checkpoint(tmp_path / CKPT)["extra"]["example"]
    assert (example["steps"], example["warmup_steps"]) == (12, 5)


def test_the_reported_case_2n_steps_equal_n_save_load_n_for_n_100(tmp_path):
    args = ("--steps", "200", "--warmup-steps", "50")  # the default model; 100 is mid-epoch
    run_main("mlp_digits", tmp_path / "whole", *args)
    run_main("mlp_digits", tmp_path / "parts", *args, "--stop-after", "100")
    run_example("mlp_digits", tmp_path / "parts", *args, "--resume")
    ckpt = "runs/mlp_digits/checkpoint.npz"
    assert_same_checkpoint(tmp_path / "whole" / ckpt, tmp_path / "parts" / ckpt)


def _refused(capsys, tmp_path, *args):
    """Run mlp_digits expecting an argparse error (exit code 2); return its message."""
    with pytest.raises(SystemExit) as exit_info:
        run_main("mlp_digits", tmp_path, *args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_resume_refuses_a_broken_or_foreign_checkpoint_in_one_line(tmp_path, capsys):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "6")
    checkpoint = tmp_path / CKPT
    err = _refused(capsys, tmp_path, "--quick", "--steps", "12", "--hidden", "16", "--resume")
    assert re.search(r"--resume: \S+checkpoint.npz does not fit this run: .*shape", err), err
    assert "Traceback" not in err and len(err.splitlines()[-1]) < 600
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    err = _refused(capsys, tmp_path, "--quick", "--steps", "12", "--resume")
    assert "does not fit this run" in err and "truncated or corrupt" in err, err


def test_resume_refuses_a_seed_that_would_move_test_digits_into_training(tmp_path, capsys):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "6")
    err = _refused(capsys, tmp_path, "--quick", "--steps", "12", "--seed", "3", "--resume")
    assert "--resume: --seed 0 -> 3 would change the data the checkpoint was trained on" in err
    out = run_example("mlp_digits", tmp_path, "--quick", "--steps", "12", "--resume")
    assert "6 steps (resumed at step 6) in" in out  # the time is that of the steps it ran


def test_a_device_that_cannot_run_is_refused_before_training(tmp_path, capsys):
    err = _refused(capsys, tmp_path, "--quick", "--device", "gpu")
    assert "--device gpu: unknown device 'gpu'" in err
    if not mt.backend.cuda_available():
        assert "--device cuda: " in _refused(capsys, tmp_path, "--quick", "--device", "cuda")


def test_a_run_folder_that_cannot_be_made_ends_in_one_line(tmp_path, capsys):
    (tmp_path / "runs").write_text("a file where the run folder would go")
    err = _refused(capsys, tmp_path, "--quick")  # a usage error: exit code 2
    assert err.splitlines()[-1].startswith("python -m examples.mlp_digits: error: cannot create "
                                           "the run folder")


def test_a_half_written_last_metrics_line_is_dropped_on_resume(tmp_path):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "10", "--stop-after", "5")
    metrics = (tmp_path / CKPT).with_name("metrics.jsonl")
    metrics.write_text(metrics.read_text() + '{"step": 6, "lo')  # killed while writing
    result = run_main("mlp_digits", tmp_path, "--quick", "--steps", "10", "--resume")
    assert "test_accuracy" in result


def test_a_diverging_run_stops_at_the_first_nan_loss(tmp_path):
    run_main("mlp_digits", tmp_path, "--quick", "--steps", "12", "--checkpoint-every", "2",
             "--stop-after", "4")
    before = serialization.read_checkpoint(tmp_path / CKPT)["model"]
    with pytest.raises(SystemExit) as exit_info:
        run_main("mlp_digits", tmp_path, "--quick", "--steps", "12", "--checkpoint-every", "2",
                 "--lr", "1e30", "--resume")
    assert re.match(r"error: the loss is (nan|inf) at step \d+: training diverged",
                    str(exit_info.value.code))
    after = serialization.read_checkpoint(tmp_path / CKPT)["model"]
    assert all(np.isfinite(a).all() for a in after.values())  # no NaN weights written
    assert before.keys() == after.keys()
