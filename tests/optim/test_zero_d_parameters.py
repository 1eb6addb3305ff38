"""Every optimizer updates a 0-d parameter (a learned scalar, such as CLIP's temperature) as it
updates a one-element vector: NumPy hands back scalars, not arrays, for 0-d arithmetic, and an
update that writes into a result with ``out=`` must not trip on that."""

import numpy as np
import pytest

import minitx as mt
from minitx import nn, optim

OPTIMIZERS = [
    (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),  # g + λθ is a NumPy scalar
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}),
    (optim.Adam, {"lr": 0.1}),
    (optim.Adam, {"lr": 0.1, "amsgrad": True}),
    (optim.AdamW, {"lr": 0.1, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS)
def test_a_scalar_parameter_moves_like_a_one_element_vector(device, cls, kwargs):
    scalar = nn.Parameter(mt.tensor(2.0, dtype=np.float64, device=device).data)
    vector = nn.Parameter(mt.tensor([2.0], dtype=np.float64, device=device).data)
    opts = cls([scalar], **kwargs), cls([vector], **kwargs)
    for _ in range(5):
        for p, opt in zip((scalar, vector), opts):
            (p * p).sum().backward()
            opt.step()
            opt.zero_grad()
    assert scalar.shape == ()
    assert scalar.item() == vector.numpy()[0] != 2.0
