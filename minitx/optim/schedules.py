"""Learning-rate schedules: each sets every group's lr to its base lr times a factor of the step.

A schedule multiplies each parameter group's *base* lr (the group's ``lr`` when the schedule was
built, remembered as ``group["initial_lr"]``, as PyTorch does) by a factor f(t), so that groups
with different lrs keep their ratio. As with ``torch.optim.lr_scheduler.LambdaLR``:

* ``last_step`` = t counts the calls of :meth:`LRScheduler.step`, i.e. the optimizer updates
  already taken; it is 0 right after construction;
* the lr that the next ``optimizer.step()`` uses is ``base_lr · f(t)``; building the schedule
  already sets f(0), and :meth:`LRScheduler.step` (called after ``optimizer.step()``) moves to
  f(t + 1).

The training loop is therefore::

    for batch in loader:
        loss = loss_fn(model(batch)); loss.backward()
        opt.step(); opt.zero_grad()
        sched.step()

The update numbered k = 1, 2, 3, ... (the k-th call of ``opt.step()``) runs with f(k − 1).
"""

import copy
import math

import numpy as np

from minitx.optim.optimizer import Optimizer, is_number


class LRScheduler:
    """Base class: sets ``group["lr"] = base_lr · lr_factor(last_step)`` for every group.

    Subclasses implement :meth:`lr_factor`. Build the optimizer, then the schedule, and to
    resume load both state dicts (in either order).

    Args:
        optimizer: the :class:`~minitx.optim.Optimizer` whose groups' lrs are set.
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a minitx Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        # setdefault: a schedule built after optimizer.load_state_dict() keeps the saved base lrs
        self.base_lrs = [group.setdefault("initial_lr", group["lr"])
                         for group in optimizer.param_groups]
        self.last_step = 0
        self._set_lrs()

    def lr_factor(self, step):
        """Return f(step), the multiplier of the base lr after `step` updates."""
        raise NotImplementedError(f"{type(self).__name__} does not implement lr_factor()")

    def get_lr(self):
        """Return the lr of each group for the next update: base_lr · f(last_step)."""
        factor = self.lr_factor(self.last_step)
        return [base_lr * factor for base_lr in self.base_lrs]

    def get_last_lr(self):
        """Return the lr each group holds now (what the next ``optimizer.step()`` uses)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self):
        """Advance one update and set every group's lr; call it after ``optimizer.step()``."""
        self.last_step += 1
        self._set_lrs()

    def _set_lrs(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} parameter "
                             f"groups but the schedule was built for {len(self.base_lrs)}; "
                             f"build the schedule after add_param_group()")
        for group, lr in zip(groups, self.get_lr()):
            group["lr"] = lr

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self):
        """Return ``{"schedule": class name, "last_step": int, "base_lrs": [float]}`` plus the
        schedule's settings.

        Functions (the ``fn`` of :class:`LambdaSchedule`) are not saved: rebuild the schedule
        with the same function, then load.
        """
        return {"schedule": type(self).__name__, "last_step": self.last_step,
                "base_lrs": list(self.base_lrs), **self._settings()}

    def _settings(self):
        """The subclass's own settings (step_size, gamma, ...), without functions."""
        return {k: v for k, v in vars(self).items()
                if k not in ("optimizer", "base_lrs", "last_step") and not callable(v)}

    def load_state_dict(self, state_dict):
        """Restore ``last_step``, the base lrs and the settings, and set the groups' lrs.

        Everything is checked first (:meth:`check_state_dict`): a state that does not fit raises
        ValueError and changes neither the schedule nor the optimizer's lrs.
        """
        self.check_state_dict(state_dict)  # raises before anything below changes
        for key, value in _saved_settings(state_dict).items():
            setattr(self, key, value)
        self.last_step = int(state_dict["last_step"])
        self.base_lrs = list(state_dict["base_lrs"])
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base_lr
        self._set_lrs()

    def check_state_dict(self, state_dict):
        """Raise ValueError if :meth:`load_state_dict` would refuse `state_dict`; change nothing.

        The state must come from the same class (a state saved before the class was recorded
        loads if it names no setting this schedule lacks), hold one base lr per parameter group
        and give lrs that the schedule's formula can compute.
        """
        name, cls = f"{type(self).__name__}.load_state_dict", type(self).__name__
        saved_class = state_dict.get("schedule")
        if saved_class is not None and saved_class != cls:
            raise ValueError(f"{name}: the state was saved by {saved_class}, not by {cls}; "
                             f"build a {saved_class} to resume it")
        base_lrs = list(state_dict["base_lrs"])
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{name}: the state has {len(base_lrs)} base lrs, the optimizer "
                             f"has {len(self.optimizer.param_groups)} parameter groups")
        settings = _saved_settings(state_dict)
        unknown = sorted(set(settings) - set(self._settings()))
        if unknown:
            raise ValueError(f"{name}: unknown settings {unknown} for this schedule, which has "
                             f"{sorted(self._settings())}")
        last_step = state_dict["last_step"]
        if not (is_number(last_step) and float(last_step).is_integer() and last_step >= 0):
            raise ValueError(f"{name}: last_step must be a whole number >= 0, got {last_step!r}")
        trial = copy.copy(self)  # the formula on the saved settings, on a copy of the schedule
        vars(trial).update(settings, last_step=int(last_step), base_lrs=base_lrs)
        try:
            lrs = trial.get_lr()
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"{name}: the saved settings {settings} and base lrs {base_lrs} "
                             f"give no lr ({type(exc).__name__}: {exc})") from exc
        if not all(is_number(lr) for lr in lrs):
            raise ValueError(f"{name}: the saved settings {settings} and base lrs {base_lrs} "
                             f"give lrs {lrs!r}, not numbers")

    def __repr__(self):
        return f"{type(self).__name__}(last_step={self.last_step}, lr={self.get_last_lr()})"


