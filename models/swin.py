"""Swin Transformer. Liu et al., ICCV 2021, arXiv:2103.14030.

A hierarchical vision Transformer: self-attention runs inside non-overlapping M x M windows
(cost linear in the number of tokens), windows shift by M/2 every other block so information
crosses window borders, and patch merging halves the resolution between stages.

Paper map:  §3.1, Fig. 3 -> PatchEmbedding        patch partition (P·P·3 values) + linear embed
            §3.1, Fig. 3 -> SwinStage             [patch merging] then Swin blocks
            §3.1         -> PatchMerging          concat 2x2 neighbours (4C), LayerNorm, -> 2C
            Eq. 3        -> SwinBlock.forward     (S)W-MSA and MLP, pre-norm, residuals
            §3.2         -> window_partition, window_reverse, shifted_window_mask (Fig. 4)
            Eq. 4        -> WindowAttention       softmax(Q Kᵀ/√d + B) V in each window: an
                                              nn.MultiHeadAttention with B as additive bias
            §3.2         -> relative_position_index   B gathered from a (2M−1)² x h table
            Eq. 1-2      -> WindowAttention       cost 4hwC² + 2M²hwC (W-MSA), see below
            §3.3         -> SWIN_PRESETS          Swin-T/S/B/L (C, depths, heads)
            §4.1         -> SwinTransformer.forward   final LayerNorm, average pool, head
            published weights -> models/pretrained_swin.py (transformers' layout)
Shapes: B batch, H/W feature-map height/width (in patches), C channels, P patch side,
    M window side, N = M² tokens per window, nW = HW/M² windows, h heads, d = C/h.
    Feature maps are channels-last (B, H, W, C); images are (B, 3, H, W) as in PyTorch.
Cost: per window, the Q, K, V and output projections are 4·M²·C² multiply-adds and QKᵀ and
    the product with V are 2·M⁴·C, so a map of hw tokens costs 4hwC² + 2M²hwC (Eq. 2);
    :class:`WindowAttention` runs exactly these matmuls (``mt.count_macs`` checks it).
Deviations (each also marked in the code):
    * no stochastic depth (the paper uses drop-path 0.2 for Swin-T): small CPU runs;
    * the LayerNorm after the patch embedding comes from the official code (patch_norm=True);
    * the shift mask uses −inf, not the official −100, so masked weights are exactly 0;
    * H/P and W/P must be divisible by the window (no padding, unlike the detection code);
      a map no larger than the window gets one window of the map's size and no shift
      (as the official code does).
"""

from dataclasses import dataclass

import numpy as np

import minitx as mt
from minitx import functional as F
from minitx import nn


@dataclass(frozen=True)
class SwinConfig:
    image_size: int = 224  # H = W of the input image (§4.1: 224²)
    patch_size: int = 4  # P: 4x4 patches of 4·4·3 = 48 values (§3.1)
    in_channels: int = 3  # image channels
    embed_dim: int = 96  # C, the width of stage 1 (§3.3: Swin-T C = 96)
    depths: tuple = (2, 2, 6, 2)  # Swin blocks per stage (§3.3: Swin-T {2, 2, 6, 2})
    num_heads: tuple = (3, 6, 12, 24)  # h per stage, head size d = 32 (§3.3)
    window_size: int = 7  # M (§3.2: M = 7)
    mlp_ratio: int = 4  # α, MLP hidden width = α·C (§3.3)
    num_classes: int = 1000  # ImageNet-1K head (§4.1)
    activation: str = "gelu"  # MLP non-linearity (§3.1: GELU); or "gelu_tanh"


