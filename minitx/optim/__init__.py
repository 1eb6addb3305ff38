"""Optimizers, gradient clipping and learning-rate schedules (``import minitx.optim as optim``).

The names follow ``torch.optim``, and so do the update rules and defaults, so that a training
loop reads the same in both::

    opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=100, total_steps=5000)
    for batch in loader:
        loss = loss_fn(model, batch)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        opt.zero_grad()
        sched.step()

Files: ``optimizer.py`` (base class: parameter groups, state, state_dict), ``sgd.py``, ``adam.py``
(Kingma & Ba 2015, Algorithm 1), ``adamw.py`` (Loshchilov & Hutter 2019, Algorithm 2),
``clip_grad.py`` and ``schedules.py``.
"""

from minitx.optim.adam import Adam
from minitx.optim.adamw import AdamW
from minitx.optim.clip_grad import clip_grad_norm_, clip_grad_value_
from minitx.optim.optimizer import Optimizer
from minitx.optim.schedules import (
    InverseSqrtSchedule,
    LambdaSchedule,
    LRScheduler,
    StepSchedule,
    WarmupCosineSchedule,
)
from minitx.optim.sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "InverseSqrtSchedule", "LRScheduler", "LambdaSchedule", "Optimizer",
    "StepSchedule", "WarmupCosineSchedule", "clip_grad_norm_", "clip_grad_value_",
]
