"""Learning-rate schedules: Eq. 3 of Vaswani et al., warm-up + cosine, steps, checkpoints."""

import math

import numpy as np
import pytest

import minitx as mt
from minitx.optim import (
    SGD,
    Adam,
    InverseSqrtSchedule,
    LambdaSchedule,
    StepSchedule,
    WarmupCosineSchedule,
)


def make_opt(lrs=(1.0,), cls=SGD):
    return cls([{"params": [mt.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs])


def lrs_seen_by_updates(opt, sched, n):
    """The lr of each group at each of n optimizer updates (k = 1..n), in a training loop."""
    seen = []
    for _ in range(n):
        seen.append([g["lr"] for g in opt.param_groups])  # what opt.step() would read now
        opt.step()
        sched.step()
    return np.array(seen)


def paper_lrate(step_num, d_model, warmup_steps):
    """Vaswani et al. 2017, Eq. 3, as printed."""
    return d_model ** -0.5 * min(step_num ** -0.5, step_num * warmup_steps ** -1.5)


def test_inverse_sqrt_is_eq3_with_lr_one():
    opt = make_opt(cls=Adam)
    sched = InverseSqrtSchedule(opt, d_model=512, warmup_steps=40)
    seen = lrs_seen_by_updates(opt, sched, 200)[:, 0]
    for k in (1, 2, 10, 39, 40, 41, 100, 200):  # the k-th update uses lrate(k)
        assert seen[k - 1] == pytest.approx(paper_lrate(k, 512, 40), rel=1e-15)
    assert seen.argmax() + 1 == 40                               # the peak at step = warmup
    assert seen.max() == pytest.approx(512 ** -0.5 * 40 ** -0.5)
    np.testing.assert_allclose(seen[:40], seen[0] * np.arange(1, 41))  # linear warm-up
    np.testing.assert_allclose(seen[40:], (512 * np.arange(41, 201)) ** -0.5)  # then k^-0.5


def test_inverse_sqrt_paper_values():
    """Base model: d_model = 512, warmup_steps = 4000 (§5.3)."""
    sched = InverseSqrtSchedule(make_opt(), d_model=512, warmup_steps=4000)
    assert sched.lrate(4000) == pytest.approx(6.98771242e-4, rel=1e-8)
    assert sched.lrate(1) == pytest.approx(512 ** -0.5 * 4000 ** -1.5)
    assert sched.lrate(16000) == pytest.approx(sched.lrate(4000) / 2)


def test_schedules_keep_group_ratios():
    opt = make_opt(lrs=(1.0, 0.1))
    sched = InverseSqrtSchedule(opt, d_model=64, warmup_steps=5)
    seen = lrs_seen_by_updates(opt, sched, 12)
    np.testing.assert_allclose(seen[:, 1], 0.1 * seen[:, 0], rtol=1e-15)


def test_warmup_cosine_endpoints_and_monotonicity():
    opt = make_opt(lrs=(2.0,))
    sched = WarmupCosineSchedule(opt, warmup_steps=10, total_steps=50, min_lr_ratio=0.1)
    seen = lrs_seen_by_updates(opt, sched, 60)[:, 0]
    assert seen[0] == 0.0                                   # warm-up starts from 0
    assert seen[10] == pytest.approx(2.0)                   # the peak after warmup_steps updates
    assert seen[50] == pytest.approx(0.2)                   # min_lr_ratio · base lr at the end
    np.testing.assert_allclose(seen[50:], 0.2)              # and stays there
    assert np.all(np.diff(seen[:11]) > 0) and np.all(np.diff(seen[10:51]) < 0)
    t = 30                                                  # SGDR Eq. 5 at the midpoint
    assert seen[t] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))


def test_warmup_cosine_without_warmup():
    sched = WarmupCosineSchedule(make_opt(), warmup_steps=0, total_steps=4)
    assert [sched.lr_factor(t) for t in (0, 2, 4)] == pytest.approx([1.0, 0.5, 0.0])