class SwinTransformer(nn.Module):
    """Swin Transformer classifier and backbone (Fig. 3).

    Args:
        config: a :class:`SwinConfig`.
        device, dtype, generator: where the parameters live and the seeded initial values.

    >>> cfg = SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=(2, 2),
    ...                  num_heads=(2, 4), window_size=4, num_classes=3)
    >>> model = SwinTransformer(cfg)
    >>> model(mt.ones((2, 3, 16, 16))).shape
    (2, 3)
    >>> [f.shape for f in model.features(mt.ones((2, 3, 16, 16)))]
    [(2, 8, 8, 8), (2, 4, 4, 16)]
    """

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        check_config(config)
        self.config = config
        kw = dict(device=device, dtype=dtype, generator=generator)
        P, C = config.patch_size, config.embed_dim
        self.patch_embed = PatchEmbedding(P, config.in_channels, C, **kw)
        side = config.image_size // P  # H/P = W/P: the stage-1 resolution
        self.stages = [SwinStage(config, i, side // 2 ** i, **kw)  # §3.1, Fig. 3
                       for i in range(len(config.depths))]
        self.num_features = C * 2 ** (len(config.depths) - 1)  # 8C after four stages
        self.norm = nn.LayerNorm(self.num_features, **{k: kw[k] for k in ("device", "dtype")})
        self.head = nn.Linear(self.num_features, config.num_classes, **kw)
        for module in self.modules():  # the official init: N(0, 0.02²) weights (cut at
            # ±2σ), zero biases; the patch embedding keeps the conv default, as there
            if isinstance(module, nn.Linear) and module is not self.patch_embed.proj:
                nn.init.trunc_normal_(module.weight, std=0.02, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images):  # (B, 3, H, W)
        x = self.features(images)[-1]  # (B, H/32, W/32, 8C) for P = 4
        x = self.norm(x).mean(axis=(1, 2))  # §4.1: LayerNorm, global average pool (B, 8C)
        return self.head(x)  # (B, num_classes)

    def features(self, images):  # (B, 3, H, W)
        """Return the output of every stage, [(B, H/P, W/P, C), (B, H/2P, W/2P, 2C), ...]:
        the feature pyramid a dense-prediction head reads (§1, §4.2-4.3)."""
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"SwinTransformer: expected images (B, {', '.join(map(str, expected))}"
                             f"), got {images.shape}")
        x = self.patch_embed(images)  # (B, H/P, W/P, C)
        maps = []
        for stage in self.stages:
            x = stage(x)  # (B, H_i, W_i, C_i), halved resolution and doubled C after stage 1
            maps.append(x)
        return maps


class PatchEmbedding(nn.Module):
    """Patch partition and linear embedding (§3.1): each P x P patch becomes one token."""

    def __init__(self, patch_size, in_channels, dim, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__()
        self.patch_size = patch_size
        # A Linear on the flattened patch is the official stride-P convolution (same init).
        self.proj = nn.Linear(patch_size * patch_size * in_channels, dim, device=device,
                              dtype=dtype, generator=generator)
        # DEVIATION: the official code normalizes the embedding (patch_norm); the paper is silent
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)

    def forward(self, images):  # (B, Cin, H, W)
        B, Cin, H, W = images.shape
        x = F.patchify(images, self.patch_size)  # §3.1: (B, H/P, W/P, 4·4·3 = 48 values)
        return self.norm(self.proj(x))  # linear embedding to C (B, H/P, W/P, C)


