"""examples.translate: a smoke run, --translate with the saved model only, bit-exact resuming,
the model rebuilt from its checkpoint alone, and the command line's refusals."""

import numpy as np
import pytest

import minitx as mt
from minitx import serialization
from models.transformer import Transformer, TransformerConfig
from tests.helpers import assert_same_checkpoint, run_example, run_main

pytest.importorskip("num2words")
pytest.importorskip("sacrebleu")
CKPT = "runs/translate-quick/checkpoint.npz"


def test_quick_run_translate_and_the_model_rebuilt_from_its_checkpoint_alone(tmp_path):
    result = run_main("translate", tmp_path, "--quick", "--steps", "6")
    assert {"greedy_exact_match", "beam_bleu", "cache_same_output"} <= set(result)
    path = tmp_path / CKPT
    for name in ("checkpoint.npz", "metrics.jsonl", "metrics.csv", "loss.png", "attention.png",
                 "src_vocab.json", "tgt_vocab.json"):
        assert (path.parent / name).exists(), name
    model = Transformer(serialization.load_config(path, TransformerConfig))
    serialization.load_checkpoint(path, model=model)
    rng = np.random.default_rng(0)
    src = mt.tensor(rng.integers(4, model.config.src_vocab_size, (2, 7)))
    tgt = mt.tensor(rng.integers(4, model.config.tgt_vocab_size, (2, 5)))
    trained = result["model"]
    model.eval(), trained.eval()
    np.testing.assert_array_equal(model(src, tgt).numpy(), trained(src, tgt).numpy())

    out = run_example("translate", tmp_path, "--quick", "--translate", "siebenhundertelf")
    assert out.startswith("siebenhundertelf -> ")  # the smoke model, asked for with --quick
    err = run_example("translate", tmp_path, "--translate", "siebenhundertelf", returncode=2)
    assert "no trained model in runs/translate/checkpoint.npz" in err  # never the smoke model


def test_stop_and_resume_in_a_new_process_is_bit_exact(tmp_path):
    args = ("--quick", "--steps", "7", "--checkpoint-every", "100")
    run_main("translate", tmp_path / "whole", *args)
    assert run_main("translate", tmp_path / "parts", *args, "--stop-after", "3")[
        "stopped_at"] == 3
    run_example("translate", tmp_path / "parts", *args, "--resume")
    assert_same_checkpoint(tmp_path / "whole" / CKPT, tmp_path / "parts" / CKPT)


@pytest.mark.parametrize("args, message", [
    (["--translate", ""], "--translate: give a German number word"),
    (["--translate", "  "], "--translate: give a German number word"),
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["--steps", "-5"], "argument --steps: must be a positive integer, got -5"),
    (["--steps", "100"], r"--warmup-steps (200) must be smaller than --steps (100)"),
    (["--quick", "--batch-size", "5000"], "training set has 1600 sentences, fewer than"),
    (["--dropout", "-0.1"], "argument --dropout: must be a number in [0, 1)"),
    (["--quick", "--beam-size", "1000"], "--beam-size 1000: the English vocabulary has"),
])
def test_bad_flags_end_the_program_at_once_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main("translate", tmp_path, *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs" / "translate").exists()  # nothing trained


def test_translate_refuses_a_text_longer_than_the_learned_positions(tmp_path):
    run_main("translate", tmp_path, "--quick", "--steps", "6", "--positional", "learned")
    err = run_example("translate", tmp_path, "--quick", "--positional", "learned",
                      "--translate", "sieben" * 30, returncode=2)
    assert "--translate: 180 characters, but the model learned positions for 128" in err


def test_a_count_beyond_a_band_says_so(tmp_path, capsys):
    run_main("translate", tmp_path, "--quick", "--count", "40000", "--steps", "6")
    out = capsys.readouterr().out
    assert "--count 40,000 asks for more numbers than the bands 0-999 hold" in out
