"""The float32 kernels as compiled loops (numba), one pass over a row where NumPy makes many.

NumPy runs a formula one operation at a time, each a pass over the whole array: layer norm's
forward and backward make a dozen passes over memory, softmax five. PyTorch's CPU kernels make
one or two. The loops here are the same formulas written element by element; numba compiles
them (through LLVM) into machine code that keeps a row in cache and registers and uses the
CPU's vector instructions. Each loop's formula is the docstring of its namesake in
:mod:`minitx.kernels`, which decides when to call it and keeps the NumPy spelling that the
tests compare it with.

They run on float32 NumPy arrays (the training dtype; a strided input is first copied into a
contiguous one) when numba is installed (``pip install minitx[fast]``); everything else
(float64 for gradient checks, CuPy, the strict stand-in) takes the NumPy spelling.
``MINITX_COMPILED=0`` or :func:`minitx.kernels.set_compiled` turns them off.

Three details make the loops vectorize:

- **fastmath without nnan/ninf**: sums may be reassociated (a vector of partial sums), but
  ±∞ and NaN keep their IEEE meaning, so masked rows and overflow behave as in NumPy. numba
  compiles a helper with its caller's flags, so a formula that must not be reassociated stays
  in NumPy (cross-entropy's mixing with ε, where ∞ + ∞ must not become ∞ − ∞);
- **our own exp** (:func:`_exp`): LLVM vectorizes a loop only when every call in it has a
  vector version, and the C library's exp has none. Ours is plain arithmetic, with a relative
  error below 3e-7;
- **row maxima as integer maxima** (:func:`_row_max`): LLVM does not vectorize a float max
  that must keep NaN's meaning, but it does an integer one, and float32 bit patterns can be
  mapped to integers in the same order.

Everything runs in float32, as NumPy does for float32 arrays; a row's sums are vector lanes of
partial sums added at the end (so rounding grows like NumPy's pairwise sums, not like one long
chain). Two exceptions use float64: the column sums of layer norm's dL/dw and dL/db, over all
rows, and Adam's update, whose scalars (β1, β2, the step size) are float64, so each element is
worked out in float64 and rounded to float32 when it is stored. Loops
with ``nogil=True`` release Python's lock, so the thread pool of
:func:`minitx.kernels.blockwise` can run pieces of them side by side.

numba caches the machine code next to this file and recompiles when the file changes; keep a
loop's helpers in this file, as a change to a helper elsewhere would not be seen.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# Reassociation and contraction (a·b + c in one instruction); no "nnan"/"ninf": see above.
FAST = {"reassoc", "contract", "nsz"}
loop = numba.njit(nogil=True, fastmath=FAST, error_model="numpy", cache=True)  # a loop
inline = numba.njit(inline="always", fastmath=FAST, error_model="numpy", cache=True)

F = np.float32  # constants typed float32 keep float32 arithmetic float32
_LOG2E = F(1.4426950408889634)
# ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with 9 significant bits, so n · _LN2_HI is exact for n < 2¹⁵
# (Cody & Waite's range reduction): r = x + n ln 2 keeps its accuracy.
_LN2_HI, _LN2_LO = F(0.693359375), F(0.6931471805599453 - 0.693359375)
_EXP_MIN = F(-87.33)  # e^x below this is under float32's smallest normal number: 0 here
_INV_SQRT2, _INV_SQRT_2PI = F(1 / math.sqrt(2)), F(1 / math.sqrt(2 * math.pi))
_SQRT_2_OVER_PI, _GELU_CUBIC = F(math.sqrt(2 / math.pi)), F(0.044715)
GELU_SATURATED = F(40.0)  # as in minitx.kernels
SIGMOID_SATURATED, _SIGMOID_SLOPE = F(440.0), F(1.702)  # as in minitx.kernels
_ONE, _HALF, _ZERO, _NEG_INF = F(1.0), F(0.5), F(0.0), F(-np.inf)


# --------------------------------------------------------------------------------------------
# exp and erf in arithmetic that vectorizes
# --------------------------------------------------------------------------------------------

# 1/k! for e^r = 1 + r + r²/2! + ... + r⁷/7!, Taylor's series, by Horner's rule (one
# multiply-add per term; the nested form 1 + r(1 + r/2(1 + r/3(...))) costs a multiply more)
_K2, _K3, _K4, _K5, _K6, _K7 = (F(1 / math.factorial(k)) for k in range(2, 8))


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bit pattern is the int32 `bits` (a bitcast, no instruction)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@inline
def _exp(x):
    """e^x for float32 x ≤ 0, within a few float32 ulps; 0 below −87.33, NaN stays NaN.

    e^x = 2^(−n) · e^r with n = round(−x / ln 2) and r = x + n · ln 2 in [−ln 2/2, ln 2/2];
    e^r is its Taylor series to r⁷/7! (remainder below 5e-9), and 2^(−n), 0 ≤ n ≤ 126, the
    float32 with exponent bits 127 − n and a zero mantissa.
    """
    t = min(max(x, _EXP_MIN), _ZERO)
    n = np.floor(t * -_LOG2E + _HALF)
    r = (t + n * _LN2_HI) + n * _LN2_LO
    p = _ONE + r * (_ONE + r * (_K2 + r * (_K3 + r * (_K4 + r * (_K5 + r * (_K6 + r * _K7))))))
    p *= _float32_from_bits(np.int32((127 - np.int32(n)) << 23))
    p = _ZERO if x < _EXP_MIN else p
    return p if x == x else x


# erf(z) ≈ z · P(z²) / Q(z²) for 0 ≤ z ≤ 4, P and Q of degree 5 with Q(0) = 1: a rational fit
# made for these loops (weighted least squares on the linearized error z·P − erf·Q, the weights
# moved toward the minimax fit by Lawson's rule), with |error| below 3.5e-8 in exact arithmetic
# for these float32 coefficients, under half a float32 ulp of 1. One division and ten
# multiply-adds, where the erfc fit of minitx.ops.special also needs an exp. erf(4) = 1 −
# 1.5e-8 rounds to 1 in float32, so z is clipped to 4.
_P0, _P1, _P2, _P3, _P4, _P5 = (F(c) for c in (
    1.128378977, 0.1962384752, 0.05346582758, 0.004003102307, 2.880136470e-4, 1.974722172e-6))
_Q1, _Q2, _Q3, _Q4, _Q5 = (F(c) for c in (
    0.5072429878, 0.1164718388, 0.01544337519, 0.001216197265, 3.747825622e-5))
_ERF_SATURATED = F(4.0)


@inline
def _erf(x):
    """erf(x) = sign(x) · min(z · P(z²) / Q(z²), 1), z = min(|x|, 4): within 4e-7 (a few
    float32 ulps near ±1, where the roundings of the quotient add up), NaN stays NaN."""
    z = min(abs(x), _ERF_SATURATED) if x == x else x
    u = z * z
    p = _P0 + u * (_P1 + u * (_P2 + u * (_P3 + u * (_P4 + u * _P5))))
    q = _ONE + u * (_Q1 + u * (_Q2 + u * (_Q3 + u * (_Q4 + u * _Q5))))
    e = min(z * p / q, _ONE)
    return -e if x < _ZERO else e


# --------------------------------------------------------------------------------------------
# Element-wise kernels over flat arrays
# --------------------------------------------------------------------------------------------

@inline
def _gelu_erf(x):
    """(y, ∂y/∂x) at one x: y = x Φ(x), ∂y/∂x = Φ(x) + x φ(x), on x clipped to ±40 (y on
    max(x, −40))."""
    c = min(max(x, -GELU_SATURATED), GELU_SATURATED)
    cdf = _HALF * (_ONE + _erf(c * _INV_SQRT2))
    return max(x, -GELU_SATURATED) * cdf, cdf + c * _exp(-_HALF * c * c) * _INV_SQRT_2PI


@inline
def _gelu_tanh(x):
    """(y, ∂y/∂x) at one x for y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³). tanh u =
    sign(u)(1 − e)/(1 + e) with e = e^(−2|u|) ≤ 1, which never overflows."""
    c = min(max(x, -GELU_SATURATED), GELU_SATURATED)
    u = _SQRT_2_OVER_PI * (c + _GELU_CUBIC * c * c * c)
    e = _exp(F(-2.0) * abs(u))
    th = (_ONE - e) / (_ONE + e)
    th = -th if u < _ZERO else th
    du = _SQRT_2_OVER_PI * (_ONE + F(3.0) * _GELU_CUBIC * c * c)
    return (_HALF * max(x, -GELU_SATURATED) * (_ONE + th),
            _HALF * (_ONE + th) + _HALF * c * (_ONE - th * th) * du)


@inline
def _gelu_sigmoid(x):
    """(y, ∂y/∂x) at one x for y = x σ(1.702x): ∂y/∂x = s + 1.702x · s(1 − s), s = σ(1.702x),
    from e = e^(−1.702|x|) ≤ 1: s = 1/(1 + e) for x ≥ 0, e/(1 + e) below."""
    c = min(max(x, -SIGMOID_SATURATED), SIGMOID_SATURATED)
    e = _exp(-_SIGMOID_SLOPE * abs(c))
    s = (_ONE if c >= _ZERO else e) / (_ONE + e)
    return max(x, -SIGMOID_SATURATED) * s, s + _SIGMOID_SLOPE * c * s * (_ONE - s)


@inline
def _gelu_form(x, form):
    """(y, ∂y/∂x) of GELU's form 0 (exact), 1 (tanh) or 2 (sigmoid) at one x."""
    if form == 0:
        return _gelu_erf(x)
    return _gelu_tanh(x) if form == 1 else _gelu_sigmoid(x)


