"""Where speed lives: the element-wise and row-wise passes whose fast spelling hides the formula.

An op's ``forward`` and ``backward`` (in :mod:`minitx.ops`) read like the mathematics. Where
the plain NumPy spelling of a formula is slow (several passes over memory, temporaries the size
of the activations, one busy core), the op calls a kernel here by name, whose docstring gives
the formula and the trick. ``tests/test_kernels.py`` checks each kernel against the formula,
``tests/test_compiled_kernels.py`` each compiled loop against the NumPy spelling.

Each kernel has two spellings of its formula:

- **compiled loops** (:mod:`minitx.kernels.compiled`, when numba is installed: ``pip install
  minitx[fast]``): the formula element by element, one pass over a row where NumPy makes many.
  They run on float32 NumPy arrays, the training case (a strided view is first copied into a
  contiguous array);
- **NumPy passes** for everything else (float64 gradient checks, CuPy, the strict stand-in,
  no numba), with three tricks that do not change the result:

  - *blocks* (:func:`blockwise`): a long chain of element-wise passes (GELU) runs over one
    cache-sized block after another, so every pass after the first reads cache, not memory;
  - *threads* (:func:`thread_count`, opt-in): NumPy's ufuncs (and the compiled loops) release
    the GIL, so one large pass can be shared among threads, bit for bit as on one thread;
  - *in place*: a fresh buffer is reused for the formula's next step, not a new temporary.

On a GPU (CuPy) and the strict stand-in, kernels make whole-array calls (one launch per pass).
The host allocator setting the examples use is :func:`keep_host_memory`
(:mod:`minitx.kernels.memory`).
"""

import numpy as np

# The public names, from the modules by topic:
from minitx.kernels.elementwise import (
    adam_update,
    dropout_keep,
    fill_where_not,
    gelu,
    gelu_backward,
    masked_scale,
    relu_backward,
)
from minitx.kernels.memory import keep_host_memory
from minitx.kernels.products import (
    fold,
    matmul,
    matmul_like,
    matmul_summed,
    sum_leading,
    sum_rows_by_index,
)
from minitx.kernels.rows import (
    cross_entropy,
    cross_entropy_backward,
    layer_norm,
    layer_norm_backward,
    row_dot,
    softmax,
    softmax_backward,
)
from minitx.kernels.runtime import (
    blockwise,
    compiled_enabled,
    set_compiled,
    set_thread_count,
    thread_count,
)

__all__ = ["adam_update", "blockwise", "compiled_enabled", "cross_entropy",
           "cross_entropy_backward", "dropout_keep", "fill_where_not", "fold", "gelu",
           "gelu_backward", "keep_host_memory", "layer_norm", "layer_norm_backward", "masked_scale",
           "matmul", "matmul_like", "matmul_summed", "relu_backward", "row_dot", "set_compiled",
           "set_thread_count", "softmax", "softmax_backward", "sum_leading", "sum_rows_by_index",
           "thread_count", "warm_up"]


def warm_up():
    """Compile the loops now rather than on their first call (numba compiles a loop for each
    combination of argument types; a few seconds, or a fraction of one from numba's cache).
    A benchmark calls this before it measures; nothing else needs to. False without them."""
    if not compiled_enabled():
        return False
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    w, target, weight = x[0].copy(), np.arange(3) % 4, np.ones(3, np.float32)
    for approximate in ("none", "tanh", "sigmoid"):
        gelu_backward(x, gelu(x, approximate), approximate)
    softmax_backward(x, softmax(x))
    softmax_backward(x.copy(), x, overwrite=True)
    masked_scale(x, x > 0, 2.0)
    relu_backward(x, x)
    for affine, center in ((True, True), (False, True), (True, False)):
        y, mean, rstd = layer_norm(x, w if affine else None, w if affine and center else None,
                                   1e-5, center)
        layer_norm_backward(x, x, mean, rstd, w if affine else None, affine, center)
    for smoothing in (0.0, 0.1):
        loss, lse = cross_entropy(x, target, smoothing)
        cross_entropy_backward(x, lse, target, weight, smoothing)
    for v_max in (None, np.ones_like(x)):
        adam_update(x.copy(), x, x.copy(), np.ones_like(x), beta1=0.9, beta2=0.999,
                    step_size=0.1, bias2_sqrt=0.5, eps=1e-8, v_max=v_max)
    return True
