"""Adam: adaptive moment estimation (Kingma & Ba, ICLR 2015, arXiv:1412.6980)."""

import math
from collections.abc import Iterable

from minitx import backend, kernels
from minitx.autograd import no_grad
from minitx.optim.optimizer import Optimizer, check_nonnegative, is_number


class Adam(Optimizer):
    """Adam, Algorithm 1 of Kingma & Ba (2015), with PyTorch's semantics (``torch.optim.Adam``).

    With step size α (``lr``), decay rates β1, β2, ε and weight decay λ, each step is::

        (1) t ← t + 1
        (2) g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}           L2 weight decay (PyTorch; not in the paper)
        (3) m_t ← β1·m_{t−1} + (1 − β1)·g_t         biased first moment estimate
        (4) v_t ← β2·v_{t−1} + (1 − β2)·g_t²        biased second raw moment estimate
        (5) m̂_t ← m_t / (1 − β1^t)                 bias-corrected first moment
        (6) v̂_t ← v_t / (1 − β2^t)                 bias-corrected second moment
        (7) θ_t ← θ_{t−1} − α·m̂_t / (√v̂_t + ε)

    with m_0 = v_0 = 0 and t = 0 per parameter. ε is added *after* the square root of the
    bias-corrected v̂_t, as in the algorithm box and in PyTorch (the paper's §2 "more efficient"
    variant puts an ε̂ next to the uncorrected √v_t instead, which is a different ε). The code
    folds (5) into the step size α / (1 − β1^t), as PyTorch does.

    ``weight_decay`` here is an L2 penalty: it passes through the moments, so parameters with
    large v̂ are decayed less. That is why AdamW exists (:class:`minitx.optim.AdamW`).

    ``amsgrad=True`` is AMSGrad (Reddi et al., ICLR 2018) in PyTorch's form: between (4) and
    (6) it keeps v_max ← max(v_max, v_t) and uses v_max in place of v_t in (6).

    Args:
        params: Tensors, or dicts of parameter groups (see :class:`Optimizer`).
        lr: α (default 1e-3).
        betas: (β1, β2) (default (0.9, 0.999)).
        eps: ε (default 1e-8).
        weight_decay: λ of the L2 term in (2) (default 0).
        amsgrad: use the AMSGrad maximum (default False).

    >>> import minitx as mt
    >>> w = mt.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()      # the first Adam step moves every coordinate by about lr
    >>> w.data.round(4)
    array([ 0.9, -1.9], dtype=float32)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        if isinstance(betas, Iterable) and not isinstance(betas, str):
            betas = tuple(betas)  # anything else (a bare 0.9) is for check_group to name
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad}
        super().__init__(params, defaults)

    def check_group(self, group):
        super().check_group(group)  # lr
        _check_adam_group(type(self).__name__, group)

    def step(self, closure=None):
        """Take one Adam step on every parameter that has a gradient (others are skipped).

        Args:
            closure: optional function that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
                beta1, beta2 = (float(b) for b in group["betas"])
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    xp = backend.xp_of(p.data)
                    state = self.state_of(p)
                    if not state:                                    # m_0 = v_0 = 0, t = 0
                        state["step"] = 0
                        state["exp_avg"] = xp.zeros_like(p.data)
                        state["exp_avg_sq"] = xp.zeros_like(p.data)
                        if group["amsgrad"]:
                            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                    state["step"] += 1                                                  # (1)
                    t = state["step"]
                    g = self.weight_decay(p, lr, wd)                                    # (2)
                    kernels.adam_update(                                          # (3)-(7)
                        p.data, g, state["exp_avg"], state["exp_avg_sq"], beta1=beta1,
                        beta2=beta2, step_size=lr / (1.0 - beta1 ** t),  # α/(1 − β1^t): (5)
                        bias2_sqrt=math.sqrt(1.0 - beta2 ** t), eps=eps,  # √(1 − β2^t): (6)
                        v_max=state.get("max_exp_avg_sq"))
        return loss

    def weight_decay(self, p, lr, wd):
        """(2): g_t = ∇f + λθ. The L2 term joins the gradient, so it goes through the moments
        (the one line :class:`minitx.optim.AdamW` changes)."""
        return p.grad if wd == 0 else p.grad + wd * p.data


def _check_adam_group(name, group):
    """Reject hyper-parameters outside the ranges of Algorithm 1 (shared with AdamW)."""
    for key in ("eps", "weight_decay"):
        check_nonnegative(name, key, group[key])
    betas = group["betas"]
    expected = "a pair (β1, β2) of numbers in [0, 1)"
    if not (isinstance(betas, (tuple, list)) and all(is_number(b) for b in betas)):
        raise TypeError(f"{name}: betas must be {expected}, got {betas!r}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{name}: betas must be {expected}, got {betas}")
