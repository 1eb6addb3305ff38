"""SGD against hand-computed steps, Sutskever et al.'s textbook form, and torch.optim.SGD."""

import numpy as np
import pytest

from minitx.optim import SGD
from tests.optim.common import host, make_params, random_arrays, run

CONFIGS = [
    {},
    {"weight_decay": 0.1},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05},
    {"momentum": 0.9, "dampening": 0.5, "weight_decay": 0.05},
]


def test_sgd_momentum_by_hand(device):
    """θ0 = 1, g = 0.5 both steps, γ = 0.1, μ = 0.9.

    Step 1: b1 = g = 0.5,                  θ1 = 1 − 0.1·0.5 = 0.95.
    Step 2: b2 = 0.9·0.5 + 0.5 = 0.95,     θ2 = 0.95 − 0.1·0.95 = 0.855.
    """
    (p,) = make_params([np.array([1.0])], device)
    opt = SGD([p], lr=0.1, momentum=0.9)
    run(opt, [p], [[np.array([0.5])]])
    np.testing.assert_allclose(p.numpy(), [0.95], rtol=1e-6)
    run(opt, [p], [[np.array([0.5])]])
    np.testing.assert_allclose(p.numpy(), [0.855], rtol=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_sgd_first_two_steps(device, config):
    """Two steps against PyTorch's SGD equations, written out step by step."""
    rng = np.random.default_rng(0)
    theta0, g1, g2 = rng.standard_normal((3, 4, 3))
    lr = 0.05
    mu, tau = config.get("momentum", 0.0), config.get("dampening", 0.0)
    lam, nesterov = config.get("weight_decay", 0.0), config.get("nesterov", False)

    d1 = g1 + lam * theta0                                  # (1)
    b1 = d1                                                 # (2), first step: no dampening
    step1 = (d1 + mu * b1 if nesterov else b1) if mu else d1
    theta1 = theta0 - lr * step1                            # (4)
    d2 = g2 + lam * theta1
    b2 = mu * b1 + (1 - tau) * d2
    step2 = (d2 + mu * b2 if nesterov else b2) if mu else d2
    theta2 = theta1 - lr * step2

    params = make_params([theta0], device)
    opt = SGD(params, lr=lr, **config)
    run(opt, params, [[g1]])
    np.testing.assert_allclose(host(params)[0], theta1, rtol=1e-12, atol=1e-14)
    run(opt, params, [[g2]])
    np.testing.assert_allclose(host(params)[0], theta2, rtol=1e-12, atol=1e-14)


def test_classical_momentum_is_sutskever_with_constant_lr(device):
    """v_t = μ·v_{t−1} − γ·g_t, θ_t = θ_{t−1} + v_t (Sutskever et al. 2013, Eq. 1-2)."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    A = A @ A.T + np.eye(4)                                 # f(θ) = ½ θᵀAθ, ∇f = Aθ
    theta, v = rng.standard_normal(4), np.zeros(4)
    lr, mu = 0.02, 0.9
    params = make_params([theta], device)
    opt = SGD(params, lr=lr, momentum=mu)
    for _ in range(10):
        run(opt, params, [[A @ params[0].numpy()]])
        v = mu * v - lr * (A @ theta)
        theta = theta + v
    np.testing.assert_allclose(params[0].numpy(), theta, rtol=1e-12)


def test_nesterov_stores_the_lookahead_point(device):
    """Textbook Nesterov takes ∇f at θ + μ·v; PyTorch's parameter *is* that point (Bengio 2013)."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((4, 4))
    A = A @ A.T + np.eye(4)
    theta, v = rng.standard_normal(4), np.zeros(4)
    lr, mu = 0.02, 0.9
    params = make_params([theta], device)
    opt = SGD(params, lr=lr, momentum=mu, nesterov=True)
    for _ in range(10):
        run(opt, params, [[A @ params[0].numpy()]])
        v = mu * v - lr * (A @ (theta + mu * v))          # Sutskever et al. 2013, Eq. 3
        theta = theta + v                                 # Eq. 4
    np.testing.assert_allclose(params[0].numpy(), theta + mu * v, rtol=1e-10)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_sgd_matches_torch(device, config):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    init = random_arrays(rng)
    grad_steps = [random_arrays(rng) for _ in range(20)]
    params = make_params(init, device)
    run(SGD(params, lr=0.03, **config), params, grad_steps)

    ref = [torch.tensor(a, requires_grad=True) for a in init]
    opt = torch.optim.SGD(ref, lr=0.03, **config)
    for grads in grad_steps:
        for t, g in zip(ref, grads):
            t.grad = torch.tensor(g)
        opt.step()
    for mine, theirs in zip(host(params), ref):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_sgd_bad_settings():
    params = make_params([np.zeros(2)], "cpu")
    with pytest.raises(ValueError, match="nesterov"):
        SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(params, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        SGD(params, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(params, momentum=-0.5)