def test_step_schedule():
    opt = make_opt(lrs=(1.0,))
    seen = lrs_seen_by_updates(opt, StepSchedule(opt, step_size=3, gamma=0.5), 8)[:, 0]
    np.testing.assert_allclose(seen, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    fn = lambda t: 0.9 ** t + 0.01 * t  # noqa: E731
    for make_mine, make_theirs in [
        (lambda o: StepSchedule(o, 4, 0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, 4, 0.3)),
        (lambda o: LambdaSchedule(o, fn), lambda o: torch.optim.lr_scheduler.LambdaLR(o, fn)),
    ]:
        opt = make_opt(lrs=(0.5, 0.02))
        mine = lrs_seen_by_updates(opt, make_mine(opt), 15)
        ref = torch.optim.SGD([{"params": [torch.zeros(2)], "lr": lr} for lr in (0.5, 0.02)])
        theirs = make_theirs(ref)
        seen = []
        for _ in range(15):
            seen.append([g["lr"] for g in ref.param_groups])
            ref.step()
            theirs.step()
        np.testing.assert_allclose(mine, seen, rtol=1e-14)


def test_schedule_state_dict_round_trip():
    opt = make_opt(lrs=(1.0, 0.3))
    sched = WarmupCosineSchedule(opt, warmup_steps=4, total_steps=20, min_lr_ratio=0.05)
    lrs_seen_by_updates(opt, sched, 7)
    saved = sched.state_dict()
    assert saved == {"schedule": "WarmupCosineSchedule", "last_step": 7, "base_lrs": [1.0, 0.3],
                     "warmup_steps": 4, "total_steps": 20, "min_lr_ratio": 0.05}
    fresh_opt = make_opt(lrs=(1.0, 0.3))
    fresh = WarmupCosineSchedule(fresh_opt, warmup_steps=1, total_steps=2)
    fresh.load_state_dict(saved)
    assert fresh.last_step == 7 and fresh.total_steps == 20
    assert fresh.get_last_lr() == sched.get_last_lr()
    np.testing.assert_array_equal(lrs_seen_by_updates(opt, sched, 5),
                                  lrs_seen_by_updates(fresh_opt, fresh, 5))


def test_schedule_built_after_optimizer_load_keeps_base_lrs():
    opt = make_opt(lrs=(0.8,))
    sched = StepSchedule(opt, step_size=2, gamma=0.1)
    lrs_seen_by_updates(opt, sched, 3)                      # lr is now 0.08
    fresh_opt = make_opt(lrs=(0.8,))
    fresh_opt.load_state_dict(opt.state_dict())
    fresh = StepSchedule(fresh_opt, step_size=2, gamma=0.1)  # built after the load
    fresh.load_state_dict(sched.state_dict())
    assert fresh.base_lrs == [0.8] and fresh.get_last_lr() == pytest.approx([0.08])


def test_schedule_errors():
    with pytest.raises(TypeError, match="Optimizer"):
        StepSchedule(object(), step_size=1)
    with pytest.raises(ValueError, match="warmup_steps"):
        InverseSqrtSchedule(make_opt(), d_model=512, warmup_steps=0)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        WarmupCosineSchedule(make_opt(), warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="step_size"):
        StepSchedule(make_opt(), step_size=0)
    opt = make_opt()
    sched = StepSchedule(opt, step_size=2)
    opt.add_param_group({"params": [mt.zeros(1, requires_grad=True)]})
    with pytest.raises(ValueError, match="2 parameter groups"):
        sched.step()
    with pytest.raises(ValueError, match="unknown setting"):
        StepSchedule(make_opt(), 2).load_state_dict({"last_step": 1, "base_lrs": [1.0], "x": 1})


def schedule_settings(sched):
    """Everything load_state_dict may change: the schedule's attributes and the groups' lrs."""
    return ({k: v for k, v in vars(sched).items() if k != "optimizer"},
            [dict(g, params=None) for g in sched.optimizer.param_groups])


def test_state_of_another_schedule_class_is_refused_and_changes_nothing():
    """The state records its class: a LambdaSchedule's (which holds no settings) would
    otherwise load silently into a StepSchedule and leave its step_size and gamma in force."""
    source = LambdaSchedule(make_opt(lrs=(0.5,)), lambda t: 0.9 ** t)
    source.step()
    target = StepSchedule(make_opt(lrs=(1.0,)), step_size=2, gamma=0.1)
    target.step()
    before = schedule_settings(target)
    with pytest.raises(ValueError, match="saved by LambdaSchedule, not by StepSchedule"):
        target.load_state_dict(source.state_dict())
    assert schedule_settings(target) == before


def test_a_state_that_does_not_fit_changes_nothing():
    """An unknown setting is found before any setting changes, also in a state saved before
    the class was recorded; so is a setting the formula cannot use."""
    cosine = WarmupCosineSchedule(make_opt(), warmup_steps=3, total_steps=10)
    cosine.step()
    target = InverseSqrtSchedule(make_opt(), d_model=16, warmup_steps=100)
    before = schedule_settings(target)
    with pytest.raises(ValueError, match="saved by WarmupCosineSchedule, not by Inverse"):
        target.load_state_dict(cosine.state_dict())
    assert schedule_settings(target) == before
    legacy = {k: v for k, v in cosine.state_dict().items() if k != "schedule"}
    with pytest.raises(ValueError, match=r"unknown settings \['min_lr_ratio', 'total_steps'\]"):
        target.load_state_dict(legacy)
    assert schedule_settings(target) == before and target.warmup_steps == 100
    step = StepSchedule(make_opt(), step_size=2)
    before = schedule_settings(step)
    with pytest.raises(ValueError, match="gamma"):
        step.load_state_dict({**step.state_dict(), "gamma": "0.1", "last_step": 5})
    assert schedule_settings(step) == before


def test_a_state_saved_before_the_class_was_recorded_still_loads():
    target = StepSchedule(make_opt(lrs=(1.0,)), step_size=5)
    target.load_state_dict({"last_step": 3, "base_lrs": [2.0], "step_size": 2, "gamma": 0.5})
    assert target.step_size == 2 and target.get_last_lr() == [1.0]  # 2.0 · 0.5^⌊3/2⌋
