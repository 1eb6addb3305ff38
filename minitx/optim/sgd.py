"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from minitx import backend
from minitx.autograd import no_grad
from minitx.optim.optimizer import Optimizer, check_nonnegative


class SGD(Optimizer):
    """Stochastic gradient descent, in PyTorch's formulation (``torch.optim.SGD``).

    With learning rate γ, momentum μ, dampening τ, weight decay λ and gradient ∇f(θ_{t−1}),
    one step is::

        (1) g_t = ∇f(θ_{t−1}) + λ·θ_{t−1}                L2 weight decay, added to the gradient
        (2) b_t = g_t                                    if t = 1      (momentum buffer)
            b_t = μ·b_{t−1} + (1 − τ)·g_t                otherwise
        (3) g_t = g_t + μ·b_t                            Nesterov
            g_t = b_t                                    classical momentum
        (4) θ_t = θ_{t−1} − γ·g_t

    Lines (2)-(3) are skipped when μ = 0 (plain SGD); no state is kept then.

    How this differs from the textbook (Sutskever et al., ICML 2013, Eq. 1-4), which keeps a
    *velocity* that already contains the learning rate::

        classical:  v_t = μ·v_{t−1} − γ·∇f(θ_{t−1}),             θ_t = θ_{t−1} + v_t
        Nesterov:   v_t = μ·v_{t−1} − γ·∇f(θ_{t−1} + μ·v_{t−1}),  θ_t = θ_{t−1} + v_t

    * PyTorch accumulates raw gradients, b = −v/γ, and multiplies by γ afterwards. With a
      constant γ the two are the same; when a schedule changes γ, PyTorch rescales the whole
      history at once, the textbook only the new gradients.
    * PyTorch's Nesterov step is the rewrite of Bengio et al. 2013 ("Advances in optimizing
      recurrent networks", Eq. 7): it evaluates the gradient at the stored parameters and
      steps with g + μ·b, so the stored θ is the textbook's look-ahead point θ + μ·v.
    * The first step copies the gradient into the buffer (no dampening), and the weight decay
      is an L2 term in the gradient, so it also flows through the momentum.

    Args:
        params: Tensors, or dicts of parameter groups (see :class:`Optimizer`).
        lr: γ, the learning rate (PyTorch's default 1e-3).
        momentum: μ (default 0: plain SGD).
        dampening: τ, damps the new gradient's share of the buffer (default 0).
        weight_decay: λ, L2 penalty coefficient (default 0).
        nesterov: use Nesterov momentum; needs μ > 0 and τ = 0.

    >>> import minitx as mt
    >>> w = mt.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data
    array([0.8, 1.6], dtype=float32)
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov}
        super().__init__(params, defaults)

    def check_group(self, group):
        super().check_group(group)  # lr
        for key in ("momentum", "dampening", "weight_decay"):
            check_nonnegative("SGD", key, group[key])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def step(self, closure=None):
        """Take one SGD step on every parameter that has a gradient (others are skipped).

        Args:
            closure: optional function that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                lr, wd = float(group["lr"]), float(group["weight_decay"])
                mu, tau = float(group["momentum"]), float(group["dampening"])
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad                   # never modified in place: it may be shared
                    if wd != 0:
                        g = g + wd * p.data                                       # (1)
                    if mu != 0:
                        state = self.state_of(p)
                        b = state.get("momentum_buffer")
                        if b is None:  # xp.copy: an array even where g + λθ of 0-d
                            # arrays gave NumPy a scalar (which b *= μ would not update)
                            b = state["momentum_buffer"] = backend.xp_of(p.data).copy(g)  # (2)
                        else:
                            b *= mu                                               # (2)
                            b += g if tau == 0 else (1.0 - tau) * g
                        g = g + mu * b if group["nesterov"] else b                # (3)
                    p.data -= lr * g                                              # (4)
        return loss
