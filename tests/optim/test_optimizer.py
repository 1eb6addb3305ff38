"""What every optimizer shares: groups, skipped parameters, dtype, in-place updates, checkpoints."""

import re

import numpy as np
import pytest

import minitx as mt
from minitx import backend
from minitx.optim import SGD, Adam, AdamW, StepSchedule, WarmupCosineSchedule
from tests.optim.common import host, make_params, random_arrays, run, set_grads, to_host

OPTIMIZERS = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (Adam, {"lr": 0.01, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01, "amsgrad": True}),
    (AdamW, {"lr": 0.01}),
]
IDS = [f"{cls.__name__}-{kw}" for cls, kw in OPTIMIZERS]


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_param_groups_equal_separate_optimizers(device, cls, kwargs):
    """Two groups with their own lr and weight decay == two optimizers, one per group."""
    rng = np.random.default_rng(0)
    init = random_arrays(rng)
    grad_steps = [random_arrays(rng) for _ in range(3)]
    settings = [{"lr": 0.05, "weight_decay": 0.2}, {"lr": 0.002, "weight_decay": 0.0}]
    params = make_params(init, device)
    together = cls([{"params": [p], **s} for p, s in zip(params, settings)], **kwargs)
    run(together, params, grad_steps)
    for i, s in enumerate(settings):
        alone = make_params([init[i]], device)
        run(cls(alone, **{**kwargs, **s}), alone, [[grads[i]] for grads in grad_steps])
        np.testing.assert_array_equal(params[i].numpy(), alone[0].numpy())
    assert together.param_groups[1]["lr"] == 0.002
    assert set(together.param_groups[1]) == set(together.defaults) | {"params"}  # defaults in


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_params_without_grad_are_skipped(device, cls, kwargs):
    params = make_params(random_arrays(np.random.default_rng(1)), device)
    before = host(params)
    opt = cls(params, **kwargs)
    run(opt, params, [[np.ones((3, 4)), None]] * 2)
    np.testing.assert_array_equal(params[1].numpy(), before[1])
    assert params[1] not in opt.state
    assert not np.array_equal(params[0].numpy(), before[0])


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_float32_stays_float32_on_its_device(device, cls, kwargs):
    rng = np.random.default_rng(2)
    params = make_params(random_arrays(rng, dtype=np.float32), device)
    opt = cls(params, **{**kwargs, "lr": np.float64(kwargs["lr"])})  # a float64 scalar too
    run(opt, params, [random_arrays(rng, dtype=np.float32) for _ in range(3)])
    for p in params:
        assert p.dtype == np.float32 and p.device == backend.normalize_device(device)
        for value in opt.state[p].values():
            if backend.is_array(value):
                assert value.dtype == np.float32
                assert backend.device_of(value) == backend.normalize_device(device)


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_update_is_in_place_and_grad_untouched(cls, kwargs):
    rng = np.random.default_rng(3)
    params = make_params(random_arrays(rng), "cpu")
    opt = cls(params, **kwargs)
    for _ in range(3):
        grads = random_arrays(rng)
        set_grads(params, grads)
        data = [p.data for p in params]
        opt.step()
        assert all(p.data is d for p, d in zip(params, data))  # same buffers, updated in place
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad, g)            # the gradient is not written


def test_step_returns_closure_loss():
    params = make_params([np.ones(2)], "cpu")
    opt = SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (params[0] * params[0]).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 2.0
    np.testing.assert_allclose(params[0].numpy(), [0.8, 0.8])


def test_zero_grad(device):
    params = make_params([np.ones(2), np.ones(3)], device)
    opt = SGD(params)
    set_grads(params, [np.ones(2), np.ones(3)])
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is not None
    np.testing.assert_array_equal(backend.to_numpy(grad), np.zeros(2))  # zeroed in place
    opt.zero_grad()
    assert params[0].grad is None and params[1].grad is None


def test_add_param_group_takes_defaults():
    a, b = make_params([np.ones(2), np.ones(3)], "cpu")
    opt = AdamW([a], lr=0.01)
    opt.add_param_group({"params": b, "weight_decay": 0.0})
    assert opt.param_groups[1]["params"] == [b]
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="twice"):
        opt.add_param_group({"params": [a]})


def test_bad_params():
    (a,) = make_params([np.ones(2)], "cpu")
    with pytest.raises(TypeError, match="iterable"):
        SGD(a)
    with pytest.raises(TypeError, match="iterable"):
        SGD({a})
    with pytest.raises(ValueError, match="empty"):
        SGD([])
    with pytest.raises(TypeError, match="Tensors"):
        SGD([np.ones(2)])
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([a * 2])
    with pytest.raises(ValueError, match="twice"):
        SGD([a, a])
    with pytest.raises(ValueError, match="'params'"):
        SGD([{"lr": 0.1}])


