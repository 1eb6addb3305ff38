"""Cases for the convolution, pooling and batch-norm ops (see cases.py).

The references loop over output pixels, the plainest reading of each formula, unlike the ops,
which loop over kernel offsets.
"""

import numpy as np
from hypothesis import strategies as st

import minitx.functional as F
from minitx import ops
from minitx.testing import arrays, separated_arrays
from tests.ops.cases_nn import CASES, Case, case

__all__ = ["CASES"]


def np_windows(x, k, s, p, fill=0.0):
    """Yield (row, col, window) for every output pixel of a k × k window sliding with stride s
    over x (B, C, H, W) padded by p."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    OH, OW = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    for r in range(OH):
        for c in range(OW):
            yield r, c, xp[:, :, r * s:r * s + k, c * s:c * s + k], (OH, OW)


def np_conv2d(x, w, b=None, s=1, p=0):
    out = None
    for r, c, win, (OH, OW) in np_windows(x, w.shape[2], s, p):
        if out is None:
            out = np.zeros((x.shape[0], w.shape[0], OH, OW))
        out[:, :, r, c] = np.einsum("bcij,ocij->bo", win, w)
    return out if b is None else out + b[None, :, None, None]


def np_pool(x, k, s, p, reduce, fill):
    out = None
    for r, c, win, (OH, OW) in np_windows(x, k, s, p, fill):
        if out is None:
            out = np.zeros(x.shape[:2] + (OH, OW))
        out[:, :, r, c] = reduce(win, axis=(2, 3))
    return out


def np_batch_norm(x, w=None, b=None, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    keep = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w.reshape(keep)) + (0 if b is None else b.reshape(keep))


def _geometry(draw):
    """(kernel, stride, padding, input side): every output at least 1 × 1."""
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    side = draw(st.integers(max(k - 2 * p, 1), 5))
    return k, s, p, side


@case("Conv2d")
def _conv2d(draw):
    k, s, p, side = _geometry(draw)
    B, C, O = (draw(st.integers(1, 3)) for _ in range(3))
    x = draw(arrays((B, C, side, draw(st.integers(max(k - 2 * p, 1), 5)))))
    w = draw(arrays((O, C, k, k)))
    if draw(st.booleans()):
        return Case([x, w], lambda a, b: F.conv2d(a, b, stride=s, padding=p),
                    lambda a, b: np_conv2d(a, b, None, s, p))
    return Case([x, w, draw(arrays((O,)))], lambda a, b, c: F.conv2d(a, b, c, s, p),
                lambda a, b, c: np_conv2d(a, b, c, s, p))


@case("AvgPool2d")
def _avg_pool2d(draw):
    k, s, p, side = _geometry(draw)
    x = draw(arrays((draw(st.integers(1, 2)), draw(st.integers(1, 3)), side, side)))
    return Case([x], lambda t: F.avg_pool2d(t, k, s, p),
                lambda a: np_pool(a, k, s, p, np.mean, 0.0))


@case("MaxPool2d")
def _max_pool2d(draw):
    k, s, p, side = _geometry(draw)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), side, side)
    x = draw(separated_arrays(shape, offset=0.03, spacing=0.05, bound=80))  # no ties
    return Case([x], lambda t: F.max_pool2d(t, k, s, p),
                lambda a: np_pool(a, k, s, p, np.max, -np.inf))


@case("BatchNorm")
def _batch_norm(draw):
    C = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    B = draw(st.integers(2 if not spatial else 1, 4))
    shape = (B, C) + spatial
    if B * int(np.prod(spatial)) < 2:
        shape = (2, C) + spatial
    x = draw(separated_arrays(shape, offset=0.03))  # distinct values: σ well above 0
    if draw(st.booleans()):
        return Case([x], ops.batch_norm, np_batch_norm)
    w, b = draw(arrays((C,), 0.5, 2.0)), draw(arrays((C,)))
    return Case([x, w, b], ops.batch_norm, np_batch_norm)
