"""Element-wise kernels: GELU and its backward pass, dropout's mask and product, Adam's update."""

import math
import sys

import numpy as np

from minitx import backend
from minitx.kernels.runtime import blockwise, loops_for

# --------------------------------------------------------------------------------------------
# GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415)
# --------------------------------------------------------------------------------------------

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the tanh approximation's cubic coefficient
GELU_SATURATED = 40.0  # |x| beyond which Φ(x) is 0 or 1, φ(x) and 1 − tanh²u are 0 in float64
_SIGMOID_SLOPE = 1.702  # Hendrycks & Gimpel's fit: Φ(x) ≈ σ(1.702x)
SIGMOID_SATURATED = 440.0  # |x| beyond which σ(1.702x) is 0 or 1 in float64 (e^−749 = 0)
FORMS = {"none": 0, "tanh": 1, "sigmoid": 2}  # GELU's exact form and its two approximations


def gelu(x, approximate="none"):
    """y = x Φ(x), Φ(x) = ½(1 + erf(x/√2)); with ``approximate="tanh"``, y = ½x(1 + tanh u),
    u = √(2/π)(x + 0.044715x³); with ``approximate="sigmoid"``, y = x σ(1.702x).

    The formulas run on x clipped to ±40 (±440 for the sigmoid form), where they are saturated,
    and y on max(x, −40): y(±∞) are the limits 0 and ∞, never ∞ · 0. Trick: one compiled pass;
    in NumPy, erf's ~30 passes run over one cache-sized block at a time.
    """
    return _gelu_pass(x, None, approximate)


def gelu_backward(x, gy, approximate="none"):
    """dL/dx = gy · ∂y/∂x with ∂y/∂x = Φ(x) + x φ(x), φ(x) = e^(−x²/2)/√(2π); with
    ``approximate="tanh"``, ∂y/∂x = ½(1 + tanh u) + ½x(1 − tanh²u) · √(2/π)(1 + 3·0.044715x²);
    with ``approximate="sigmoid"``, ∂y/∂x = s + 1.702x · s(1 − s), s = σ(1.702x).

    At ±∞ the derivative is its limit (0 and 1). Trick: as in :func:`gelu`, with the product
    taken while the block is in cache.
    """
    return _gelu_pass(x, gy, approximate)


def _gelu_pass(x, gy, approximate):
    """GELU (gy None) or gy · GELU'(x), compiled or in NumPy blocks."""
    shape, x = x.shape, x.reshape(x.shape or (1,))  # a 0-d array would decay to a scalar
    gy = None if gy is None else gy.reshape(x.shape)
    loops, form = loops_for(x, gy), FORMS[approximate]
    if loops:  # pieces of x (and gy) write into their pieces of out
        arrays = [np.ascontiguousarray(a) for a in (x, gy) if a is not None]
        out = np.empty_like(arrays[0])
        if gy is None:
            blockwise(lambda x, out: loops.gelu(x.reshape(-1), form, out.reshape(-1)), x, out)
        else:
            blockwise(lambda x, gy, out: loops.gelu_backward(
                x.reshape(-1), gy.reshape(-1), form, out.reshape(-1)), *arrays, out)
        return out.reshape(shape)

    block = (_gelu_erf_block, _gelu_tanh_block, _gelu_sigmoid_block)[form]
    if gy is None:
        return blockwise(lambda x: block(x, False), x, cache=True).reshape(shape)
    return blockwise(lambda x, gy: block(x, True) * gy, x, gy, cache=True).reshape(shape)


def _gelu_erf_block(x, derivative):
    """y = x Φ(x), or (`derivative`) ∂y/∂x = Φ(x) + x φ(x), in two buffers the size of x."""
    from minitx.ops.special import erf  # imported here: minitx.ops imports this module

    xp = backend.xp_of(x)
    c = xp.clip(x, -GELU_SATURATED, GELU_SATURATED)
    cdf = erf(c * (1 / _SQRT_2))  # erf(x/√2), then Φ(x) = ½(1 + erf) in place
    cdf += 1.0
    cdf *= 0.5
    if not derivative:
        cdf *= xp.maximum(x, -GELU_SATURATED)  # x, but never −∞
        return cdf
    dydx = c * c  # φ(x) = exp(−x²/2)/√(2π), then x φ(x) + Φ(x), all in this one buffer
    dydx *= -0.5
    xp.exp(dydx, out=dydx)
    dydx *= 1 / math.sqrt(2 * math.pi)
    dydx *= c
    dydx += cdf
    return dydx


