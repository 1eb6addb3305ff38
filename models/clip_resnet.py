"""CLIP's modified ResNet image encoder (Radford et al. 2021, arXiv:2103.00020, §2.4).

A ResNet-50 (He et al. 2016) with three changes the paper lists in §2.4, as in the released code
(github.com/openai/CLIP, model.py, ``ModifiedResNet``):

    stem           -> ModifiedResNet.stem   three 3×3 convolutions (the first with stride 2)
                                            and a 2×2 average pool, in place of one 7×7
                                            convolution and a max pool (after He et al. 2019,
                                            "Bag of Tricks", ResNet-C)
    anti-aliasing  -> Bottleneck            a strided block averages 2×2 (stride s) before its
                                            last convolution instead of striding a
                                            convolution (Zhang 2019, "Making Convolutional
                                            Networks Shift-Invariant Again"); the shortcut
                                            likewise pools, then applies a 1×1 convolution
    attention pool -> AttentionPool2d       one multi-head attention layer whose query is the
                                            mean of the final feature map, in place of global
                                            average pooling ("QKV attention")

Shapes: B batch, C channels, H/W height/width, D = 32·width the final channels, E embed_dim.
The ResNet's config fields are those of ``models.clip.CLIPConfig``: ``vision_width`` (the stem
width, RN50: 64), ``resnet_layers`` (blocks per stage, RN50: 3, 4, 6, 3) and ``vision_heads``.
"""

import numpy as np

import minitx.functional as F
from minitx import nn
from minitx.nn import init


class ModifiedResNet(nn.Module):
    """stem → four stages of bottleneck blocks (×1, ×2, ×4, ×8 the width) → attention pool."""

    def __init__(self, config, generator=None):
        super().__init__()
        w, kw = config.vision_width, dict(generator=generator)
        self.image_size = config.image_size
        if config.image_size % 32:
            raise ValueError(f"ModifiedResNet: image_size must be a multiple of 32 (the "
                             f"network downsamples 32-fold), got {config.image_size}")
        # the stem: three 3×3 convolutions and an average pool (§2.4, ResNet-C)
        self.conv1 = nn.Conv2d(3, w // 2, 3, stride=2, padding=1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(w // 2)
        self.conv2 = nn.Conv2d(w // 2, w // 2, 3, padding=1, bias=False, **kw)
        self.bn2 = nn.BatchNorm2d(w // 2)
        self.conv3 = nn.Conv2d(w // 2, w, 3, padding=1, bias=False, **kw)
        self.bn3 = nn.BatchNorm2d(w)
        self.avgpool = nn.AvgPool2d(2)
        # the residual stages; the first block of stages 2-4 halves the resolution
        inplanes, stages = w, []
        for i, blocks in enumerate(config.resnet_layers):
            planes, stride = w * 2 ** i, 1 if i == 0 else 2
            stage = nn.Sequential()
            for b in range(blocks):
                stage.append(Bottleneck(inplanes, planes, stride if b == 0 else 1, generator))
                inplanes = planes * Bottleneck.expansion
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        D = w * 32  # the channels after the last stage (RN50: 2048)
        self.attnpool = AttentionPool2d(config.image_size // 32, D, config.vision_heads,
                                        config.embed_dim, generator)
        for block in self.modules():  # the released code starts each residual branch at 0
            if isinstance(block, Bottleneck):
                init.zeros_(block.bn3.weight)

    def stem(self, x):  # (B, 3, H, W)
        x = F.relu(self.bn1(self.conv1(x)))  # (B, w/2, H/2, W/2)
        x = F.relu(self.bn2(self.conv2(x)))  # (B, w/2, H/2, W/2)
        x = F.relu(self.bn3(self.conv3(x)))  # (B, w, H/2, W/2)
        return self.avgpool(x)  # (B, w, H/4, W/4)

    def forward(self, images):  # (B, 3, H, W)
        S = self.image_size
        if images.ndim != 4 or images.shape[1:] != (3, S, S):
            raise ValueError(f"ModifiedResNet: expected images (B, 3, {S}, {S}), got "
                             f"{images.shape}")
        x = self.stem(images)  # (B, w, H/4, W/4)
        x = self.layer1(x)  # (B, 4w, H/4, W/4)
        x = self.layer2(x)  # (B, 8w, H/8, W/8)
        x = self.layer3(x)  # (B, 16w, H/16, W/16)
        x = self.layer4(x)  # (B, 32w, H/32, W/32)
        return self.attnpool(x)  # (B, E)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 → [2×2 average pool if strided] → 1×1 expand (×4), plus the shortcut.

    The anti-aliased stride (§2.4): the pool before the last convolution replaces a stride-2
    convolution, so the block blurs before it subsamples.
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride, generator=None):
        super().__init__()
        kw = dict(bias=False, generator=generator)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, **kw)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, **kw)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else None
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, **kw)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:  # the shortcut changes shape
            self.downsample = nn.Sequential(
                nn.AvgPool2d(stride) if stride > 1 else nn.Sequential(),  # anti-aliased too
                nn.Conv2d(inplanes, planes * self.expansion, 1, **kw),
                nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x):  # (B, C, H, W)
        out = F.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = F.relu(self.bn2(self.conv2(out)))  # (B, planes, H, W)
        if self.avgpool is not None:
            out = self.avgpool(out)  # (B, planes, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4·planes, H/s, W/s)
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4·planes, ..)
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    """Pool a feature map into one vector with one multi-head attention layer (§2.4): the
    query is the feature map's mean, the keys and values are the mean and every position (with
    learned position embeddings), and the output projection maps D → E.
    """

    def __init__(self, spatial, D, heads, E, generator=None):
        super().__init__()
        self.positional_embedding = nn.Parameter(np.zeros((spatial ** 2 + 1, D), np.float32))
        init.normal_(self.positional_embedding, std=D ** -0.5, generator=generator)
        self.attn = nn.MultiHeadAttention(D, heads, generator=generator)
        # the output projection goes straight into the joint space (the released c_proj)
        self.attn.out_proj = nn.Linear(D, E, generator=generator)
        for proj in (self.attn.q_proj, self.attn.k_proj, self.attn.v_proj, self.attn.out_proj):
            init.normal_(proj.weight, std=D ** -0.5, generator=generator)  # as released

    def forward(self, x):  # (B, D, H, W)
        B, D = x.shape[:2]
        x = x.reshape(B, D, -1).transpose(0, 2, 1)  # (B, HW, D)
        x = F.concat([x.mean(1, keepdims=True), x], axis=1)  # (B, HW+1, D): mean first
        x = x + self.positional_embedding  # (B, HW+1, D)
        out = self.attn(x[:, :1], x, x)  # the mean queries every position: (B, 1, E)
        return out.reshape(B, -1)  # (B, E)
