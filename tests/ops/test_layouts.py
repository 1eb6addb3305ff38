"""Ops on non-contiguous inputs: a transposed or sliced view must give the gradients a
contiguous array gives. An op that writes into ``reshape(...)`` of such an array writes into a
copy, and the write is lost; these checks run every layout on the ops that reshape inside."""

import numpy as np
import pytest

import minitx.functional as F
from minitx import ops
from minitx.testing import LAYOUTS, gradcheck

RNG = np.random.default_rng(0)
Z = RNG.standard_normal((3, 2, 4))  # (..., C)
T = RNG.integers(0, 4, (3, 2))
T[0, 1] = -100

CASES = {
    "cross_entropy": (lambda z, t: F.cross_entropy(z, t), [Z, T]),
    "cross_entropy_smoothed": (lambda z, t: F.cross_entropy(z, t, label_smoothing=0.2,
                                                            reduction="none"), [Z, T]),
    "layer_norm": (F.layer_norm, [Z, RNG.standard_normal(4), RNG.standard_normal(4)]),
    "log_softmax": (lambda z: F.log_softmax(z, 0), [Z]),
    "gelu": (F.gelu, [Z]),
    "embedding": (lambda w, i: F.embedding(i, w), [RNG.standard_normal((5, 3)),
                                                   RNG.integers(0, 5, (2, 3))]),
    "linear": (F.linear, [Z, RNG.standard_normal((2, 4)), RNG.standard_normal(2)]),
    "matmul": (ops.matmul, [Z, RNG.standard_normal((4, 2))]),
    "gather": (lambda x, i: ops.gather(x, i, 1), [Z, RNG.integers(0, 2, (3, 5, 4))]),
    "attention": (F.scaled_dot_product_attention, [RNG.standard_normal((2, 3, 4))] * 3),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_do_not_depend_on_the_layout(name, layout, device):
    fn, inputs = CASES[name]
    gradcheck(fn, *inputs, device=device, layout=layout)
