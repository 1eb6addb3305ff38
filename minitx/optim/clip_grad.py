"""Gradient clipping: by the global norm of all gradients, or elementwise by value.

Clipping by the global norm (Pascanu et al., ICML 2013, "On the difficulty of training recurrent
neural networks", Algorithm 1) rescales all gradients together, so the update keeps its direction
and only its length is capped. Both functions work in place on ``p.grad``: the engine gives every
leaf a gradient array that nothing else holds (it copies the first contribution when that
shares memory with another ``.grad``, is read-only or is a slice of a larger array).
"""

import math

from minitx import backend
from minitx.optim.optimizer import check_nonnegative, is_number
from minitx.tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their joint norm is at most `max_norm`.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm is the p-norm of the vector of all
    gradients concatenated, ‖g‖_p = (Σ_i |g_i|^p)^(1/p) (the max of |g_i| for p = inf), and every
    gradient is multiplied by min(1, max_norm / (‖g‖_p + 1e-6)). Parameters without a gradient
    are skipped. The sums run on each gradient's device; one number per device comes back.
    Float16 gradients are summed in float32: Σ g² of a 512x512 float16 gradient passes 65504,
    float16's largest number; the scaling itself stays in place, in the gradient's dtype.

    Args:
        parameters: a Tensor or an iterable of Tensors.
        max_norm: the largest norm allowed after clipping (>= 0).
        norm_type: p > 0, or ``float("inf")`` (default 2.0).
        error_if_nonfinite: raise RuntimeError when the total norm is NaN or inf (default False:
            the gradients are then scaled by NaN, as in PyTorch).

    Returns:
        The total norm of the gradients *before* clipping, as a Python float.

    >>> import numpy as np
    >>> import minitx as mt
    >>> w = mt.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = np.array([3.0, 4.0], dtype=np.float32)
    >>> clip_grad_norm_([w], max_norm=1.0)
    5.0
    >>> np.round(w.grad, 4)
    array([0.6, 0.8], dtype=float32)
    """
    if not is_number(norm_type):
        raise TypeError(f"clip_grad_norm_: norm_type must be a number > 0 or float('inf'), got "
                        f"{norm_type!r} (a {type(norm_type).__name__})")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    check_nonnegative("clip_grad_norm_", "max_norm", max_norm)
    grads = [p.grad for p in _as_list(parameters, "clip_grad_norm_") if p.grad is not None]
    if not grads:
        return 0.0
    per_device = {}  # device -> Σ|g|^p (or max |g|) over that device's gradients, a 0-d array
    for g in grads:
        xp = backend.xp_of(g)
        if norm_type == math.inf:
            part = xp.abs(g).max()     # exact in any dtype: no sum, no overflow
        else:
            if g.dtype.itemsize < 4:   # float16 sums overflow at 65504: add up in float32
                g = g.astype(xp.float32)
            if norm_type == 2.0:
                flat = g.reshape(-1)
                part = xp.dot(flat, flat)  # Σ g²: one pass, no temporary array
            else:
                part = (xp.abs(g) ** norm_type).sum()
        device = backend.device_of(g)
        if device not in per_device:
            per_device[device] = part
        elif norm_type == math.inf:
            per_device[device] = xp.maximum(per_device[device], part)
        else:
            per_device[device] = per_device[device] + part
    parts = [float(part) for part in per_device.values()]  # one device-to-host copy per device
    if norm_type == math.inf:
        total_norm = max(parts)
    else:
        total_norm = math.fsum(parts) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is "
                           f"{total_norm}; pass error_if_nonfinite=False to scale anyway")
    clip_coef = max_norm / (total_norm + 1e-6)  # 1e-6 as in PyTorch: no division by zero
    if not clip_coef >= 1.0:                    # NaN norms fall through, as in PyTorch
        for g in grads:
            g *= clip_coef                      # a Python float keeps the gradient's dtype
    return total_norm


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value], in place.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        clip_value: the largest magnitude allowed (>= 0).

    >>> import numpy as np
    >>> import minitx as mt
    >>> w = mt.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = np.array([-3.0, 0.5], dtype=np.float32)
    >>> clip_grad_value_(w, 1.0)
    >>> w.grad
    array([-1. ,  0.5], dtype=float32)
    """
    check_nonnegative("clip_grad_value_", "clip_value", clip_value)
    clip_value = float(clip_value)
    for p in _as_list(parameters, "clip_grad_value_"):
        if p.grad is not None:
            backend.xp_of(p.grad).clip(p.grad, -clip_value, clip_value, out=p.grad)


def _as_list(parameters, name):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}: expected Tensors, got {type(p).__name__}")
    return params