# ---- checkpoints ----------------------------------------------------------------------------
SCHEDULES = [
    lambda opt: StepSchedule(opt, step_size=3, gamma=0.5),
    lambda opt: WarmupCosineSchedule(opt, warmup_steps=3, total_steps=12, min_lr_ratio=0.1),
]


def _grouped(cls, kwargs, init, device):
    params = make_params(init, device)
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.003, "weight_decay": 0.0}]
    return params, cls(groups, **kwargs)


@pytest.mark.parametrize("make_schedule", SCHEDULES, ids=["step", "cosine"])
@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=IDS)
def test_resume_is_bit_identical(device, cls, kwargs, make_schedule):
    """N steps, save, rebuild, load, N more steps == 2N steps straight."""
    rng = np.random.default_rng(4)
    init = random_arrays(rng, dtype=np.float32)
    grad_steps = [random_arrays(rng, dtype=np.float32) for _ in range(10)]

    straight, opt = _grouped(cls, kwargs, init, device)
    run(opt, straight, grad_steps, make_schedule(opt))

    first, opt = _grouped(cls, kwargs, init, device)
    sched = make_schedule(opt)
    run(opt, first, grad_steps[:5], sched)
    saved = to_host({"opt": opt.state_dict(), "sched": sched.state_dict(),
                     "params": [p.data for p in first]})   # what a checkpoint file would hold

    resumed, opt = _grouped(cls, kwargs, saved["params"], device)
    sched = make_schedule(opt)
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    run(opt, resumed, grad_steps[5:], sched)
    for a, b in zip(host(straight), host(resumed)):
        assert np.array_equal(a, b)
    for p in resumed:  # loaded state lives on the parameter's device
        assert all(backend.device_of(v) == p.device
                   for v in opt.state[p].values() if backend.is_array(v))


def test_state_dict_layout():
    params = make_params([np.ones((2, 2)), np.ones(2)], "cpu")
    opt = Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}])
    run(opt, params, [[np.ones((2, 2)), None]])
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert set(sd["state"]) == {0} and sd["state"][0]["step"] == 1
    assert isinstance(sd["state"][0]["exp_avg"], np.ndarray)


def test_loaded_state_is_a_copy():
    params = make_params([np.ones(3)], "cpu")
    opt = SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, [[np.ones(3)]])
    saved = opt.state_dict()
    buffer = saved["state"][0]["momentum_buffer"].copy()
    opt.load_state_dict(saved)
    run(opt, params, [[np.ones(3)]])
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], buffer)


def test_load_state_dict_errors():
    params = make_params([np.ones((2, 2)), np.ones(2)], "cpu")
    opt = Adam(params)
    run(opt, params, [[np.ones((2, 2)), np.ones(2)]])
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="groups"):
        Adam([{"params": [params[0]]}, {"params": [params[1]]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"\[2\].*\[1\]"):
        Adam(params[:1]).load_state_dict(sd)
    swapped = make_params([np.ones(2), np.ones((2, 2))], "cpu")
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*shape \(2,\)"):
        Adam(swapped).load_state_dict(sd)


def test_repr_lists_groups():
    opt = SGD([mt.zeros(2, requires_grad=True)], lr=0.1)
    assert "group 0: 1 tensors" in repr(opt) and "lr=0.1" in repr(opt)


@pytest.mark.parametrize(("saver", "loader"), [(AdamW, SGD), (SGD, AdamW), (Adam, AdamW),
                                               (AdamW, Adam)])
def test_state_of_another_optimizer_class_is_refused(saver, loader):
    """AdamW's state in SGD would silently change lr and weight decay; SGD's in AdamW would fail
    later with KeyError 'exp_avg'. Both classes are named at load time, nothing is changed."""
    params = make_params([np.ones((2, 2)), np.ones(2)], "cpu")
    source = saver(params, lr=0.5, weight_decay=0.3)
    run(source, params, [[np.ones((2, 2)), np.ones(2)]])
    target = loader(params, lr=0.01)
    run(target, params, [[np.ones((2, 2)), np.ones(2)]])
    before = to_host(target.state_dict())
    with pytest.raises(ValueError, match=f"saved by {saver.__name__}, not by {loader.__name__}"):
        target.load_state_dict(to_host(source.state_dict()))
    after = to_host(target.state_dict())
    assert after["param_groups"] == before["param_groups"]
    assert {i: set(s) for i, s in after["state"].items()} == {i: set(s) for i, s in
                                                              before["state"].items()}
    legacy = {k: v for k, v in to_host(source.state_dict()).items() if k != "optimizer"}
    if {saver, loader} != {Adam, AdamW}:  # a state without the class name: its keys tell
        with pytest.raises(ValueError, match=f"another optimizer class than {loader.__name__}"):
            target.load_state_dict(legacy)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9)])