@loop
def gelu(x, form, y):
    """y = GELU(x), flat arrays; `form` 0, 1, 2: exact, tanh, sigmoid (minitx.kernels.FORMS)."""
    for i in range(x.size):
        y[i] = _gelu_form(x[i], form)[0]


@loop
def gelu_backward(x, gy, form, gx):
    """gx = gy · ∂y/∂x, flat arrays."""
    for i in range(x.size):
        gx[i] = gy[i] * _gelu_form(x[i], form)[1]


@loop
def masked_scale(x, keep, scale, y):
    """y = x · keep · scale, keep boolean, in NumPy's order (so ∞ · 0 is NaN, as there)."""
    for i in range(x.size):
        y[i] = x[i] * F(keep[i]) * scale


@loop
def relu_backward(g, y, gx):
    """gx = g · [y > 0], flat arrays, in NumPy's order (∞ · 0 and NaN · 0 are NaN)."""
    for i in range(g.size):
        gx[i] = g[i] * (_ONE if y[i] > _ZERO else _ZERO)


@loop
def adam_update(param, grad, m, v, v_max, beta1, beta2, step_size, bias2_sqrt, eps):
    """m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², (v_max ← max(v_max, v)),
    θ ← θ − step_size · m / (√v / bias2_sqrt + ε), all in place."""
    for i in range(param.size):
        g = grad[i]
        mi = beta1 * m[i] + (_ONE - beta1) * g
        vi = beta2 * v[i] + (_ONE - beta2) * g * g
        m[i], v[i] = mi, vi
        if v_max is not None:
            vi = max(v_max[i], vi)
            v_max[i] = vi
        param[i] -= step_size * mi / (math.sqrt(vi) / bias2_sqrt + eps)


