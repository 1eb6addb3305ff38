"""Semantic segmentation with a Swin backbone: a small all-MLP decoder over the stage features.

Swin's hierarchical feature maps (Liu et al. 2021, arXiv:2103.14030, §1 and §4.3, where UperNet
sits on top) make it a backbone for dense prediction. The decoder here is the lightest one that
fuses every stage, after SegFormer's all-MLP head (Xie et al. 2021, arXiv:2105.15203, §3.2):

    1. project each stage's map (B, H_i, W_i, C_i) to D channels with a Linear;
    2. upsample each to the stage-1 grid (B, H/P, W/P, D), nearest neighbour; add an
       image-level feature, the last map average-pooled and projected, copied to every token
       (the "image pooling" branch of DeepLabv3, Chen et al. 2017, arXiv:1706.05587, §3.3):
       what class an object is, is a property of the whole object, not of one pixel;
    3. concatenate (S stages + 1 -> (S+1)·D), Linear to D, GELU: the fused map;
    4. predict P·P·K logits per token and rearrange them into the P x P pixels of its patch
       (a "pixel shuffle", Shi et al. 2016), giving full-resolution logits (B, H, W, K).

Shapes: B batch, H/W image, P patch side, D decoder width, K classes, C_i stage widths.
Deviations: SegFormer upsamples bilinearly and predicts at 1/4 resolution followed by bilinear
upsampling; here nearest-neighbour upsampling (a reshape and a broadcast, differentiable with
existing ops) and the learned pixel shuffle keep to minitx's primitives.
"""

from dataclasses import dataclass

import numpy as np

from minitx import functional as F
from minitx import nn
from models.swin import SwinConfig, SwinTransformer, window_reverse


@dataclass(frozen=True)
class SegmenterConfig:
    """The model's own config, stored in the checkpoint: the arguments of :class:`SwinSegmenter`."""

    backbone: SwinConfig
    num_classes: int  # K, the background included
    decoder_dim: int  # D


class SwinSegmenter(nn.Module):
    """Swin backbone + all-MLP decoder: images (B, Cin, H, W) -> logits (B, H, W, K).

    Args:
        config: the backbone's :class:`~models.swin.SwinConfig` (its head is not used).
        num_classes: K, including the background class.
        decoder_dim: D.
        device, dtype, generator: as for :class:`~models.swin.SwinTransformer`.

    >>> import minitx as mt
    >>> from models.swin import SwinConfig
    >>> cfg = SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=(2, 2),
    ...                  num_heads=(2, 4), window_size=4, num_classes=1)
    >>> SwinSegmenter(cfg, num_classes=3, decoder_dim=16)(mt.ones((2, 3, 16, 16))).shape
    (2, 16, 16, 3)
    """

    def __init__(self, config, num_classes, decoder_dim=64, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.backbone = SwinTransformer(config, **kw)
        self.num_classes, P = num_classes, config.patch_size
        widths = [config.embed_dim * 2 ** i for i in range(len(config.depths))]  # C_i
        self.norms = [nn.LayerNorm(c, device=device, dtype=dtype) for c in widths]
        self.project = [nn.Linear(c, decoder_dim, **kw) for c in widths]  # step 1
        self.pool_project = nn.Linear(widths[-1], decoder_dim, **kw)  # step 2, image level
        self.fuse = nn.Linear((len(widths) + 1) * decoder_dim, decoder_dim, **kw)  # step 3
        self.classify = nn.Linear(decoder_dim, P * P * num_classes, **kw)  # step 4

    def forward(self, images):  # (B, Cin, H, W)
        maps = self.backbone.features(images)  # [(B, H/P·2^-i, W/P·2^-i, C_i)]
        B, H1, W1, _ = maps[0].shape  # the stage-1 grid, H/P x W/P
        # 1-2. per-stage projection, upsampled to the stage-1 grid
        fused = [upsample_nearest(proj(norm(x)), H1 // x.shape[1])  # (B, H/P, W/P, D)
                 for x, norm, proj in zip(maps, self.norms, self.project)]
        pooled = self.pool_project(self.norms[-1](maps[-1]).mean(axis=(1, 2)))  # (B, D)
        D = pooled.shape[-1]
        fused.append(pooled.reshape(B, 1, 1, D).broadcast_to((B, H1, W1, D)))  # every token
        # 3. fuse all stages and the image-level feature
        x = F.gelu(self.fuse(F.concat(fused, axis=-1)))  # (B, H/P, W/P, (S+1)·D) -> D
        # 4. P·P·K logits per token -> the pixels of its patch
        return pixel_shuffle(self.classify(x), self.backbone.config.patch_size)  # (B, H, W, K)


def upsample_nearest(x, factor):
    """Repeat each pixel of (B, H, W, C) factor x factor times: (B, H·f, W·f, C).

    A reshape adds two axes of size 1 and a broadcast repeats along them, so the backward is
    BroadcastTo's: the gradient of each output pixel is summed back into its source pixel.

    >>> import minitx as mt
    >>> x = mt.tensor(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1))
    >>> upsample_nearest(x, 2).numpy()[0, :, :, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]], dtype=float32)
    """
    if factor == 1:
        return x
    B, H, W, C = x.shape
    x = x.reshape(B, H, 1, W, 1, C)  # (B, H, 1, W, 1, C)
    x = x.broadcast_to((B, H, factor, W, factor, C))  # (B, H, f, W, f, C)
    return x.reshape(B, H * factor, W * factor, C)  # (B, H·f, W·f, C)


def pixel_shuffle(x, P):
    """Turn per-token logits (B, h, w, P·P·K) into per-pixel logits (B, h·P, w·P, K), the
    first P·K values of a token being the top row of its patch.

    Each token's values, read as a P x P patch of K channels, are one window of the output:
    :func:`~models.swin.window_reverse` puts the patches in place."""
    B, h, w, _ = x.shape
    K = x.shape[-1] // (P * P)
    patches = x.reshape(B * h * w, P, P, K)  # (B·h·w, row, column, K), raster order
    return window_reverse(patches, P, h * P, w * P)  # (B, H, W, K)


def confusion_matrix(predicted, target, num_classes):
    """Return the (K, K) count matrix [true class, predicted class] of two integer arrays."""
    flat = target.reshape(-1) * num_classes + predicted.reshape(-1)
    return np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(confusion):
    """Return (mIoU, per-class IoU): IoU_k = TP / (TP + FP + FN), averaged over the classes
    that occur in the target or the prediction (the usual definition, e.g. mmsegmentation).

    >>> round(mean_iou(np.array([[3, 1], [0, 4]]))[0], 4)
    0.775
    """
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)), iou
