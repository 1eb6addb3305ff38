"""Conv2d, pooling and BatchNorm layers: train/eval behaviour, running statistics, state dicts,
gradients, and equality with PyTorch's layers where torch is installed."""

import re

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import nn
from minitx.testing import gradcheck


def test_eval_uses_running_statistics_and_ignores_the_batch():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3)
    for _ in range(5):  # training: the running statistics move towards the data's
        bn(mt.tensor((rng.standard_normal((8, 3, 4, 4)) * 3 + 2).astype(np.float32)))
    assert np.all(bn.running_mean.numpy() > 0.5) and np.all(bn.running_var.numpy() > 2)
    bn.eval()
    x = mt.tensor(rng.standard_normal((4, 3, 4, 4)).astype(np.float32))
    alone = bn(x[:1]).numpy()
    together = bn(x).numpy()[:1]  # in evaluation an example does not see its batch
    np.testing.assert_allclose(alone, together, rtol=1e-6)
    bn.train()  # in training it does: the same example, two different batch-mates
    first = bn(x[:2]).numpy()[:1]
    second = bn(mt.concat([x[:1], x[2:3]], 0)).numpy()[:1]
    assert not np.allclose(first, second, atol=1e-3)


def test_running_statistics_are_saved_but_not_trained():
    bn = nn.BatchNorm1d(4)
    names = [n for n, _ in bn.named_parameters()]
    assert names == ["weight", "bias", "running_mean", "running_var"]
    bn(mt.tensor(np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32))).sum()\
        .backward()
    assert bn.running_mean.grad is None and bn.weight.grad is not None
    copy = nn.BatchNorm1d(4)
    copy.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(copy.running_var.numpy(), bn.running_var.numpy())


@pytest.mark.parametrize("training", [True, False])
def test_layer_gradients(training):
    rng = np.random.default_rng(2)  # also draws the kernel: no near-tie at a max-pool window
    conv, bn = nn.Conv2d(2, 3, 3, stride=2, padding=1, generator=rng).astype("float64"), \
        nn.BatchNorm2d(3).astype("float64")
    bn.running_mean.data[...] = rng.standard_normal(3)
    bn.running_var.data[...] = rng.uniform(0.5, 2, 3)
    bn.train(training)
    pool = nn.MaxPool2d(2) if training else nn.AvgPool2d(2)
    gradcheck(lambda x: pool(bn(conv(x))), rng.standard_normal((3, 2, 5, 5)))


def test_functional_batch_norm_defaults_to_the_running_statistics_as_pytorch_does(device):
    """PyTorch's F.batch_norm has training=False by default: F.batch_norm(x, r_μ, r_σ²) is
    the evaluation map (x − r_μ) / √(r_σ² + ε), and leaves the running statistics alone."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 2)) * 4 + 5
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 3.0])
    running_mean, running_var = mt.tensor(mean, device=device), mt.tensor(var, device=device)
    y = F.batch_norm(mt.tensor(x, device=device), running_mean, running_var)
    expected = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(running_mean.numpy(), mean)  # not updated
    np.testing.assert_array_equal(running_var.numpy(), var)
    with pytest.raises(ValueError, match="training=True"):  # no statistics: say how to get some
        F.batch_norm(mt.tensor(x, device=device))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4-d input with 3 channels"):
        nn.BatchNorm2d(3)(mt.ones((2, 3)))
    with pytest.raises(ValueError, match="Conv2d: channels"):
        nn.Conv2d(0, 3, 3)


@pytest.mark.parametrize("kernel_size", [(3,), 3.0, (3, 3, 3), None, (3, 2.5)])
def test_conv_kernel_size_is_an_int_or_a_pair_of_ints(kernel_size):
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be an int or a pair of ints, "
                                         rf"got {re.escape(repr(kernel_size))}"):
        nn.Conv2d(1, 1, kernel_size)
    assert nn.Conv2d(1, 1, np.int64(3)).weight.shape == (1, 1, 3, 3)  # NumPy's ints are ints
    assert nn.Conv2d(1, 1, [3, 2]).kernel_size == (3, 2)


# ---- PyTorch, an optional reference -------------------------------------------------------

@pytest.mark.parametrize("kind", ["1d", "1d-seq", "2d"])
def test_batch_norm_equals_torch_in_train_and_eval(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    shape = {"1d": (8, 5), "1d-seq": (4, 5, 6), "2d": (4, 5, 3, 3)}[kind]
    ours = (nn.BatchNorm2d if kind == "2d" else nn.BatchNorm1d)(5, momentum=0.2)
    theirs = (torch.nn.BatchNorm2d if kind == "2d" else torch.nn.BatchNorm1d)(5, momentum=0.2)
    ours.astype("float64")
    theirs.double()
    w, b = rng.uniform(0.5, 2, 5), rng.standard_normal(5)
    ours.weight.data[...], ours.bias.data[...] = w, b
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
        theirs.bias.copy_(torch.tensor(b))
    for step in range(4):  # train three steps, then evaluate
        training = step < 3
        ours.train(training)
        theirs.train(training)
        x = rng.standard_normal(shape) * 2 + 1
        a, t = mt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ya, yt = ours(a), theirs(t)
        np.testing.assert_allclose(ya.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(shape)
        ya.backward(g)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-9)
        ours.zero_grad()
        theirs.zero_grad()
        np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy())
        np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy())


def test_conv_layer_equals_torch_from_the_same_weights():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Conv2d(3, 4, (3, 2), stride=2, padding=1).double()
    ours = nn.Conv2d(3, 4, (3, 2), stride=2, padding=1).astype("float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(ours(mt.tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_running_statistics_stay_untrained_after_unfreezing():
    from minitx import optim
    bn = nn.BatchNorm1d(3)
    bn.requires_grad_(False)
    bn.requires_grad_(True)  # unfreezing the layer must not make its statistics trainable
    assert bn.weight.requires_grad and not bn.running_mean.requires_grad
    opt = optim.SGD(bn.parameters(), lr=0.1)
    bn.eval()
    x = mt.tensor(np.random.default_rng(0).random((8, 3), dtype=np.float32))
    before = bn.running_mean.numpy(), bn.running_var.numpy()
    (bn(x) ** 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(bn.running_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.running_var.numpy(), before[1])
    with pytest.raises(ValueError, match="a running statistic is never trained"):
        bn.running_mean.requires_grad = True
