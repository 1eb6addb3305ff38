"""examples.pretrained: a checkpoint it writes is one transformers reads (and the other way),
classify prints the checkpoint's class names and draws the rollout, fine-tune starts from the
checkpoint's weights with a new head, zero-shot gives CLIP's prompt-ensemble probabilities,
complete keeps the top half of the image, and bad input ends with a clear message."""

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
    (["zero-shot"], "the IMAGE argument is missing"),
    (["zero-shot", "img.png", "--labels", "cat"], "at least two labels"),
    (["complete", "img.png", "--model", "no/such/folder"], "not a checkpoint folder"),
    (["segment"], "invalid choice"),
    (["classify", "missing.png", "--model", "no/such/folder"],  # the cheap check first
     "No such file or directory: 'missing.png'"),
])
def test_bad_input_ends_with_a_clear_message(tmp_path, args, message):
    a_png(tmp_path / "img.png")
    err = run_example("pretrained", tmp_path, *args, returncode=2)
    assert message in err


# ---- zero-shot and complete, on small random checkpoints saved here ------------------------------

def clip_folder(folder, transformers, torch):
    """A small random CLIPModel with a byte-level BPE vocabulary of its own (the 512 byte
    symbols, a few merges, the two special tokens) and CLIP's kind of preprocessor config."""
    from models.clip_tokenizer import EOS, SOS, byte_alphabet

    merges = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>"), ("p", "h"),
              ("ph", "o"), ("pho", "t"), ("phot", "o</w>")]
    symbols = list(byte_alphabet().values())
    symbols += [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOS, EOS]
    vocab = {s: i for i, s in enumerate(symbols)}
    torch.manual_seed(0)
    model = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, eos_token_id=2,
                         bos_token_id=vocab[SOS], pad_token_id=vocab[EOS]),
        vision_config=dict(hidden_size=16, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=8)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(
        f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"do_resize": True, "size": {"shortest_edge": 32}, "resample": 3,
         "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
         "image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]}))
    return model


def test_zero_shot_prints_the_prompt_ensemble_probabilities(tmp_path):
    """The printed probabilities are softmax(exp(t) · cos(image, class)), each class the
    renormalised mean of its normalised prompt embeddings (§3.1.4), here recomputed with the
    reference model and the reference tokenizer and image processor."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from models.clip import TEMPLATES

    reference = clip_folder(tmp_path / "clip", transformers, torch)
    image = a_png(tmp_path / "x.png")
    result = run_main("pretrained", tmp_path, "zero-shot", str(image), "--labels",
                      "a cat, a dog,the photo", "--model", str(tmp_path / "clip"))
    assert list(result["probs"]) == ["a cat", "a dog", "the photo"]
    assert result["names"] == ["cat", "dog", "photo"]
    tok = transformers.CLIPTokenizer.from_pretrained(str(tmp_path / "clip"))
    processor = transformers.CLIPImageProcessor.from_pretrained(str(tmp_path / "clip"))
    with torch.no_grad():
        pixels = processor(hub.read_image(image), return_tensors="pt")["pixel_values"]
        img = reference.get_image_features(pixels)
        img = torch.nn.functional.normalize(getattr(img, "pooler_output", img), dim=-1)
        columns = []
        for name in result["names"]:
            ids = tok([t.format(name) for t in TEMPLATES], padding="max_length",
                      max_length=77, return_tensors="pt")["input_ids"]
            emb = reference.get_text_features(input_ids=ids)
            emb = torch.nn.functional.normalize(getattr(emb, "pooler_output", emb), dim=-1)
            columns.append(torch.nn.functional.normalize(emb.mean(0), dim=0))
        logits = reference.logit_scale.exp() * img @ torch.stack(columns, 1)
        theirs = logits.softmax(-1)[0].numpy()
    np.testing.assert_allclose(list(result["probs"].values()), theirs, atol=1e-5)
    out = run_example("pretrained", tmp_path, "zero-shot", str(image), "--labels", "a cat,a dog",
                      "--model", str(tmp_path / "clip"))
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert sorted(" ".join(line[:-1]) for line in lines) == ["a cat", "a dog"]
    assert abs(sum(float(line[-1]) for line in lines) - 1) < 2e-3


def igpt_folder(folder, transformers, torch):
    """A small random Image-GPT over 4x4 images with a palette of 7 colours."""
    torch.manual_seed(0)
    transformers.ImageGPTForCausalImageModeling(transformers.ImageGPTConfig(
        vocab_size=8, n_positions=16, n_embd=16, n_layer=2, n_head=2)).save_pretrained(
        folder, safe_serialization=True)
    clusters = np.random.default_rng(0).uniform(-1, 1, (7, 3)).round(3)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"clusters": clusters.tolist(), "do_resize": True, "size": 4, "resample": 2,
         "do_normalize": True}))


def test_complete_keeps_the_top_half_and_samples_the_bottom(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from models.pretrained_image_gpt import image_tokens

    igpt_folder(tmp_path / "igpt", transformers, torch)
    image = a_png(tmp_path / "x.png")
    args = ("complete", str(image), "--model", str(tmp_path / "igpt"), "--samples", "5")
    result = run_main("pretrained", tmp_path, *args)
    _, ckpt = hub.load_pretrained(tmp_path / "igpt")
    tokens = image_tokens(hub.read_image(image), ckpt.preprocessor)  # (1, 16): its palette
    np.testing.assert_array_equal(result["tokens"], tokens)
    assert result["samples"].shape == (5, 16)
    assert (result["samples"][:, :8] == tokens[:, :8]).all()  # the top two rows, kept
    assert len({tuple(s) for s in result["samples"][:, 8:]}) > 1  # the bottom, drawn
    assert result["samples"].max() < 7  # colours only, never [SOS]
    again = run_main("pretrained", tmp_path, *args)  # the same seed, the same draws
    np.testing.assert_array_equal(again["samples"], result["samples"])
    assert (tmp_path / "runs/pretrained/complete/x_completions.png").exists()


# ---- bad input, checked before the work: one line on stderr, exit code 2 -------------------------

def fails(capsys, folder, *args):
    """Run the program in this process; return its stderr, asserting argparse's exit code 2."""
    with pytest.raises(SystemExit) as e:
        run_main("pretrained", folder, *args)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def small_igpt(tmp_path_factory):
    """A random 4x4 Image-GPT with 7 colours, written by minitx in transformers' layout."""
    from models.image_gpt import ImageGPT, ImageGPTConfig
    from models.pretrained_image_gpt import to_transformers

    model = ImageGPT(ImageGPTConfig(num_colors=7, seq_len=16, dim=16, depth=1, heads=2),
                     generator=np.random.default_rng(0))
    palette = np.random.default_rng(1).uniform(0, 1, (7, 3))
    return hub.save_checkpoint(tmp_path_factory.mktemp("igpt") / "igpt",
                               *to_transformers(model, palette))


@pytest.mark.parametrize("command, model, message", [
    ("classify", "igpt", "igpt is an ImageGPT; expected a ViT or a Swin"),
    ("complete", "vit", "vit is a ViT; expected an Image-GPT"),
    ("zero-shot", "igpt", "igpt is an ImageGPT; expected a CLIP"),
    ("fine-tune", "igpt", "igpt is an ImageGPT; expected a ViT"),
])
def test_each_command_refuses_a_model_of_another_kind(pretrained, small_igpt, tmp_path, capsys,
                                                      command, model, message):
    (tmp_path / "vit").symlink_to(pretrained[0] / QUICK)
    (tmp_path / "igpt").symlink_to(small_igpt)
    image = [] if command == "fine-tune" else [str(a_png(tmp_path / "x.png"))]
    err = fails(capsys, tmp_path, command, *image, "--model", model)
    assert f"{command}: {message}" in err and "Traceback" not in err


def test_classify_refuses_a_clip_checkpoint(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    clip_folder(tmp_path / "clip", transformers, torch)
    err = fails(capsys, tmp_path, "classify", str(a_png(tmp_path / "x.png")), "--model", "clip")
    assert "classify: clip is a CLIP; expected a ViT or a Swin" in err


@pytest.mark.parametrize("k", ["8", "1000"])
def test_complete_refuses_a_top_k_beyond_the_palette(small_igpt, tmp_path, capsys, k):
    err = fails(capsys, tmp_path, "complete", str(a_png(tmp_path / "x.png")), "--model",
                str(small_igpt), "--top-k", k)
    assert f"--top-k {k} is larger than the palette" in err and "(7 colours)" in err
    assert not (tmp_path / "runs/pretrained/complete/x_completions.png").exists()


def damage(folder, how):
    """Spoil a copy of a checkpoint folder in one way."""
    config = folder / "config.json"
    if how == "config not JSON":
        config.write_text('{"model_type": "vit",,')
    elif how == "config a list":
        config.write_text("[1, 2]")
    elif how == "config not text":
        config.write_bytes(bytes(range(128, 256)))
    elif how == "preprocessor not JSON":
        (folder / "preprocessor_config.json").write_text("{oops")
    elif how == "heads do not divide the width":
        config.write_text(json.dumps({**json.loads(config.read_text()),
                                      "num_attention_heads": 5}))
    elif how == "no weights":
        (folder / "model.safetensors").unlink()
    elif how == "no config":
        config.unlink()
    elif how == "a preprocessor size it cannot read":
        (folder / "preprocessor_config.json").write_text('{"size": "big"}')


@pytest.mark.parametrize("how, file, message", [
    ("config not JSON", "config.json", "not a valid JSON file (Expecting"),
    ("config a list", "config.json", "expected a JSON object {...}, got a list"),
    ("config not text", "config.json", "not a valid JSON file ('utf-8' codec"),
    ("preprocessor not JSON", "preprocessor_config.json", "not a valid JSON file"),
    ("heads do not divide the width", "config.json", "cannot build the model from it (ViT: "),
    ("no weights", "", "no weights (*.safetensors, *.bin or *.pth) in the folder"),
    ("no config", "", "no config.json (the architecture) in the folder"),
    ("a preprocessor size it cannot read", "preprocessor_config.json", "size 'big' is not"),
])
def test_a_damaged_checkpoint_ends_with_one_line_naming_the_file(pretrained, tmp_path, capsys,
                                                                 how, file, message):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(pretrained[0] / QUICK, folder)
    damage(folder, how)
    err = fails(capsys, tmp_path, "classify", str(a_png(tmp_path / "x.png")), "--model", "ckpt")
    line = err.strip().splitlines()[-1]
    assert line.startswith("python -m examples.pretrained classify IMAGE: error: ")
    assert f"{folder.name}/{file}".rstrip("/") in line and message in line, line
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["classify", "IMAGE", "--model", "vit"],
    ["complete", "IMAGE", "--model", "igpt"],
    ["pretrain", "--quick"],
])
def test_an_out_folder_that_cannot_be_written_is_refused_before_the_work(
        pretrained, small_igpt, tmp_path, capsys, args):
    (tmp_path / "vit").symlink_to(pretrained[0] / QUICK)
    (tmp_path / "igpt").symlink_to(small_igpt)
    (tmp_path / "a_file").write_text("")
    image = str(a_png(tmp_path / "x.png"))
    args = [image if a == "IMAGE" else a for a in args]
    err = fails(capsys, tmp_path, *args, "--out", "a_file/sub")
    assert "--out a_file/sub: cannot write there (Not a directory)" in err
    assert not (tmp_path / "runs").exists()  # nothing computed, nothing written


