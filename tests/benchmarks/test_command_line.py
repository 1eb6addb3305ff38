"""The benchmarks' command lines: a bad value ends the program at once with argparse's one-line
error (exit code 2) before anything is timed, the usage line names the module, --help shows the
defaults, and flags given explicitly win over --quick's values."""

import importlib
import re
import time

import pytest

from benchmarks import bench_attention_scaling, bench_models, bench_ops
from benchmarks.common import SETTLE, interleaved_samples

BENCHMARKS = ["bench_attention_scaling", "bench_ops", "bench_models", "bench_threads"]


@pytest.mark.parametrize("name, args, message", [
    ("bench_attention_scaling", ["--window", "0"], "argument --window: must be an integer >= 1"),
    ("bench_attention_scaling", ["--repeat", "0"], "argument --repeat: must be an integer >= 1"),
    ("bench_attention_scaling", ["--warmup", "-1"], "argument --warmup: must be an integer >= 0"),
    ("bench_attention_scaling", ["--sides", "7,14"], "--sides 7,14: not multiples of --window 8"),
    ("bench_attention_scaling", ["--quick", "--sides", "7"], "--sides 7: not a multiple of"),
    ("bench_attention_scaling", ["--sides", "8,x"], "expected positive integers separated by"),
    ("bench_attention_scaling", ["--sides", "0,8"], "expected positive integers separated by"),
    ("bench_attention_scaling", ["--sides", "8,16"], "at least three different sides"),
    ("bench_attention_scaling", ["--dim", "10", "--heads", "3"], "--dim 10 is not divisible"),
    ("bench_attention_scaling", ["--quick", "--out", "a_file/sub"],
     "--out a_file/sub: cannot write there (Not a directory)"),
    ("bench_ops", ["--repeat", "0"], "argument --repeat: must be an integer >= 1, got 0"),
    ("bench_ops", ["--quick", "--warmup", "-1"], "argument --warmup: must be an integer >= 0"),
    ("bench_ops", ["--threads", "0"], "argument --threads: must be an integer >= 1"),
    ("bench_ops", ["--repeat", "x"], "argument --repeat: expected an integer, got 'x'"),
    ("bench_ops", ["--only", "nothing"], "no case matches --only 'nothing'; the cases: "),
    ("bench_ops", ["--only", "softmax", "--profile", "attention"],
     "no case run matches --profile 'attention'"),
    ("bench_models", ["--repeat", "0"], "argument --repeat: must be an integer >= 1, got 0"),
    ("bench_models", ["--quick", "--warmup", "-1"], "argument --warmup: must be an integer >= 0"),
    ("bench_models", ["--threads", "0"], "argument --threads: must be an integer >= 1"),
    ("bench_models", ["--model", "nothing"], "unknown --model nothing; available: "),
    ("bench_models", ["--settle", "-1"], "argument --settle: must be a number of seconds from"),
    ("bench_models", ["--settle", "1e9"], "argument --settle: must be a number of seconds from"),
    ("bench_ops", ["--settle", "inf"], "argument --settle: must be a number of seconds from 0"),
    ("bench_ops", ["--settle", "nan"], "argument --settle: must be a number of seconds from 0"),
    ("bench_ops", ["--settle", "x"], "argument --settle: expected a number, got 'x'"),
    ("bench_threads", ["--repeat", "0"], "argument --repeat: must be an integer >= 1, got 0"),
    ("bench_threads", ["--rounds", "0"], "argument --rounds: must be an integer >= 1, got 0"),
])
def test_bad_input_ends_with_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, name, args,
                                                      message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"benchmarks.{name}").main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f"usage: python -m benchmarks.{name} ")
    assert err.splitlines()[-1].startswith(f"python -m benchmarks.{name}: error: ")
    assert message in err.splitlines()[-1]
    assert not (tmp_path / "runs").exists()  # nothing timed, nothing written


