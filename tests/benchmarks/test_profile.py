"""The model benchmark's profile: every product kernel is timed, the timers come off again,
and the floor is the products plus the rest shared among the cores."""

import numpy as np
import pytest

import minitx as mt
from benchmarks.bench_models import PRODUCT_KERNELS, product_floor, profile_by_op
from minitx import kernels, nn, optim


def test_product_floor_splits_only_the_rest_among_the_cores():
    per_wall = {"kernels.matmul": 0.5, "kernels.matmul_summed": 0.2, "GELU.forward": 0.1}
    products, rest, floor = product_floor(1.0, per_wall, cores=2)
    assert (products, rest, floor) == pytest.approx((0.7, 0.3, 0.85))
    assert product_floor(1.0, per_wall, cores=1)[2] == pytest.approx(1.0)


def test_profile_times_the_products_of_a_linear_layers_step_and_unwraps_them():
    originals = {name: getattr(kernels, name) for name in PRODUCT_KERNELS}
    layer = nn.Linear(64, 32, generator=np.random.default_rng(0))
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = mt.tensor(np.ones((8, 16, 64), np.float32), requires_grad=True)

    def step():
        layer(x).sum().backward()
        opt.step()
        opt.zero_grad()

    (wall, per_wall), _ = profile_by_op(step, count=2)
    # forward y = x Wᵀ, dL/dx = g W, dL/dW = gᵀ x, dL/db = 1ᵀ g: three kernels, all timed
    for name in ("matmul", "matmul_summed", "sum_leading"):
        assert 0 < per_wall[f"kernels.{name}"] < wall
    assert product_floor(wall, per_wall, 2)[0] == pytest.approx(
        sum(per_wall[f"kernels.{name}"] for name in ("matmul", "matmul_summed", "sum_leading")))
    assert {name: getattr(kernels, name) for name in PRODUCT_KERNELS} == originals