def _gelu_tanh_block(x, derivative):
    """½x(1 + tanh u), or (`derivative`) its derivative, in two buffers the size of x."""
    xp = backend.xp_of(x)
    c = xp.clip(x, -GELU_SATURATED, GELU_SATURATED)
    t = c * c  # x², then u = √(2/π)(x + 0.044715x³) in the same buffer, then tanh u
    t *= _GELU_CUBIC
    t += 1.0
    t *= c
    t *= _SQRT_2_OVER_PI
    xp.tanh(t, out=t)
    if not derivative:
        y = xp.maximum(x, -GELU_SATURATED)  # x, but never −∞
        y *= t + 1.0
        y *= 0.5  # ½x(1 + tanh u)
        return y
    dydx = c * c  # du/dx = √(2/π)(1 + 3 · 0.044715x²)
    dydx *= 3 * _GELU_CUBIC * _SQRT_2_OVER_PI
    dydx += _SQRT_2_OVER_PI
    sech2 = t * t  # 1 − tanh²u
    xp.subtract(1.0, sech2, out=sech2)
    dydx *= sech2
    dydx *= c  # x(1 − tanh²u) du/dx
    dydx += t  # + tanh u
    dydx += 1.0  # + 1
    dydx *= 0.5  # all halved
    return dydx


def _gelu_sigmoid_block(x, derivative):
    """x σ(1.702x), or (`derivative`) s + 1.702x · s(1 − s), s = σ(1.702x), computed from
    e^(−1.702|x|) ≤ 1, which never overflows (as :class:`minitx.ops.activation.Sigmoid`)."""
    xp = backend.xp_of(x)
    c = xp.clip(x, -SIGMOID_SATURATED, SIGMOID_SATURATED)
    e = xp.exp(-_SIGMOID_SLOPE * abs(c))
    s = xp.where(c >= 0, 1 / (1 + e), e / (1 + e))  # σ(1.702x)
    if not derivative:
        s *= xp.maximum(x, -SIGMOID_SATURATED)  # x, but never −∞
        return s
    return s + _SIGMOID_SLOPE * c * s * (1 - s)


# --------------------------------------------------------------------------------------------
# Dropout and the optimizer's update
# --------------------------------------------------------------------------------------------

_MASK_MIN = 1 << 14  # elements below which reading the generator's state costs more than it saves


def dropout_keep(rng, shape, p):
    """Dropout's mask: keep = U ≥ p per element, U ~ Uniform[0, 1) in float32, True with
    probability 1 − p (Srivastava et al. 2014); exactly ``rng.random(shape, np.float32) >= p``.

    Trick: NumPy makes each float32 U from one 32-bit draw u as U = ⌊u / 2⁸⌋ · 2⁻²⁴, so
    U ≥ p ⇔ u ≥ 2⁸ · t, t the smallest integer with t · 2⁻²⁴ ≥ p. For NumPy's default bit
    generator (PCG64) the 32-bit draws are the two halves of its 64-bit outputs, low half first
    (and one half kept for the next call when their number is odd): the mask is then one
    comparison of the raw outputs, without the conversion to float32 (2.7 -> 1.7 ms for 2M
    elements; the mask, and so a seeded run, is bit for bit the same). Other generators and
    small masks: ``rng.random``. The generator's state is read and written in three steps, not
    under its lock: threads that draw masks at the same time should each have their own
    generator (as NumPy advises for any concurrent use).
    """
    n = math.prod(shape)
    bits = rng.bit_generator if isinstance(rng, np.random.Generator) else None
    if type(bits) is not np.random.PCG64 or sys.byteorder != "little" or n < max(_MASK_MIN, 1):
        return rng.random(shape, dtype=np.float32) >= p
    t = _first_kept(p)  # keep ⇔ u ≥ 2⁸ t; with t = 2²⁴ nothing is kept
    keep = np.empty(n, bool)

    def compare(u, out):  # the 32-bit draws u into their booleans `out`
        if t < 1 << 24:
            np.greater_equal(u, np.uint32(t << 8), out=out)
        else:
            out[...] = False

    state, start = bits.state, 0
    if state["has_uint32"]:  # a half kept from an earlier call comes first
        compare(np.uint32(state["uinteger"]), keep[:1])
        state["has_uint32"], start = 0, 1
        bits.state = state
    pairs = (n - start) // 2
    compare(bits.random_raw(pairs).view(np.uint32), keep[start:start + 2 * pairs])
    if (n - start) % 2:  # one draw left: the low half of a new output; keep the high half
        last = int(bits.random_raw())
        compare(np.uint32(last & 0xFFFFFFFF), keep[-1:])
        state = bits.state
        state["has_uint32"], state["uinteger"] = 1, last >> 32
        bits.state = state
    return keep.reshape(shape)