def test_the_state_follows_a_model_moved_between_steps(make):
    """Steps on cpu, strict, cpu give the same weights as three steps on cpu."""
    import minitx.functional as F
    from minitx import nn
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((4, 3)).astype(np.float32),
             rng.standard_normal((4, 2)).astype(np.float32)) for _ in range(3)]
    weights = []
    for devices in (("cpu",) * 3, ("cpu", "strict", "cpu")):
        model = nn.Linear(3, 2, generator=np.random.default_rng(1))
        opt = make(list(model.parameters()))
        for device, (x, y) in zip(devices, data):
            model.to(device)
            F.mse_loss(model(mt.tensor(x, device=device)), mt.tensor(y, device=device)).backward()
            opt.step()
            opt.zero_grad()
        model.to("cpu")
        weights.append(model.weight.numpy())
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-6)


def test_the_state_follows_a_model_cast_between_steps():
    import minitx.functional as F
    from minitx import nn
    model = nn.Linear(3, 2, generator=np.random.default_rng(1))
    opt = Adam(list(model.parameters()), lr=0.1)
    for dtype in ("float32", "float64"):
        model.astype(np.dtype(dtype))
        x, y = mt.randn(4, 3).astype(dtype), mt.randn(4, 2).astype(dtype)
        F.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    moments = [v for s in opt.state.values() for v in s.values() if hasattr(v, "dtype")]
    assert moments and all(m.dtype == np.float64 for m in moments)


@pytest.mark.parametrize("saved_step", [np.array(2 ** 24), np.array(2.0 ** 24, np.float32)],
                         ids=["int64", "float32"])
@pytest.mark.parametrize("shape", [(), (3,)], ids=["0-d", "1-d"])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_a_step_count_saved_as_a_0d_array_loads_as_an_int(cls, shape, saved_step):
    """A checkpoint converted from PyTorch holds each step count as a 0-d array. Cast to a
    0-d parameter's float32 it would stop counting at 2**24 (2**24 + 1 rounds back down)."""
    params = make_params([np.ones(shape, np.float32)], "cpu")
    opt = cls(params, lr=0.01)
    run(opt, params, [[np.ones(shape, np.float32)]])
    saved = to_host(opt.state_dict())
    saved["state"][0]["step"] = saved_step
    opt.load_state_dict(saved)
    assert type(opt.state[params[0]]["step"]) is int
    run(opt, params, [[np.ones(shape, np.float32)]])
    assert opt.state[params[0]]["step"] == 2 ** 24 + 1


def test_a_step_count_that_is_no_whole_number_is_refused():
    params = make_params([np.ones(3)], "cpu")
    opt = Adam(params)
    run(opt, params, [[np.ones(3)]])
    saved = to_host(opt.state_dict())
    saved["state"][0]["step"] = np.array(2.5)
    with pytest.raises(ValueError, match=r"state\[0\]\['step'\] must be a whole number"):
        opt.load_state_dict(saved)
    assert opt.state[params[0]]["step"] == 1


@pytest.mark.parametrize(("cls", "kwargs", "words"), [
    (SGD, {"lr": None}, "SGD: lr must be a number >= 0, got None"),
    (SGD, {"lr": "0.1"}, "SGD: lr must be a number >= 0, got '0.1'"),
    (SGD, {"momentum": None}, "SGD: momentum must be a number >= 0, got None"),
    (Adam, {"lr": None}, "Adam: lr must be a number >= 0, got None"),
    (AdamW, {"lr": "0.1"}, "AdamW: lr must be a number >= 0, got '0.1'"),
    (AdamW, {"eps": None}, "AdamW: eps must be a number >= 0, got None"),
    (Adam, {"betas": 0.9}, "Adam: betas must be a pair (β1, β2) of numbers in [0, 1), got 0.9"),
    (AdamW, {"betas": (0.9, None)},
     "AdamW: betas must be a pair (β1, β2) of numbers in [0, 1), got (0.9, None)"),
])
def test_a_setting_that_is_no_number_is_named(cls, kwargs, words):
    """The optimizer, the argument, what it got and what it expects: not a bare TypeError from
    tuple() or '>='. The same check runs for a parameter group's own settings."""
    params = make_params([np.ones(2)], "cpu")
    with pytest.raises(TypeError, match=re.escape(words)):
        cls(params, **kwargs)
    with pytest.raises(TypeError, match=re.escape(words)):
        cls([{"params": params, **kwargs}])


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_betas_must_be_two_numbers(cls):
    params = make_params([np.ones(2)], "cpu")
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__}: betas must be a pair")):
        cls(params, betas=(0.9, 0.99, 0.999))
    assert cls(params, betas=[0.8, 0.9]).param_groups[0]["betas"] == (0.8, 0.9)


def test_a_saved_setting_that_is_no_number_changes_nothing():
    params = make_params([np.ones(2)], "cpu")
    opt = SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, [[np.ones(2)]])
    saved = to_host(opt.state_dict())
    saved["param_groups"][0]["lr"] = None
    saved["state"][0]["momentum_buffer"] = np.zeros(2)
    with pytest.raises(TypeError, match="SGD: lr must be a number >= 0, got None"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt.state[params[0]]["momentum_buffer"], np.ones(2))
