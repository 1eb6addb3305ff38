"""clip_grad_norm_ and clip_grad_value_ against NumPy and torch.nn.utils."""

import math
import re

import numpy as np
import pytest

from minitx import backend
from minitx.optim import clip_grad_norm_, clip_grad_value_
from tests.optim.common import make_params, random_arrays, set_grads

NORMS = [1.0, 2.0, 3.0, math.inf]


def numpy_total_norm(grads, p):
    flat = np.concatenate([g.ravel() for g in grads])
    return np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)


def grads_of(params):
    return [backend.to_numpy(p.grad) for p in params]


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm(device, norm_type, max_norm):
    rng = np.random.default_rng(0)
    params = make_params(random_arrays(rng), device)
    grads = random_arrays(rng)
    set_grads(params, grads)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = numpy_total_norm(grads, norm_type)
    assert isinstance(total, float) and total == pytest.approx(expected, rel=1e-12)
    scale = min(1.0, max_norm / (expected + 1e-6))
    for mine, g in zip(grads_of(params), grads):
        np.testing.assert_allclose(mine, g * scale, rtol=1e-12)
    if max_norm < expected:
        assert numpy_total_norm(grads_of(params), norm_type) == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_float32_and_skips_missing_grads(device):
    rng = np.random.default_rng(1)
    params = make_params(random_arrays(rng, dtype=np.float32) + [np.ones(3, np.float32)], device)
    grads = random_arrays(rng, dtype=np.float32)
    set_grads(params, grads + [None])
    total = clip_grad_norm_(params, 1.0)
    assert total == pytest.approx(numpy_total_norm(grads, 2.0), rel=1e-6)
    assert params[2].grad is None
    assert all(p.grad.dtype == np.float32 for p in params[:2])


def test_clip_grad_norm_edge_cases():
    (p,) = make_params([np.ones(2)], "cpu")
    assert clip_grad_norm_([p], 1.0) == 0.0                  # no gradients at all
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="inf"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(p, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(p, -1.0)


@pytest.mark.parametrize("norm_type", NORMS)
def test_clip_grad_norm_matches_torch(device, norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    init, grads = random_arrays(rng), random_arrays(rng)
    params = make_params(init, device)
    set_grads(params, grads)
    total = clip_grad_norm_(params, 0.7, norm_type=norm_type)
    ref = [torch.tensor(a, requires_grad=True) for a in init]
    for t, g in zip(ref, grads):
        t.grad = torch.tensor(g)
    ref_total = torch.nn.utils.clip_grad_norm_(ref, 0.7, norm_type=norm_type)
    assert total == pytest.approx(ref_total.item(), rel=1e-12)
    for mine, t in zip(grads_of(params), ref):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_value(device):
    rng = np.random.default_rng(3)
    params = make_params(random_arrays(rng), device)
    grads = random_arrays(rng)
    set_grads(params, grads)
    clip_grad_value_(params, 0.5)
    for mine, g in zip(grads_of(params), grads):
        np.testing.assert_array_equal(mine, np.clip(g, -0.5, 0.5))
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(params, -1.0)


@pytest.mark.parametrize("norm_type", NORMS)
def test_clip_grad_norm_of_float16_gradients_does_not_overflow(device, norm_type):
    """Σ|g|^p of a 512x512 float16 gradient passes 65504, float16's largest number: it must be
    added up in float32 or wider, or the norm is inf and every gradient is scaled to 0."""
    rng = np.random.default_rng(4)
    grad = rng.standard_normal((512, 512)).astype(np.float16)  # ‖g‖₂ ≈ 512, Σg² ≈ 262144
    (param,) = make_params([np.zeros((512, 512), np.float16)], device)
    set_grads([param], [grad])
    total = clip_grad_norm_([param], max_norm=1.0, norm_type=norm_type)
    expected = numpy_total_norm([grad.astype(np.float64)], norm_type)
    assert total == pytest.approx(expected, rel=1e-3)
    clipped = backend.to_numpy(param.grad)
    assert clipped.dtype == np.float16                        # scaled in place, in float16
    np.testing.assert_allclose(clipped, grad.astype(np.float64) / expected, rtol=2e-3,
                               atol=1e-7)
    assert numpy_total_norm([clipped.astype(np.float64)], norm_type) == pytest.approx(1.0,
                                                                                    rel=1e-2)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"max_norm": None}, "clip_grad_norm_: max_norm must be a number >= 0, got None"),
    ({"max_norm": "1.0"}, "clip_grad_norm_: max_norm must be a number >= 0, got '1.0'"),
    ({"max_norm": 1.0, "norm_type": None}, "clip_grad_norm_: norm_type must be a number > 0"),
    ({"max_norm": 1.0, "norm_type": "2"}, "clip_grad_norm_: norm_type must be a number > 0"),
])
def test_clip_grad_norm_names_an_argument_that_is_no_number(kwargs, words):
    (p,) = make_params([np.ones(2)], "cpu")
    p.grad = np.array([3.0, 4.0])
    with pytest.raises(TypeError, match=re.escape(words)):
        clip_grad_norm_([p], **kwargs)
    np.testing.assert_array_equal(p.grad, [3.0, 4.0])
    with pytest.raises(TypeError, match=re.escape("clip_grad_value_: clip_value must be a "
                                                  "number >= 0, got None")):
        clip_grad_value_([p], None)