def _first_kept(p):
    """The smallest integer t in [0, 2²⁴] with t · 2⁻²⁴ ≥ p, compared as NumPy compares a
    float32 U with p (2²⁴: no U is ≥ p). It lies within one of ⌈p · 2²⁴⌉, as p differs from
    its float32 rounding by at most half a unit in the last place, 2⁻²⁵ below 1."""
    if p != p:  # NaN: no U is ≥ p
        return 1 << 24
    c = min(max(math.ceil(float(p) * 2 ** 24), 0), 1 << 24)
    ks = np.arange(max(c - 2, 0), min(c + 3, 1 << 24), dtype=np.float32)  # exact in float32
    kept = (ks * np.float32(2.0 ** -24)) >= p
    return int(ks[kept][0]) if kept.any() else min(c + 3, 1 << 24)


def masked_scale(x, keep, scale):
    """x · keep · scale for a boolean `keep` (dropout's mask, Srivastava et al. 2014).

    Trick: the mask is booleans, a quarter of a float mask's bytes; one compiled pass, or in
    NumPy one product and one scaling in place; pieces on threads.
    """
    loops = loops_for(x) if isinstance(keep, np.ndarray) else None
    if loops:  # pieces write into their pieces of y
        x, keep = np.ascontiguousarray(x), np.ascontiguousarray(keep)
        y = np.empty_like(x)
        blockwise(lambda x, keep, y: loops.masked_scale(
            x.reshape(-1), keep.reshape(-1), x.dtype.type(scale), y.reshape(-1)), x, keep, y)
        return y

    def product(x, keep):
        y = x * keep
        y *= scale
        return y

    return blockwise(product, x, keep)


def fill_where_not(x, allowed, value):
    """x where `allowed` (broadcast to x's shape) is True, `value` elsewhere: attention's scores
    with −∞ at the positions a mask forbids.

    Trick: written into x's own buffer (``copyto`` with ``where``), one pass that stores only
    the forbidden entries, where ``where(allowed, x, value)`` reads both and writes a new array
    (3.3 -> 1.2 ms for causal scores of shape (16, 4, 256, 256)). So x must be a fresh array
    that nothing else reads: its old values are gone.
    """
    backend.xp_of(x).copyto(x, value, where=~allowed)
    return x


def relu_backward(g, y):
    """dL/dx = g · [y > 0] for y = max(x, 0), as NumPy's product g · [y > 0]: a NaN or ±∞
    gradient where y ≤ 0 gives NaN, not 0.

    Trick: one compiled pass, without the boolean array [y > 0] (NumPy: two passes).
    """
    loops = loops_for(g, y)
    if loops:  # pieces write into their pieces of gx
        g, y = np.ascontiguousarray(g), np.ascontiguousarray(y)
        gx = np.empty_like(g)
        blockwise(lambda g, y, gx: loops.relu_backward(g.reshape(-1), y.reshape(-1),
                                                       gx.reshape(-1)), g, y, gx)
        return gx
    return g * (y > 0)


def adam_update(param, grad, m, v, *, beta1, beta2, step_size, bias2_sqrt, eps, v_max=None):
    """One Adam update in place (Kingma & Ba 2015, Algorithm 1):

        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²,
        θ ← θ − step_size · m / (√v / bias2_sqrt + ε)

    with step_size = α/(1 − β1^t) and bias2_sqrt = √(1 − β2^t). With `v_max` (AMSGrad),
    v_max ← max(v_max, v) is used in place of v in the denominator.

    Trick: one compiled pass (float64 arithmetic, float32 storage); in NumPy, one scratch
    array per block holds (1 − β1)·g, (1 − β2)·g², the denominator and the step in turn; pieces
    on threads for large parameters.
    """
    loops = loops_for(param, grad, m, v, v_max)
    if loops and all(a.flags.c_contiguous for a in (param, m, v, v_max) if a is not None):
        grad = np.ascontiguousarray(grad)

        def update(param, grad, m, v, *v_max):
            loops.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                              v_max[0].reshape(-1) if v_max else None, beta1, beta2,
                              step_size, bias2_sqrt, eps)
    else:
        def update(param, grad, m, v, *v_max):
            xp = backend.xp_of(param)
            work = xp.multiply(grad, 1.0 - beta1, out=xp.empty_like(grad))  # scratch (0-d too)
            m *= beta1
            m += work
            xp.multiply(grad, grad, out=work)
            work *= 1.0 - beta2
            v *= beta2
            v += work
            if v_max:
                v = xp.maximum(v_max[0], v, out=v_max[0])
            denom = xp.sqrt(v, out=work)
            denom /= bias2_sqrt
            denom += eps
            step = xp.divide(m, denom, out=work)
            step *= step_size
            param -= step

    blockwise(update, param, grad, m, v, *(() if v_max is None else (v_max,)))