@pytest.mark.parametrize("args, message", [
    (["fine-tune", "--quick", "--train-size", "5"],
     "--batch-size 32 is larger than the training set (--train-size 5)"),
    (["fine-tune", "--batch-size", "501"],
     "--batch-size 501 is larger than the training set (--train-size 500)"),
    (["pretrain", "--quick", "--train-size", "33"],
     "--batch-size 32 is larger than the training set (27 shapes: --train-size 33 less 6 held "
     "out)"),
    (["pretrain", "--quick", "--train-size", "4"], "so pretraining needs at least 5"),
])
def test_a_batch_larger_than_the_training_set_stops_the_program(tmp_path, capsys, args,
                                                               message):
    err = fails(capsys, tmp_path, *args)  # no checkpoint here: the batch is checked first
    assert message in err


def test_fine_tune_refuses_more_images_than_the_dataset_has(pretrained, tmp_path, capsys):
    err = fails(capsys, tmp_path, "fine-tune", "--model", str(pretrained[0] / QUICK),
                "--dataset", "digits", "--train-size", "100000", "--steps", "1",
                "--warmup-steps", "0")
    assert "--train-size 100000: digits has only" in err


def test_the_help_of_each_field_is_its_own_comment(capsys, monkeypatch):
    """field_help joins a field's trailing comment with the comment lines right above the next
    field: each comment stays on its field's line, and its parentheses close there."""
    from examples import pretrained
    from examples.common import field_help

    for config in (pretrained.ClassifyConfig, pretrained.FineTuneConfig,
                   pretrained.PretrainConfig, pretrained.ZeroShotConfig,
                   pretrained.CompleteConfig):
        for name, text in field_help(config).items():
            depth = 0
            for char in text:
                depth += {"(": 1, ")": -1}.get(char, 0)
                assert depth >= 0, f"{config.__name__}.{name}: {text!r}"
            assert depth == 0, f"{config.__name__}.{name}: {text!r}"
    monkeypatch.setenv("COLUMNS", "200")  # one line per flag
    with pytest.raises(SystemExit):
        pretrained.main(["pretrain", "--help"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
             if line.strip().startswith("--")}
    assert lines["--steps"].split(maxsplit=2)[2] == "optimizer steps (default: 1500)"
    assert lines["--train-size"].split(maxsplit=2)[2] == (
        "shapes to pretrain on, seeded apart from fine-tune's (default: 20000)")


def test_a_hub_name_that_cannot_be_fetched_ends_with_one_line(tmp_path, capsys, monkeypatch):
    def offline(name):  # huggingface_hub's messages run over several lines
        raise OSError(f"{name}: could not fetch it (LocalEntryNotFoundError: no network\n"
                      f"Please check your internet connection.)")

    monkeypatch.setattr(hub, "resolve", offline)
    err = fails(capsys, tmp_path, "classify", str(a_png(tmp_path / "x.png")), "--model",
                "org/model")
    line = err.strip().splitlines()[-1]
    assert line.startswith("python -m examples.pretrained classify IMAGE: error: org/model: "
                           "could not fetch it")
    assert "no network Please check your internet connection.)" in line
