"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, ICLR 2019, arXiv:1711.05101)."""

from minitx.optim.adam import Adam


class AdamW(Adam):
    """AdamW, Algorithm 2 of Loshchilov & Hutter (2019), as in ``torch.optim.AdamW``.

    Adam's L2 term goes through the adaptive denominator, so weights with large gradients are
    barely decayed. AdamW takes the decay out of the gradient and applies it to θ directly.
    With step size α, schedule multiplier η_t, decay rates β1, β2, ε and decay rate λ::

        (1) t ← t + 1
        (2) g_t ← ∇f_t(θ_{t−1})                      no λ·θ here: that is the point
        (3) m_t ← β1·m_{t−1} + (1 − β1)·g_t
        (4) v_t ← β2·v_{t−1} + (1 − β2)·g_t²
        (5) m̂_t ← m_t / (1 − β1^t)
        (6) v̂_t ← v_t / (1 − β2^t)
        (7) θ_t ← θ_{t−1} − η_t·(α·m̂_t / (√v̂_t + ε) + λ·θ_{t−1})

    PyTorch, and this class, have one learning rate γ = η_t·α (a schedule changes ``lr``), and
    compute (7) as θ ← θ·(1 − γ·λ), then θ ← θ − γ·m̂_t / (√v̂_t + ε); both parts use θ_{t−1}.

    DEVIATION (PyTorch's, kept for compatibility): the decay is multiplied by γ = η_t·α, the
    paper's by η_t alone, so PyTorch's λ equals the paper's λ divided by α. PyTorch's default
    λ = 0.01 with α = 1e-3 is a paper λ of 1e-5. ``amsgrad`` is as in :class:`Adam`.

    Args:
        params: Tensors, or dicts of parameter groups; put biases and norm gains in a group with
            ``"weight_decay": 0.0`` (see :class:`Optimizer`).
        lr: γ (default 1e-3).
        betas: (β1, β2) (default (0.9, 0.999)).
        eps: ε (default 1e-8).
        weight_decay: λ, decoupled (default 0.01, as in PyTorch).
        amsgrad: use the AMSGrad maximum (default False).

    >>> import minitx as mt
    >>> w = mt.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = mt.zeros(2).data               # no gradient signal: only the decay acts
    >>> opt.step()
    >>> w.data                                  # θ·(1 − γ·λ) = θ·0.95
    array([ 0.95, -1.9 ], dtype=float32)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)  # only λ's default differs

    def weight_decay(self, p, lr, wd):
        """(2) and the decay half of (7): θ ← θ·(1 − γλ) directly, and g_t = ∇f untouched, so
        the decay never passes through the moments. The rest of the step is Adam's."""
        if wd != 0:
            p.data *= 1.0 - lr * wd
        return p.grad
