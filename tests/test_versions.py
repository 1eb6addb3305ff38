"""In-place changes between forward and backward are refused, as in PyTorch.

A backward pass computes gradients from the arrays its forward pass saved. If one of them is
changed in between, the gradient belongs to values the forward pass never saw; the version
counter of each Tensor turns that silent error into a RuntimeError that names the op and the
tensor.
"""

import numpy as np
import pytest

import minitx as mt
from minitx import backend, nn
from minitx.optim import SGD, Adam, AdamW


def leaf(values, device):
    return mt.tensor(np.asarray(values, np.float64), device=device, requires_grad=True)


def grad(t):
    return backend.to_numpy(t.grad)


def test_a_weight_changed_through_data_before_backward_is_an_error(device):
    x, w = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    z = (x * w).sum()
    w.data[:] = 100  # x.grad would be [100, 100] instead of w at forward time, [3, 4]
    with pytest.raises(RuntimeError, match=r"Mul\.backward.*input 1.*shape \(2,\).*float64"):
        z.backward()


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1), lambda p: Adam(p, lr=0.1),
                                  lambda p: AdamW(p, lr=0.1)], ids=["SGD", "Adam", "AdamW"])
def test_an_optimizer_step_between_forward_and_backward_is_an_error(device, make):
    layer = nn.Linear(3, 2, dtype=np.float64).to(device)
    opt = make(layer.parameters())
    # x needs a gradient (as the output of an earlier layer does), so dL/dx = g W reads W
    x = mt.tensor(np.ones((4, 3)), device=device, requires_grad=True)
    layer(x).sum().backward()  # gradients exist, so step() changes the weights
    loss = layer(x).sum()
    opt.step()
    with pytest.raises(RuntimeError, match=r"Parameter of shape \((2, 3|3, 2)\)"):
        loss.backward()


def test_a_step_between_forward_and_backward_of_a_layer_fed_with_data_is_harmless(device):
    """With x data (no gradient), backward needs only dL/dW = gᵀx and dL/db: nothing it reads
    changed, so it runs (as in PyTorch) and gives the gradient of the forward pass."""
    layer = nn.Linear(3, 2, dtype=np.float64).to(device)
    opt = SGD(layer.parameters(), lr=0.1)
    x = mt.tensor(np.arange(12.0).reshape(4, 3), device=device)
    layer(x).sum().backward()
    loss = layer(x).sum()
    opt.step()
    layer.weight.grad = None
    loss.backward()
    np.testing.assert_allclose(backend.to_numpy(layer.weight.grad),
                               np.ones((2, 4)) @ np.arange(12.0).reshape(4, 3))


def test_the_usual_order_forward_backward_step_is_fine(device):
    layer = nn.Linear(3, 2, dtype=np.float64).to(device)
    opt = SGD(layer.parameters(), lr=0.1)
    x = mt.tensor(np.ones((4, 3)), device=device)
    for _ in range(3):
        loss = (layer(x) ** 2).mean()
        assert np.isfinite(loss.item()) and loss.numpy().shape == ()  # reading is fine
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_reading_with_numpy_item_or_comparisons_between_forward_and_backward_is_fine(device):
    x, w = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    y = (x * w).exp()
    _ = x.numpy(), w.numpy(), y.numpy(), y.sum().item(), (w > 3), w.argmax(), repr(w)
    _ = mt.tensor(w, device=device), w.shape, w.dtype, bool(w.sum() > 0)
    y.sum().backward()
    np.testing.assert_allclose(grad(x), np.exp([3.0, 8.0]) * [3.0, 4.0])


def test_an_input_the_op_did_not_save_may_change(device):
    x, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    z = ((x + b) * 2.0).sum()  # Add saves nothing of b: its gradient does not depend on b
    b.data[:] = 0
    z.backward()
    np.testing.assert_allclose(grad(b), [2.0, 2.0])


def test_a_saved_output_changed_in_place_is_an_error(device):
    x = leaf([0.0, 1.0], device)
    y = x.exp()  # Exp saves its output y: dy/dx = y
    y.data[:] = 0
    with pytest.raises(RuntimeError, match=r"Exp\.backward.*its output"):
        y.sum().backward()


def test_views_share_the_version_of_their_base(device):
    w = leaf([1.0, 2.0, 3.0, 4.0], device)
    v = w.reshape(2, 2)  # a view of w's memory
    z = (v * v).sum()  # Mul saves v
    w.data[0] = 9
    with pytest.raises(RuntimeError, match="Mul"):
        z.backward()
    w2 = leaf([1.0, 2.0, 3.0, 4.0], device)
    z2 = (w2 * w2).sum()  # Mul saves w2
    w2[1:].data[0] = 9  # a write through a slice of w2
    with pytest.raises(RuntimeError, match="Mul"):
        z2.backward()


def test_detach_shares_the_version(device):
    w = leaf([3.0, 4.0], device)
    z = (w * w).sum()
    w.detach().data[:] = 0
    with pytest.raises(RuntimeError, match="Mul"):
        z.backward()


def test_assigning_a_new_array_leaves_the_saved_values_and_the_gradient_alone(device):
    x, w = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    z = (x * w).sum()
    w.data = backend.to_device(np.array([100.0, 100.0]), device)  # the old array is untouched
    z.backward()
    np.testing.assert_allclose(grad(x), [3.0, 4.0])  # w as the forward pass saw it
    assert w._version == 1


def test_a_second_backward_after_a_step_is_an_error(device):
    x, w = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    z = (x * w).sum()
    z.backward(retain_graph=True)
    SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="Mul"):
        z.backward()


def test_versions_count_reads_and_writes_of_data(device):
    w = leaf([1.0, 2.0], device)
    assert w._version == 0
    _ = w.numpy(), w.shape, w + 1, w[0].item()
    assert w._version == 0  # numpy(), shapes and ops do not touch it
    w.data[0] = 5.0
    assert w._version == 1
    w.data -= 1.0  # read, written in place, set back: the same memory
    assert w._version == 3
