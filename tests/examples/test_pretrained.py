"""examples.pretrained: a checkpoint it writes is one transformers reads (and the other way),
classify prints the checkpoint's class names and draws the rollout, fine-tune starts from the
checkpoint's weights with a new head, and bad input ends with a clear message."""

import json

import numpy as np
import pytest

import minitx as mt
from models import hub
from tests.helpers import run_example, run_main

QUICK = "runs/pretrained-quick/vit-shapes-where"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """`pretrain --quick` in a fresh folder: (folder, what main returned)."""
    folder = tmp_path_factory.mktemp("pretrain")
    return folder, run_main("pretrained", folder, "pretrain", "--quick")


def a_png(path, size=(48, 40)):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_pretrain_writes_a_checkpoint_minitx_reads_back_exactly(pretrained):
    folder, result = pretrained
    ckpt = folder / QUICK
    for name in ("model.safetensors", "config.json", "preprocessor_config.json"):
        assert (ckpt / name).exists(), name
    model, loaded = hub.load_pretrained(ckpt)
    x = mt.tensor(np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32))
    result["model"].eval()
    np.testing.assert_array_equal(model(x).numpy(), result["model"](x).numpy())
    assert hub.label_names(loaded.config)[:3] == ["small top left", "large top left",
                                                  "small top"]


def test_the_written_checkpoint_is_the_one_transformers_reads(pretrained):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    folder, result = pretrained
    reference = transformers.ViTForImageClassification.from_pretrained(folder / QUICK).eval()
    x = np.random.default_rng(2).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).logits.numpy()
    result["model"].eval()
    np.testing.assert_allclose(result["model"](mt.tensor(x)).numpy(), theirs, atol=1e-5)


def test_classify_prints_the_top_classes_and_draws_the_rollout(pretrained, tmp_path):
    folder, _ = pretrained
    image = a_png(tmp_path / "photo.png")
    out = run_example("pretrained", tmp_path, "classify", str(image), "--model",
                      str(folder / QUICK), "--top", "3")
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    names = json.loads((folder / QUICK / "config.json").read_text())["id2label"].values()
    assert len(lines) == 3
    probs = [float(line[-1]) for line in lines]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0
    assert all(" ".join(line[1:-1]) in names for line in lines)
    assert (tmp_path / "runs/pretrained/classify/photo_rollout.png").exists()


def test_classify_a_swin_checkpoint(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    config = transformers.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2],
                                     num_heads=[2, 4], window_size=4, num_labels=4,
                                     id2label={0: "cat", 1: "dog", 2: "owl", 3: "eel"})
    transformers.SwinForImageClassification(config).save_pretrained(tmp_path / "swin")
    (tmp_path / "swin" / "preprocessor_config.json").write_text(json.dumps(
        {"size": 32, "resample": 3, "image_mean": [0.485, 0.456, 0.406],
         "image_std": [0.229, 0.224, 0.225]}))
    result = run_main("pretrained", tmp_path, "classify", str(a_png(tmp_path / "x.png")),
                      "--model", str(tmp_path / "swin"))
    assert sorted(name for name, _ in result["top"]) == ["cat", "dog", "eel", "owl"]
    assert "figure" not in result


def test_fine_tune_starts_from_the_checkpoint_with_a_new_zero_head(pretrained, tmp_path):
    folder, _ = pretrained
    before, _ = hub.load_pretrained(folder / QUICK)
    result = run_main("pretrained", folder, "fine-tune", "--quick", "--no-scratch",
                      "--lr", "1e-12")  # steps too small to move anything visibly
    model = result["model"]
    assert model.config.num_classes == 5  # the kinds of shape, not pretraining's 18 classes
    np.testing.assert_allclose(model.blocks[0].self_attn.q_proj.weight.numpy(),
                               before.blocks[0].self_attn.q_proj.weight.numpy(), atol=1e-9)
    assert np.abs(model.head.weight.numpy()).max() < 1e-9  # §3.2: zero-initialised
    assert set(result) == {"pretrained", "model"}


def test_fine_tune_compares_with_training_from_scratch(pretrained):
    folder, _ = pretrained
    out = run_example("pretrained", folder, "fine-tune", "--quick")
    assert "pretrained: test accuracy" in out and "scratch: test accuracy" in out


@pytest.mark.parametrize("args, message", [
    (["classify", "--model", "x"], "the IMAGE argument is missing"),
    (["classify", "img.png", "--model", "no/such/folder"], "not a checkpoint folder"),
    (["fine-tune", "--model", "runs/no/such"], "not a checkpoint folder"),
    (["fine-tune"], "make it with: python -m examples.pretrained pretrain"),
    (["zero-shot"], "invalid choice"),
])
def test_bad_input_ends_with_a_clear_message(tmp_path, args, message):
    err = run_example("pretrained", tmp_path, *args, returncode=2)
    assert message in err