def _saved_settings(state_dict):
    """The schedule-specific settings in a state: all but the class, the step and the base lrs."""
    return {k: v for k, v in state_dict.items() if k not in ("schedule", "last_step", "base_lrs")}


class LambdaSchedule(LRScheduler):
    """lr = base_lr · fn(t), with t the number of updates taken (PyTorch's ``LambdaLR``).

    >>> from minitx.optim import SGD
    >>> import minitx as mt
    >>> opt = SGD([mt.zeros(2, requires_grad=True)], lr=0.5)
    >>> sched = LambdaSchedule(opt, lambda t: 1 / (t + 1))
    >>> sched.step(); sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer, fn):
        if not callable(fn):
            raise TypeError(f"LambdaSchedule: fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        super().__init__(optimizer)

    def lr_factor(self, step):
        return self.fn(step)


class StepSchedule(LRScheduler):
    """lr = base_lr · γ^⌊t / step_size⌋: decay by γ every `step_size` updates (``StepLR``).

    >>> from minitx.optim import SGD
    >>> import minitx as mt
    >>> opt = SGD([mt.zeros(2, requires_grad=True)], lr=1.0)
    >>> sched = StepSchedule(opt, step_size=2, gamma=0.1)
    >>> [round(sched.lr_factor(t), 6) for t in range(5)]
    [1.0, 1.0, 0.1, 0.1, 0.01]
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepSchedule: step_size must be a positive integer, got "
                             f"{step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_factor(self, step):
        return self.gamma ** (step // self.step_size)


class WarmupCosineSchedule(LRScheduler):
    """Linear warm-up from 0, then a cosine decay to ``min_lr_ratio`` of the base lr.

    With w = `warmup_steps`, T = `total_steps` and r = `min_lr_ratio`::

        f(t) = t / w                                              for t < w
        f(t) = r + (1 − r) · ½ · (1 + cos(π · (t − w) / (T − w)))  for w ≤ t ≤ T
        f(t) = r                                                  for t > T

    The cosine part is one cycle of SGDR (Loshchilov & Hutter, ICLR 2017, Eq. 5) without
    restarts, η_min = r·η_max; the warm-up is linear (Goyal et al. 2017, §2.2). This is the
    formula of Hugging Face's ``get_cosine_with_min_lr_schedule_with_warmup`` for t ≤ T (past T
    that one climbs the cosine again, where f stays at r): in particular the first update (t = 0)
    has lr 0 when w > 0, and f(w) = 1 is the peak.

    >>> from minitx.optim import SGD
    >>> import minitx as mt
    >>> opt = SGD([mt.zeros(2, requires_grad=True)], lr=1.0)
    >>> sched = WarmupCosineSchedule(opt, warmup_steps=2, total_steps=6)
    >>> [round(sched.lr_factor(t), 6) for t in range(8)]
    [0.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0]
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr_ratio=0.0):
        for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"WarmupCosineSchedule: {name} must be an int (steps), got "
                                f"{value!r}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"WarmupCosineSchedule: need 0 <= warmup_steps < total_steps, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"WarmupCosineSchedule: min_lr_ratio must be in [0, 1], got "
                             f"{min_lr_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer)

    def lr_factor(self, step):
        if step < self.warmup_steps:
            return step / self.warmup_steps                                    # linear warm-up
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))                    # SGDR Eq. 5
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


class InverseSqrtSchedule(LRScheduler):
    """The Transformer's schedule, Vaswani et al. 2017 §5.3, Eq. 3::

        lrate(k) = d_model^−0.5 · min(k^−0.5, k · warmup_steps^−1.5)

    where k = 1, 2, 3, ... numbers the updates: the k-th call of ``optimizer.step()`` uses
    lrate(k) (so ``lr_factor(t) = lrate(t + 1)``, t updates having been taken; k = 0 would give
    lr 0 and waste an update). The lr rises linearly for the first `warmup_steps` updates, peaks
    at k = warmup_steps with d_model^−0.5 · warmup_steps^−0.5, then decays as k^−0.5.

    The formula *multiplies* each group's lr: build the optimizer with ``lr=1.0`` to get the
    paper's lrate exactly (with Adam, β1 = 0.9, β2 = 0.98, ε = 1e-9 in the paper), or with
    another lr to scale the whole curve.

    >>> from minitx.optim import Adam
    >>> import minitx as mt
    >>> opt = Adam([mt.zeros(2, requires_grad=True)], lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    >>> sched = InverseSqrtSchedule(opt, d_model=512, warmup_steps=4000)
    >>> round(sched.lrate(4000), 8)       # the peak, 512^-0.5 · 4000^-0.5
    0.00069877
    """

    def __init__(self, optimizer, d_model, warmup_steps=4000):
        if not d_model > 0:
            raise ValueError(f"InverseSqrtSchedule: d_model must be > 0, got {d_model}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 1:
            raise ValueError(f"InverseSqrtSchedule: warmup_steps must be a positive integer, "
                             f"got {warmup_steps}")
        self.d_model = d_model
        self.warmup_steps = int(warmup_steps)
        super().__init__(optimizer)

    def lrate(self, k):
        """Return Eq. 3 at update number k >= 1."""
        return self.d_model ** -0.5 * min(k ** -0.5, k * self.warmup_steps ** -1.5)    # Eq. 3

    def lr_factor(self, step):
        return self.lrate(step + 1)  # `step` updates taken, so the next one is number step + 1