class SwinStage(nn.Module):
    """Stage i of Fig. 3: patch merging (stages 2-4), then blocks that alternate W-MSA and
    SW-MSA (shift 0, M/2, 0, M/2, ...)."""

    def __init__(self, config, i, resolution, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype, generator=generator)
        dim, M = config.embed_dim * 2 ** i, config.window_size
        self.merge = PatchMerging(dim // 2, **kw) if i > 0 else None
        self.blocks = [SwinBlock(dim, resolution, config.num_heads[i], M,
                                 0 if j % 2 == 0 else M // 2, config.mlp_ratio,
                                 config.activation, **kw)  # shift 0, M/2, 0, ... (§3.2)
                       for j in range(config.depths[i])]

    def forward(self, x):  # (B, H, W, C) or (B, 2H, 2W, C/2) before patch merging
        if self.merge is not None:
            x = self.merge(x)  # (B, 2H, 2W, C/2) -> (B, H, W, C)
        for block in self.blocks:
            x = block(x)  # (B, H, W, C)
        return x


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C), LayerNorm, linear to 2C (§3.1)."""

    def __init__(self, dim, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, device=device, dtype=dtype)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False, device=device, dtype=dtype,
                                   generator=generator)

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        if H % 2 or W % 2:
            raise ValueError(f"PatchMerging: the map must have even sides, got {x.shape}")
        x = x.reshape(B, H // 2, 2, W // 2, 2, C)  # (B, H/2, row r, W/2, column c, C)
        # Official order x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]: c, then r.
        x = x.transpose(0, 1, 3, 4, 2, 5)  # (B, H/2, W/2, c, r, C)
        x = x.reshape(B, H // 2, W // 2, 4 * C)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))  # (B, H/2, W/2, 2C)


class SwinBlock(nn.Module):
    """One Swin Transformer block (Eq. 3): x + (S)W-MSA(LN(x)), then x + MLP(LN(x)).

    Args:
        dim: C; resolution: H = W of the map (in tokens); num_heads: h;
        window_size: M (shrunk to the map when the map is smaller);
        shift_size: 0 for W-MSA, M/2 for SW-MSA (0 as well when the map fits one window);
        mlp_ratio: α; activation: "gelu" (exact, §3.1) or "gelu_tanh".
    """

    def __init__(self, dim, resolution, num_heads, window_size, shift_size, mlp_ratio=4,
                 activation="gelu", *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        self.resolution = resolution
        self.window_size = min(window_size, resolution)  # one window covers a small map
        self.shift_size = 0 if resolution <= window_size else shift_size  # nothing to shift
        kw = dict(device=device, dtype=dtype)
        self.norm1 = nn.LayerNorm(dim, **kw)
        self.attn = WindowAttention(dim, self.window_size, num_heads, **kw, generator=generator)
        self.norm2 = nn.LayerNorm(dim, **kw)
        self.mlp = nn.PositionwiseFeedForward(dim, mlp_ratio * dim, activation=activation, **kw,
                                              generator=generator)  # §3.1: 2-layer MLP, GELU
        self.attn_mask = None  # the SW-MSA mask (nW, N, N): 0 inside a region, −inf across
        if self.shift_size:
            mask = shifted_window_mask(resolution, resolution, self.window_size, shift_size)
            self.attn_mask = mt.Tensor(mask.astype(dtype)).to(device)

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        M, s = self.window_size, self.shift_size
        # 1. (S)W-MSA on LN(x), Eq. 3 lines 1 and 3
        y = self.norm1(x)  # (B, H, W, C)
        if s:
            y = F.roll(y, (-s, -s), axis=(1, 2))  # §3.2 cyclic shift toward the top-left
        windows = window_partition(y, M).reshape(B, -1, M * M, C)  # (B, nW, N, C)
        windows = self.attn(windows, mask=self.attn_mask)  # (B, nW, N, C)   Eq. 4
        y = window_reverse(windows.reshape(-1, M, M, C), M, H, W)  # (B, H, W, C)
        if s:
            y = F.roll(y, (s, s), axis=(1, 2))  # §3.2 reverse cyclic shift
        x = x + y  # (B, H, W, C)   DEVIATION: no stochastic depth on the residuals
        # 2. MLP on LN(x), Eq. 3 lines 2 and 4
        return x + self.mlp(self.norm2(x))  # (B, H, W, C)

    def extra_repr(self):
        return (f"resolution={self.resolution}, window_size={self.window_size}, "
                f"shift_size={self.shift_size}")


def window_partition(x, M):
    """Cut a map into non-overlapping M x M windows, row-major over the windows (§3.2).

    Args:
        x: (B, H, W, C) Tensor with H and W divisible by M.
        M: window side.
    Returns:
        (B·nW, M, M, C), nW = (H/M)·(W/M); window b·nW + i·(W/M) + j is the one at row i,
        column j of image b.

    >>> window_partition(mt.ones((2, 8, 4, 3)), 4).shape
    (4, 4, 4, 3)
    """
    B, H, W, C = x.shape
    if H % M or W % M:
        raise ValueError(f"window_partition: map {H}x{W} (x of shape {x.shape}) is not "
                         f"divisible by the window size M={M}")
    x = x.reshape(B, H // M, M, W // M, M, C)  # (B, H/M, M, W/M, M, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/M, W/M, M, M, C)
    return x.reshape(-1, M, M, C)  # (B·nW, M, M, C)


def window_reverse(windows, M, H, W):
    """Put windows back into maps: the inverse of :func:`window_partition`.

    Args:
        windows: (B·nW, M, M, C); M: window side; H, W: the map size.
    Returns:
        (B, H, W, C).

    >>> x = mt.randn((2, 8, 4, 3))
    >>> bool((window_reverse(window_partition(x, 4), 4, 8, 4).data == x.data).all())
    True
    """
    nW = (H // M) * (W // M)
    if windows.ndim != 4 or windows.shape[1:3] != (M, M) or windows.shape[0] % max(nW, 1):
        raise ValueError(f"window_reverse: windows of shape {windows.shape} do not tile a "
                         f"{H}x{W} map with {M}x{M} windows")
    C = windows.shape[-1]
    x = windows.reshape(-1, H // M, W // M, M, M, C)  # (B, H/M, W/M, M, M, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/M, M, W/M, M, C)
    return x.reshape(-1, H, W, C)  # (B, H, W, C)


class WindowAttention(nn.MultiHeadAttention):
    """Multi-head self-attention inside each window with relative position bias (Eq. 4):

        Attention(Q, K, V) = SoftMax(Q Kᵀ / √d + B) V,   B ∈ R^{M² x M²} per head,

    B gathered from a learned table B̂ ∈ R^{(2M−1) x (2M−1)} per head (§3.2). This is
    :class:`nn.MultiHeadAttention` (its projections W^Q, W^K, W^V, W^O and head split) run on
    all windows at once, (B, nW, N, C), with B (and the SW-MSA shift mask) as its additive
    bias. The products are the four projections (4·M²·C² multiply-adds per window) and Q Kᵀ
    and P V (2·M⁴·C, inside the fused ``F.scaled_dot_product_attention``, which reports them
    to ``mt.count_macs``): nothing else, so Eq. 2's 4hwC² + 2M²hwC is what the counter shows.

    Args:
        dim: C; window_size: M; num_heads: h (divides C);
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    >>> attn = WindowAttention(8, 2, 2)
    >>> attn(mt.ones((3, 5, 4, 8))).shape
    (3, 5, 4, 8)
    """

    def __init__(self, dim, window_size, num_heads, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__(dim, num_heads, device=device, dtype=dtype, generator=generator)
        self.window_size = window_size
        table = np.zeros(((2 * window_size - 1) ** 2, num_heads), dtype=dtype)
        self.relative_position_bias_table = nn.init.trunc_normal_(  # B̂, (2M−1)² x h (§3.2)
            nn.Parameter(mt.backend.to_device(table, device)), std=0.02, generator=generator)
        index = relative_position_index(window_size)  # (N, N) rows of B̂, fixed
        self.relative_position_index = mt.Tensor(index).to(device)

    def forward(self, x, mask=None, need_weights=False):  # (B, nW, N, C)
        """Attend within each window of `x` (B, nW, N, C) (any batch axes before N when there
        is no mask); `mask` (nW, N, N) is added to the scores of window i of every image
        (0 = may attend, −inf = may not). Returns (B, nW, N, C), and the weights
        (B, nW, h, N, N) when `need_weights`."""
        N, C = self.window_size ** 2, self.embed_dim
        nW = 1 if mask is None else mask.shape[0]
        if x.ndim < 3 or x.shape[-2:] != (N, C) or (mask is not None and x.shape[-3] != nW):
            raise ValueError(f"WindowAttention: expected windows (B, nW, {N}, {C}) with nW the "
                             f"mask's {nW} windows, got {x.shape}")
        bias = self.relative_position_bias().unsqueeze(0)  # B (1, h, N, N), every window
        if mask is not None:
            bias = bias + mask.unsqueeze(1)  # (nW, h, N, N): −inf across shifted regions
        return super().forward(x, attn_mask=bias, need_weights=need_weights)  # Eq. 4

    def relative_position_bias(self):
        """Return B (h, N, N): B[:, i, j] = B̂[relative offset of token j from token i] (§3.2)."""
        bias = self.relative_position_bias_table[self.relative_position_index]  # (N, N, h)
        return bias.transpose(2, 0, 1)  # (h, N, N)

    def extra_repr(self):
        return f"{super().extra_repr()}, window_size={self.window_size}"


def relative_position_index(M):
    """Return the (M², M²) int array whose [i, j] is the row of B̂ for query i and key j.

    Token i sits at (yᵢ, xᵢ) = divmod(i, M). The offset (yᵢ − yⱼ, xᵢ − xⱼ) lies in
    [−M+1, M−1]², so shifting by M−1 gives (a, b) ∈ [0, 2M−2]² and the row a·(2M−1) + b (§3.2).

    >>> relative_position_index(2)
    array([[4, 3, 1, 0],
           [5, 4, 2, 1],
           [7, 6, 4, 3],
           [8, 7, 5, 4]])
    """
    y, x = np.divmod(np.arange(M * M), M)  # (N,) row and column of each token
    dy = y[:, None] - y[None, :] + M - 1  # (N, N) in [0, 2M−2]
    dx = x[:, None] - x[None, :] + M - 1  # (N, N)
    return dy * (2 * M - 1) + dx  # (N, N)


def shifted_window_mask(H, W, M, s):
    """Return the additive SW-MSA mask (nW, N, N): 0 where two tokens of a window came from
    the same region before the cyclic shift, −inf where they did not (§3.2, Fig. 4).

    After rolling by −s, the last windows of each row and column hold pieces from opposite
    sides of the map. Label the map in 3 x 3 regions (cut at H−M and H−s, W−M and W−s), cut the
    labels into windows as the features are, and forbid attention between different labels.

    >>> mask = shifted_window_mask(4, 4, 2, 1)
    >>> mask.shape, bool((mask[0] == 0).all()), int((mask[3] == 0).sum())
    ((4, 4, 4), True, 4)
    """
    regions = np.zeros((H, W), dtype=np.int64)
    cuts = lambda n: (slice(0, n - M), slice(n - M, n - s), slice(n - s, n))  # noqa: E731
    for i, rows in enumerate(cuts(H)):
        for j, cols in enumerate(cuts(W)):
            regions[rows, cols] = 3 * i + j  # region label, before the shift
    labels = window_labels(regions, M)  # (nW, N): each token's region, window by window
    same = labels[:, :, None] == labels[:, None, :]  # (nW, N, N)
    return np.where(same, 0.0, -np.inf)  # DEVIATION: −inf (official −100): exact zeros


def window_labels(regions, M):
    """Cut an (H, W) array into windows with :func:`window_partition`: (nW, M²)."""
    H, W = regions.shape
    windows = window_partition(mt.tensor(regions.reshape(1, H, W, 1)), M)  # (nW, M, M, 1)
    return windows.numpy().reshape(-1, M * M)  # (nW, N)


def check_config(config):
    """Raise ValueError unless every stage's resolution, width and window fit together."""
    for name in ("image_size", "in_channels", "embed_dim", "window_size", "mlp_ratio"):
        if not getattr(config, name) >= 1:
            raise ValueError(f"SwinConfig: {name} must be a positive integer, got "
                             f"{getattr(config, name)}")
    if not all(h >= 1 for h in config.num_heads) or not all(d >= 1 for d in config.depths):
        raise ValueError(f"SwinConfig: depths {config.depths} and num_heads "
                         f"{config.num_heads} must be positive")
    P, side = config.patch_size, config.image_size // max(config.patch_size, 1)
    stages = len(config.depths)
    if P < 1 or config.image_size % P:
        raise ValueError(f"SwinConfig: image_size={config.image_size} must be divisible by "
                         f"patch_size={P}")
    if stages < 1 or len(config.num_heads) != stages:
        raise ValueError(f"SwinConfig: depths {config.depths} and num_heads {config.num_heads} "
                         f"need one entry per stage")
    for i, heads in enumerate(config.num_heads):
        res, width = side // 2 ** i, config.embed_dim * 2 ** i
        if res * 2 ** i != side or res < 1:
            raise ValueError(f"SwinConfig: the {side}x{side} patch grid cannot be halved "
                             f"{stages - 1} times (patch merging)")
        if res > config.window_size and res % config.window_size:  # DEVIATION: no padding
            raise ValueError(f"SwinConfig: stage {i + 1} resolution {res} is not divisible by "
                             f"window_size={config.window_size}")
        if width % heads:
            raise ValueError(f"SwinConfig: stage {i + 1} width {width} is not divisible by "
                             f"{heads} heads")


SWIN_PRESETS = {  # §3.3 architecture variants, and small ones for 32x32 images on CPU
    "swin_t": SwinConfig(),
    "swin_s": SwinConfig(depths=(2, 2, 18, 2)),
    "swin_b": SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "swin_l": SwinConfig(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    # the CIFAR-sized benchmark model: 32x32x3, patch 2, C 96, depths 2-2-2, window 4
    "swin_cifar": SwinConfig(image_size=32, patch_size=2, depths=(2, 2, 2),
                             num_heads=(3, 6, 12), window_size=4, num_classes=10),
}