# every flag that takes a value, per benchmark
VALUE_FLAGS = {"bench_attention_scaling": ["--sides", "--dim", "--heads", "--window", "--repeat",
                                           "--warmup", "--out"],
               "bench_ops": ["--repeat", "--warmup", "--only", "--profile", "--threads",
                             "--settle"],
               "bench_models": ["--model", "--repeat", "--warmup", "--threads", "--settle"],
               "bench_threads": ["--model", "--config", "--repeat", "--rounds"]}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_help_names_the_module_and_shows_the_defaults(monkeypatch, capsys, name):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"benchmarks.{name}").main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m benchmarks.{name} [-h]")
    blocks = {block.split()[0]: " ".join(block.split())
              for block in re.split(r"\n  (?=-)", out.partition("options:")[2]) if block.strip()}
    for flag in VALUE_FLAGS[name]:
        assert "(default" in blocks[flag] or "default:" in blocks[flag], blocks[flag]
    assert "(default: None)" not in out


def test_attention_scaling_flags_given_explicitly_win_over_quick(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = bench_attention_scaling.parse_args(["--quick"])
    assert (args.sides, args.repeat) == ([8, 16, 24], 2)
    args = bench_attention_scaling.parse_args(["--quick", "--sides", "24,8,16,32", "--repeat",
                                               "1"])
    assert (args.sides, args.repeat) == ([8, 16, 24, 32], 1)  # sorted: the larger half is last
    args = bench_attention_scaling.parse_args([])
    assert (args.sides, args.repeat) == ([8, 16, 24, 32, 40, 48, 56, 64], 5)
    result = bench_attention_scaling.main(["--quick", "--sides", "4,8,12", "--window", "4",
                                           "--dim", "8", "--heads", "2", "--repeat", "1",
                                           "--warmup", "0", "--out", "out"])
    assert [row["side"] for row in result["rows"]] == [4, 8, 12]
    assert (tmp_path / "out/scaling.png").exists() and (tmp_path / "out/scaling.csv").exists()


def test_models_and_ops_flags_given_explicitly_win_over_quick():
    args, modules = bench_models.parse_args(["--quick", "--repeat", "5", "--warmup", "0",
                                             "--model", "vit"])
    assert (args.repeat, args.warmup, args.no_memory, list(modules)) == (5, 0, True, ["vit"])
    args, _ = bench_models.parse_args(["--quick"])
    assert (args.repeat, args.warmup, args.no_memory, args.settle) == (3, 1, True, 0.0)
    args, _ = bench_models.parse_args([])
    assert (args.repeat, args.warmup, args.no_memory, args.settle) == (20, 3, False, SETTLE)
    assert bench_models.parse_args(["--quick", "--settle", "0.5"])[0].settle == 0.5
    args = bench_ops.parse_args(["--quick", "--repeat", "4", "--warmup", "0", "--settle", "1"])
    assert (args.repeat, args.warmup, args.settle) == (4, 0, 1.0)
    assert (bench_ops.parse_args(["--quick"]).repeat, bench_ops.parse_args([]).repeat) == (3, 20)
    assert [bench_ops.parse_args(a).settle for a in (["--quick"], [])] == [0, SETTLE]


def test_settle_pauses_before_every_timed_call_outside_its_timing():
    calls = []
    fns = {name: (lambda name=name: calls.append((name, time.perf_counter()))) for name in "ab"}
    start = time.perf_counter()
    samples = interleaved_samples(fns, repeat=3, warmup=1, settle=0.05)
    assert [name for name, _ in calls] == ["a", "b", "a", "b", "b", "a", "a", "b"]
    timed = [t for _, t in calls[2:]]  # after the warm-up round, each call 0.05 s after the last
    assert min(later - earlier for earlier, later in zip([start] + timed, timed)) >= 0.05
    assert max(max(times) for times in samples.values()) < 0.05  # the pause is not timed


def test_rewarm_calls_each_function_once_untimed_before_its_timed_call():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ab"}
    samples = interleaved_samples(fns, repeat=2, warmup=0, settle=0.0, rewarm=True)
    assert "".join(calls) == "aabbbbaa"  # round 2 starts with b (the rotation)
    assert [len(times) for times in samples.values()] == [2, 2]


def test_attention_scaling_quick_writes_beside_a_real_run_not_over_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(bench_attention_scaling.parse_args(["--quick"]).out).endswith(
        "runs/attention_scaling-quick")
    assert str(bench_attention_scaling.parse_args([]).out).endswith("runs/attention_scaling")
    assert str(bench_attention_scaling.parse_args(["--quick", "--out", "here"]).out).endswith(
        "here")
