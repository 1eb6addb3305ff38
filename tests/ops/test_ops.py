"""Every op: forward against NumPy, gradients against finite differences, dtype kept.

The cases live in cases.py / cases_nn.py, one hypothesis strategy per op of ``minitx.ops.OPS``
and per function of ``minitx.ops`` composed of other ops (``COMPOSITES``).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitx import backend, ops
from minitx.tensor import Tensor
from minitx.testing import LAYOUTS, gradcheck
from tests.ops.cases_conv import CASES
from tests.ops.cases_nn import COMPOSITES

NAMES = sorted(CASES)


def as_tensors(arrays, device, dtype=None):
    out = []
    for a in arrays:
        if dtype is not None and a.dtype.kind == "f":
            a = a.astype(dtype)
        out.append(Tensor(backend.to_device(a, device)))
    return out


def test_every_op_has_a_case():
    missing = sorted(set(ops.OPS) - set(CASES))
    assert not missing, f"ops without a gradient case in tests/ops/cases*.py: {missing}"


def test_every_case_is_an_op_or_a_composite():
    """A case for a class that left OPS must move to COMPOSITES (and stay checked)."""
    stale = sorted(set(CASES) - set(ops.OPS) - COMPOSITES)
    assert not stale, f"cases that are neither in OPS nor in COMPOSITES: {stale}"
    assert not COMPOSITES & set(ops.OPS), "a name is both an op class and a composite"
    assert all(callable(getattr(ops, name)) for name in COMPOSITES)


def check_refused(name, case, tensors):
    """A case the op must refuse: the error names the op's inputs' problem, not NumPy's."""
    with pytest.raises(case.raises) as info:
        case.fn(*tensors)
    assert "numpy" not in type(info.value).__module__, f"{name}: a raw NumPy error"


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_forward_matches_numpy(name, device, data):
    case = data.draw(CASES[name])
    if case.raises:
        return check_refused(name, case, as_tensors(case.inputs, device))
    out = case.fn(*as_tensors(case.inputs, device))
    with np.errstate(all="ignore"):  # the reference may take the mean of nothing, on purpose
        expected = case.ref(*case.inputs)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-7, atol=1e-7 * case.scale,
                               err_msg=f"{name} forward, input shapes "
                                       f"{[a.shape for a in case.inputs]}")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_gradient(name, device, data):
    case = data.draw(CASES[name])
    layout = data.draw(st.sampled_from(LAYOUTS))
    if case.raises:
        return check_refused(name, case, as_tensors(case.inputs, device))
    gradcheck(case.fn, *case.inputs, device=device, layout=layout, **case.tol)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_float32_stays_float32(name, device, data):
    """float32 in gives float32 out and float32 gradients: no op promotes to float64."""
    case = data.draw(CASES[name])
    if case.raises:
        return check_refused(name, case, as_tensors(case.inputs, device, np.float32))
    tensors = as_tensors(case.inputs, device, np.float32)
    for t in tensors:
        t.requires_grad = t.dtype == np.float32
    out = case.fn(*tensors)
    assert case.casts or out.dtype == np.float32, f"{name} returned {out.dtype}"
    out.backward(backend.to_device(np.ones(out.shape, out.dtype), device))
    for t in tensors:
        if t.requires_grad and t.grad is not None:
            assert t.grad.dtype == np.float32
