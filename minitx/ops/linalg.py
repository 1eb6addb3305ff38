"""Matrix multiplication, the op where nearly all of a Transformer's time goes."""

from minitx import kernels
from minitx.autograd import Function
from minitx.ops.common import broadcast_shapes, register, unbroadcast


@register
class MatMul(Function):
    """C = A @ B with A: (..., n, k), B: (..., k, m), batch axes broadcast.

    dL/dA = dL/dC @ Bᵀ,   dL/dB = Aᵀ @ dL/dC   (then summed over broadcast batch axes).
    A 1-D A is a row (1, k) and a 1-D B a column (k, 1), as in NumPy; the backward makes these
    axes explicit, so one formula covers every case.
    """

    def forward(self, A, B):
        self.A, self.B = A, B
        return kernels.matmul(A, B)

    def backward(self, gC):
        A, B = self.A, self.B
        if B.ndim == 1:
            B, gC = B[:, None], gC[..., None]  # (k,) -> (k, 1), (..., n) -> (..., n, 1)
        if A.ndim == 1:
            A, gC = A[None, :], gC[..., None, :]  # (k,) -> (1, k), (..., m) -> (..., 1, m)
        gA = gB = None
        if self.needs_input_grad[0]:
            gA = kernels.matmul(gC, B.swapaxes(-1, -2))  # (..., n, m) @ (..., m, k)
            gA = unbroadcast(gA, A.shape).reshape(self.A.shape)
        if self.needs_input_grad[1]:
            if B.ndim == 2:  # one B for the whole batch: Σ_batch Aᵀ gC, (k, n) @ (n, m)
                gB = kernels.matmul_summed(A, gC)
            else:
                gB = A.swapaxes(-1, -2) @ gC  # (..., k, n) @ (..., n, m) -> (..., k, m)
            gB = unbroadcast(gB, B.shape).reshape(self.B.shape)
        return gA, gB


@register
class Linear(Function):
    """y = x Wᵀ + b, the affine map of a fully connected layer, as one op (fused).

    x: (..., k), W: (m, k) as in PyTorch, b: (m,) or None. With X the (N, k) fold of x and G
    the (N, m) fold of dL/dy:

        dL/dX = G W,   dL/dW = Gᵀ X,   dL/db = Σ_rows G.

    The composite ``matmul(x, Wᵀ) + b`` (``minitx.composites.linear``) records three nodes and
    keeps the product and the sum as two (N, m) arrays; here the bias is added in place into
    the product and the bias gradient is one column sum.
    """

    def forward(self, x, W, b):
        wants_x, wants_W = self.needs_input_grad[:2]
        self.x = x if wants_W else None  # dL/dW reads x, dL/dx reads W
        self.W = W if wants_x else None
        y = kernels.matmul(x, W.T)  # (..., k) @ (k, m) -> (..., m)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        wants_x, wants_W, wants_b = self.needs_input_grad
        gx = kernels.matmul(gy, self.W) if wants_x else None  # (..., m) @ (m, k) -> (..., k)
        gW = kernels.matmul_summed(gy, self.x) if wants_W else None  # Σ_rows gyᵀ x: (m, k)
        gb = kernels.sum_leading(gy, gy.ndim - 1) if wants_b else None  # Σ_rows gy: (m,)
        return gx, gW, gb


class count_macs:
    """Context manager that counts the multiply-adds of every matmul run inside it.

    A product (..., n, k) @ (..., k, m) costs n·k·m multiply-adds per batch element. Only forward
    matmuls are counted (the backward ones are twice as many, and are not what the formulas of
    papers count).

    >>> import minitx as mt
    >>> with mt.count_macs() as counter:
    ...     _ = mt.ones((2, 3)) @ mt.ones((3, 4))
    >>> counter.macs
    24
    """

    active = []  # the counters now open; a stack, so they may nest

    def __init__(self):
        self.macs = 0

    def __enter__(self):
        count_macs.active.append(self)
        return self

    def __exit__(self, *exc):
        count_macs.active.remove(self)

    @staticmethod
    def record(macs):
        """Add `macs` to every open counter (fused ops report the products they contain)."""
        for counter in count_macs.active:
            counter.macs += macs


def linear(x, weight, bias=None):
    """y = x Wᵀ + b for x (..., in_features), W (out_features, in_features), b (out_features,)."""
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input (..., {weight.shape[-1] if weight.ndim else '?'}) and "
                         f"weight (out_features, in_features) expected, got input {x.shape} "
                         f"and weight {weight.shape}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) for weight "
                         f"{weight.shape}, got {bias.shape}")
    if count_macs.active:
        macs = weight.shape[0] * weight.shape[1]
        for size in x.shape[:-1]:
            macs *= size
        count_macs.record(macs)
    return Linear.apply(x, weight, bias)


def matmul(a, b):
    """Matrix product with NumPy's rules (batched, broadcast batch axes, 1-D operands)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-d, got shapes {a.shape} and "
                         f"{b.shape}; use * for scaling")
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: {k_a} columns "
                         f"against {k_b} rows")
    batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    if count_macs.active:
        n = a.shape[-2] if a.ndim > 1 else 1
        m = b.shape[-1] if b.ndim > 1 else 1
        macs = n * k_a * m
        for size in batch:
            macs *= size
        count_macs.record(macs)
    return MatMul.apply(a, b)
