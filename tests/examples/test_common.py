"""examples.common: the command line built from a config, the progress bar's redraws, stopping
on Ctrl-C, and the metrics log of a resumed run."""

import importlib
import io
import os
import signal
from dataclasses import dataclass, fields

import pytest

import minitx as mt
from examples.common import (
    MetricsLog,
    PositiveInt,
    StopRequest,
    field_help,
    log_progress,
    parse_config,
    parse_dataset_config,
    progress,
)

EXAMPLES = ["mlp_digits", "translate", "vit_classify", "swin_classify", "swin_segment"]


def config_classes(module):
    configs = getattr(module, "CONFIGS", None)
    return sorted(set(configs.values()), key=str) if configs else [module.Config]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_flag_has_help_from_its_field_comment_and_the_usage_names_the_module(name, capsys):
    module = importlib.import_module(f"examples.{name}")
    for config in config_classes(module):
        helps = field_help(config)
        assert set(helps) == {f.name for f in fields(config)}, config
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m examples.{name} ")
    for f in fields(module.Config):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text and f"(default: {f.default})" in " ".join(text.split()), flag
    assert "--quick" in text and "--resume" in text and "--stop-after" in text
    indented = [line for line in module.__doc__.splitlines() if line.startswith("    python")]
    assert all(line in text for line in indented)  # the docstring's examples keep their lines


@dataclass(frozen=True)
class Toy:
    size: PositiveInt = 4  # how big
    steps: int = 100  # optimizer steps, a plain int: checked as every example's steps
    warmup_steps: int = 10
    name: str = "toy"  # a label


def test_quick_config_fills_only_the_flags_not_given():
    quick = {"steps": 5, "warmup_steps": 1, "size": 2}
    cfg, args = parse_config(Toy, "toy", ["--quick", "--steps", "12"], quick_config=quick)
    assert (cfg.steps, cfg.warmup_steps, cfg.size, args.quick) == (12, 1, 2, True)
    cfg, args = parse_config(Toy, "toy", ["--steps", "12", "--warmup-steps", "3"],
                             quick_config=quick)
    assert (cfg.steps, cfg.warmup_steps, cfg.size, args.quick) == (12, 3, 4, False)


def test_the_former_extra_flag_form_still_works():
    cfg, args = parse_config(Toy, "toy", ["--quick", "--resume"], resume=(bool, False, "r"),
                             quick=(bool, False, "q"))
    assert args.quick and args.resume and cfg == Toy()


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    (["--size", "-1"], "argument --size: must be a positive integer, got -1"),
    (["--size", "2.5"], "argument --size: expected int, got '2.5'"),
    (["--steps", "10"], r"--warmup-steps (10) must be smaller than --steps (10)"),
])
def test_bad_values_are_argparse_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(Toy, "toy", argv, prog="python -m examples.toy")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m examples.toy") and message in err


def test_dataset_config_takes_the_defaults_of_the_chosen_dataset():
    @dataclass(frozen=True)
    class Small(Toy):
        dataset: str = "small"  # which data

    @dataclass(frozen=True)
    class Big(Small):
        dataset: str = "big"
        size: int = 40  # a subclass may override with a plain int: the check stays

    configs = {"small": Small, "big": Big}
    assert parse_dataset_config(configs, "small", "", ["--dataset", "big"])[0].size == 40
    with pytest.raises(SystemExit):
        parse_dataset_config(configs, "small", "", ["--dataset", "big", "--size", "0"])


def test_the_progress_bar_redraws_at_most_every_mininterval():
    out = io.StringIO()
    bar = progress(600, "steps", mininterval=0.5, file=out)
    log = MetricsLog.__new__(MetricsLog)
    log.log = lambda **values: None
    opt = type("Opt", (), {"param_groups": [{"lr": 0.1}]})()
    for step in range(1, 601):
        log_progress(bar, log, step, mt.tensor(1.0), opt, every=50, total=600)
    bar.close()
    redraws = out.getvalue().count("\r")
    assert redraws < 20, redraws  # the postfix used to redraw the bar at each of the 600 steps
    assert "loss=1.000" in out.getvalue()


def test_ctrl_c_asks_for_a_stop_after_the_step_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest(stop_after=None) as stop:
        assert not stop(1)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C only sets the request
        assert stop(2)
    assert signal.getsignal(signal.SIGINT) is before
    assert StopRequest(stop_after=3)(3) and not StopRequest(stop_after=3)(2)


def test_a_resumed_metrics_log_drops_rows_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path)
    for step in (10, 20, 30):
        log.log(step=step, loss=1.0 / step)
    resumed = MetricsLog(tmp_path, resume=True, step=20)  # the run went on past step 20
    assert [row["step"] for row in resumed.rows] == [10, 20]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("module, dataset, loader", [
    ("vit_classify", "mnist", "load_mnist"), ("swin_classify", "fashion_mnist",
                                              "load_fashion_mnist"),
    ("swin_segment", "mnist", "load_mnist"), ("image_gpt", "cifar10", "load_cifar10")])
def test_a_dataset_that_cannot_be_downloaded_ends_in_one_line(tmp_path, capsys, monkeypatch,
                                                              module, dataset, loader):
    from minitx import data
    from tests.helpers import run_main

    def offline(*args, **kwargs):  # what fetch raises when no mirror answers
        raise ConnectionError(f"could not download {dataset}/file.gz:\n  https://a/file.gz: "
                              f"no route\nWithout a network, copy file.gz into /cache/{dataset} "
                              f"from a machine that has one.")

    monkeypatch.setattr(data, loader, offline)
    with pytest.raises(SystemExit) as exit_info:
        run_main(module, tmp_path, "--quick", "--dataset", dataset)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert f"error: --dataset {dataset}: could not download {dataset}/file.gz: no mirror " \
           f"answered. Without a network, copy file.gz into /cache/{dataset}" in last
