"""Adam and AdamW against the algorithm boxes of their papers and against torch.optim."""

import numpy as np
import pytest

from minitx.optim import Adam, AdamW
from tests.optim.common import host, make_params, random_arrays, run


def adam_box(theta, grads, alpha, beta1, beta2, eps, l2=0.0, decoupled=0.0):
    """Kingma & Ba 2015, Algorithm 1, line by line (m̂, v̂ written out, no folding).

    `l2` adds λ·θ to the gradient (PyTorch's Adam weight decay); `decoupled` is the λ of
    Loshchilov & Hutter 2019, Algorithm 2, line 12, with schedule multiplier η_t = 1.
    """
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = g + l2 * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - (alpha * m_hat / (np.sqrt(v_hat) + eps) + decoupled * theta)
    return theta


def test_first_adam_step_is_lr_times_sign(device):
    """At t = 1, m̂ = g and v̂ = g², so the step is α·g / (|g| + ε) ≈ α·sign(g)."""
    g = np.array([3.0, -0.2, 1e-3])
    params = make_params([np.zeros(3)], device)
    run(Adam(params, lr=0.01), params, [[g]])
    np.testing.assert_allclose(params[0].numpy(), -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adam_and_adamw_by_hand(device):
    """θ0 = 1, g = 1 then 3, α = 0.1, β1 = β2 = 0.5, ε = 0.

    Step 1: m = 0.5, v = 0.5, m̂ = v̂ = 1, so θ1 = 1 − 0.1·1/1 = 0.9.
    Step 2: m = 0.25 + 1.5 = 1.75, v = 0.25 + 4.5 = 4.75, m̂ = 1.75/0.75 = 7/3,
            v̂ = 4.75/0.75 = 19/3, so θ2 = 0.9 − 0.1·(7/3)/√(19/3) ≈ 0.807283.
    AdamW with λ = 0.5 first shrinks θ by 1 − α·λ = 0.95: θ1 = 0.95 − 0.1 = 0.85 and
    θ2 = 0.85·0.95 − 0.1·(7/3)/√(19/3) ≈ 0.714783.
    """
    settings = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0}
    for opt_cls, extra, expected in [(Adam, {}, [0.9, 0.9 - 0.1 * (7 / 3) / (19 / 3) ** 0.5]),
                                     (AdamW, {"weight_decay": 0.5},
                                      [0.85, 0.85 * 0.95 - 0.1 * (7 / 3) / (19 / 3) ** 0.5])]:
        params = make_params([np.array([1.0])], device)
        opt = opt_cls(params, **settings, **extra)
        run(opt, params, [[np.array([1.0])]])
        np.testing.assert_allclose(params[0].numpy(), [expected[0]], rtol=1e-14)
        run(opt, params, [[np.array([3.0])]])
        np.testing.assert_allclose(params[0].numpy(), [expected[1]], rtol=1e-14)
    assert expected[1] == pytest.approx(0.714783, abs=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_first_two_steps(device, weight_decay):
    rng = np.random.default_rng(0)
    theta0, g1, g2 = rng.standard_normal((3, 6))
    box = {"alpha": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-3, "l2": weight_decay}
    params = make_params([theta0], device)
    opt = Adam(params, lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=weight_decay)
    run(opt, params, [[g1]])
    np.testing.assert_allclose(params[0].numpy(), adam_box(theta0, [g1], **box), rtol=1e-12)
    run(opt, params, [[g2]])
    np.testing.assert_allclose(params[0].numpy(), adam_box(theta0, [g1, g2], **box),
                               rtol=1e-12)


def test_adamw_first_two_steps(device):
    """Algorithm 2 with η_t = 1, α = lr and the paper's λ = lr · PyTorch's λ (the DEVIATION)."""
    rng = np.random.default_rng(1)
    theta0, g1, g2 = rng.standard_normal((3, 6))
    lr, wd = 0.01, 0.3
    box = {"alpha": lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "decoupled": lr * wd}
    params = make_params([theta0], device)
    opt = AdamW(params, lr=lr, weight_decay=wd)
    run(opt, params, [[g1]])
    np.testing.assert_allclose(params[0].numpy(), adam_box(theta0, [g1], **box), rtol=1e-12)
    run(opt, params, [[g2]])
    np.testing.assert_allclose(params[0].numpy(), adam_box(theta0, [g1, g2], **box),
                               rtol=1e-12)


def test_adamw_defaults_follow_pytorch():
    params = make_params([np.zeros(2)], "cpu")
    group = AdamW(params).param_groups[0]
    assert group["weight_decay"] == 0.01 and group["lr"] == 1e-3
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and not group["amsgrad"]
    assert Adam(make_params([np.zeros(2)], "cpu")).param_groups[0]["weight_decay"] == 0.0


def test_adamw_without_decay_is_adam(device):
    rng = np.random.default_rng(2)
    init = random_arrays(rng)
    grad_steps = [random_arrays(rng) for _ in range(5)]
    a, b = make_params(init, device), make_params(init, device)
    run(Adam(a, lr=0.01), a, grad_steps)
    run(AdamW(b, lr=0.01, weight_decay=0.0), b, grad_steps)
    for x, y in zip(host(a), host(b)):
        np.testing.assert_array_equal(x, y)


TORCH_CASES = [
    ("Adam", {}),
    ("Adam", {"weight_decay": 0.1, "betas": (0.8, 0.9), "eps": 1e-6}),
    ("Adam", {"amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"weight_decay": 0.3, "betas": (0.5, 0.99)}),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
]


@pytest.mark.parametrize(("name", "config"), TORCH_CASES, ids=str)
def test_adam_matches_torch(device, name, config):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    init = random_arrays(rng)
    # varying gradient scales, so that amsgrad's maximum matters
    grad_steps = [[g * rng.uniform(0.1, 3.0) for g in random_arrays(rng)] for _ in range(20)]
    params = make_params(init, device)
    run({"Adam": Adam, "AdamW": AdamW}[name](params, lr=0.02, **config), params, grad_steps)

    ref = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(torch.optim, name)(ref, lr=0.02, **config)
    for grads in grad_steps:
        for t, g in zip(ref, grads):
            t.grad = torch.tensor(g)
        opt.step()
    for mine, theirs in zip(host(params), ref):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_bad_settings(cls):
    params = make_params([np.zeros(2)], "cpu")
    with pytest.raises(ValueError, match="betas"):
        cls(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        cls(params, eps=-1e-8)
    with pytest.raises(ValueError, match="lr"):
        cls(params, lr=float("nan"))