# --------------------------------------------------------------------------------------------
# Row-wise kernels over (rows, n) arrays
# --------------------------------------------------------------------------------------------

@intrinsic
def _bits_of_float32(typingctx, x):
    """The int32 IEEE 754 bit pattern of the float32 `x` (a bitcast, no instruction)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@inline
def _ordered(bits):
    """The float32 bit pattern `bits` as an integer that orders like the float, and back (the
    map is its own inverse). A float's sign bit is its pattern's sign bit, and among floats of
    one sign the magnitudes order like the remaining 31 bits; so a pattern with the sign bit
    clear stays, and one with it set has those 31 bits flipped: a larger magnitude then gives a
    smaller integer. (bits >> 31 is 0 or −1, all ones; numba computes in int64, which LLVM
    vectorizes faster here than int32.)"""
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@inline
def _row_max(x, i):
    """Row i's maximum, −∞ for an empty row, as the maximum of the ordered integers: one
    vector integer max per 16 floats. NaN: a NaN with the sign bit clear orders above +∞ and
    is returned, one with it set orders below −∞ and is passed over; either way the callers'
    sums Σ e^(x − m) are NaN, and so is every output of that row, as in NumPy."""
    k = _ordered(_bits_of_float32(_NEG_INF))
    for j in range(x.shape[1]):
        k = max(k, _ordered(_bits_of_float32(x[i, j])))
    return _float32_from_bits(np.int32(_ordered(k)))


@loop
def softmax(x, y):
    """y = e^(x − m) / Σ e^(x − m) per row; an all −∞ row gives zeros, a row with +∞ or NaN
    NaN throughout (e^(∞ − ∞) is NaN, and so is the sum that divides every entry)."""
    for i in range(x.shape[0]):
        m = _row_max(x, i)
        if not m < np.inf:  # +∞, or a NaN without the sign bit (one with it is passed over
            for j in range(x.shape[1]):  # by the maximum and makes the sum NaN below)
                y[i, j] = np.nan
            continue
        m = m if m > -np.inf else _ZERO  # an all −∞ row: shift by 0
        s = _ZERO
        for j in range(x.shape[1]):
            e = _exp(x[i, j] - m)
            y[i, j] = e
            s += e
        inv = _ONE / s if not s <= _ZERO else _ONE  # s = 0: all −∞; NaN stays NaN
        for j in range(x.shape[1]):
            y[i, j] *= inv


@loop
def softmax_backward(g, y, gx):
    """gx = y · (g − Σⱼ gⱼ yⱼ) per row (gx may be g itself)."""
    for i in range(g.shape[0]):
        d = _ZERO
        for j in range(g.shape[1]):
            d += g[i, j] * y[i, j]
        for j in range(g.shape[1]):
            gx[i, j] = y[i, j] * (g[i, j] - d)


@loop
def layer_norm(x, w, b, eps, center, y, mean, rstd):
    """y = x̂ w + b per row (w, b None: left out), x̂ = (x − μ) r, r = 1/√(σ² + ε), σ² from
    the centred values, as NumPy's var computes it; the rows' μ and r into `mean` and `rstd`.
    Not `center` (RMSNorm): μ = 0, so σ² = mean(x²)."""
    n = x.shape[1]
    for i in range(x.shape[0]):
        s = _ZERO
        if center:
            for j in range(n):
                s += x[i, j]
        mu = s / F(n)
        ss = _ZERO
        for j in range(n):
            c = x[i, j] - mu
            ss += c * c
        r = _ONE / np.sqrt(ss / F(n) + F(eps))
        mean[i], rstd[i] = mu, r
        for j in range(n):
            h = (x[i, j] - mu) * r
            h = h * w[j] if w is not None else h
            y[i, j] = h + b[j] if b is not None else h


@loop
def layer_norm_backward(gy, x, mean, rstd, w, center, gx, gw, gb):
    """gx = r (ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = gy w, x̂ = (x − μ) r (not `center`: without
    the mean ĝ term); gw += Σ_rows gy x̂ and gb += Σ_rows gy (float64; None: skipped)."""
    n = gy.shape[1]
    for i in range(gy.shape[0]):
        mu, r = mean[i], rstd[i]
        s, dot = _ZERO, _ZERO
        for j in range(n):
            h = (x[i, j] - mu) * r
            gh = gy[i, j] * w[j] if w is not None else gy[i, j]
            s += gh
            dot += gh * h
            if gw is not None:
                gw[j] += gy[i, j] * h
            if gb is not None:
                gb[j] += gy[i, j]
        mean_g, mean_gh = s / F(n) if center else _ZERO, dot / F(n)
        for j in range(n):
            h = (x[i, j] - mu) * r
            gh = gy[i, j] * w[j] if w is not None else gy[i, j]
            gx[i, j] = r * (gh - mean_g - h * mean_gh)


@loop
def cross_entropy(z, target, nll, mean_nll, lse):
    """Per row: lse = log Σ e^z = m + log Σ e^(z − m), m the row maximum; −log p_t = lse − z_t
    into `nll`, and −mean_c log p_c = lse − mean(z) into `mean_nll` (None: skipped)."""
    C = z.shape[1]
    for i in range(z.shape[0]):
        m = _row_max(z, i)
        s, total = _ZERO, _ZERO
        for j in range(C):
            s += _exp(z[i, j] - m)
            total += z[i, j]
        lse[i] = m + np.log(s)
        nll[i] = lse[i] - z[i, target[i]]
        if mean_nll is not None:
            mean_nll[i] = lse[i] - total / C


@loop
def cross_entropy_backward(z, lse, target, weight, smoothing, gz):
    """gz = (p − q) · weight per row, p = e^(z − lse), q = (1 − ε) onehot(t) + ε/C."""
    C = z.shape[1]
    for i in range(z.shape[0]):
        wi, li = weight[i], lse[i]
        off = F(smoothing / C) * wi
        for j in range(C):
            gz[i, j] = _exp(z[i, j] - li) * wi - off
        gz[i, target[i]] -= F(1.0 - smoothing) * wi
