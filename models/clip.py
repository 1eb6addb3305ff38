"""CLIP: Contrastive Language-Image Pre-training. Radford et al., "Learning Transferable Visual
Models From Natural Language Supervision", ICML 2021, arXiv:2103.00020.

Two encoders map images and texts into one embedding space. A batch of N (image, text) pairs
gives an N × N matrix of cosine similarities; training pushes the N matching pairs (the
diagonal) up and the N² − N others down, with a cross-entropy over each row (image → text) and
each column (text → image). At test time a class name becomes a classifier: embed prompts such
as "a photo of a {dog}." and pick the class whose text is nearest to the image ("zero-shot").

Paper map:
    Fig. 3 (pseudocode)  -> CLIP.forward         L2-normalised embeddings, scaled cosine logits
                            contrastive_loss     symmetric cross-entropy (rows and columns)
    §2.5 temperature     -> CLIP.logit_scale     t = log(1/0.07) learnable, exp(t) clipped at 100
    §2.4 ViT changes     -> VisionTransformer    "an additional layer normalization to the
                                                 combined patch and position embeddings before
                                                 the transformer" (ln_pre); [class] output after
                                                 ln_post, projected by a bias-free matrix
                                                 (Fig. 3's W_i)
    §2.4 ResNet changes  -> models/clip_resnet.py  the modified ResNet (stem, anti-aliased
                                                 blocks, attention pooling)
    §2.4 text encoder    -> TextTransformer      causal pre-LN Transformer; the [EOS] token's
                                                 features, layer-normalised, projected
    §3.1.4 prompts       -> zero_shot_classifier  prompt ensembling over templates
    released configs     -> PRESETS              ViT-B/32 and RN50 (github.com/openai/CLIP)

Shapes: B batch, C/H/W image, P patch side, N = (H/P)² patches, T text positions, D tower
width, E joint embedding width, V vocabulary, K classes, h heads.

Deviations (from the released code, github.com/openai/CLIP, model.py):
    - DEVIATION: the towers use minitx's nn.TransformerEncoderLayer (separate q/k/v
      projections, PyTorch's names); the released code stacks them into one in_proj matrix.
      The parameters are the same numbers, so weights load by a name map (``hf_name_map``).
    - DEVIATION: the [EOS] position is the first occurrence of ``config.eot_token``; the
      released code takes the argmax of the token ids (its EOS has the highest id).
    - DEVIATION: both towers' blocks start from the released text tower's initialisation
      (``_blocks``); the released code leaves the image tower's blocks at PyTorch's default
      initialisation of their layers.
    - The exp(t) ≤ 100 clip is applied in the forward pass (OpenAI released no training code;
      open_clip clamps t in place after each step); either way the logits are scaled by at
      most 100, and past the clip t receives no gradient.
"""

import math
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from minitx import nn
from minitx.nn import init


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int = 128  # E, the joint space (ViT-B/32: 512)
    image_encoder: str = "vit"  # "vit" (§2.4, ViT) or "resnet" (§2.4, modified ResNet)
    image_size: int = 32  # H = W (paper: 224)
    patch_size: int = 4  # P (ViT-B/32: 32)
    vision_width: int = 192  # D of the ViT; the ResNet's stem width (RN50: 64)
    vision_layers: int = 4  # ViT blocks (ViT-B/32: 12)
    vision_heads: int = 3  # h of the ViT; of the ResNet's attention pooling (RN50: 32)
    resnet_layers: tuple = (1, 1, 1, 1)  # bottleneck blocks per stage (RN50: 3, 4, 6, 3)
    context_length: int = 32  # T (paper: "capped at 76"; the released models: 77)
    vocab_size: int = 1000  # V (paper: 49,152 BPE vocabulary; the released models: 49,408)
    text_width: int = 192  # D of the text tower (paper: 512)
    text_layers: int = 4  # text blocks (paper: 12)
    text_heads: int = 3  # h of the text tower (paper: 8)
    eot_token: int = 2  # the id of [EOS], whose features represent the text (§2.4)
    quick_gelu: bool = True  # x·σ(1.702x), the released code's GELU; False: the exact GELU
    logit_scale_init: float = math.log(1 / 0.07)  # t₀, "initialized to the equivalent of 0.07"
    max_logit_scale: float = 100.0  # "clipped to prevent scaling the logits by more than 100"


def check_config(c):
    """A ValueError naming the fields of a CLIPConfig that cannot build a model."""
    sizes = dict(embed_dim=c.embed_dim, image_size=c.image_size, patch_size=c.patch_size,
                 vision_width=c.vision_width, vision_layers=c.vision_layers,
                 vision_heads=c.vision_heads, context_length=c.context_length,
                 vocab_size=c.vocab_size, text_width=c.text_width, text_layers=c.text_layers,
                 text_heads=c.text_heads)
    bad = {k: v for k, v in sizes.items()
           if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"CLIP: sizes must be positive integers, got {bad}")
    if c.image_encoder == "resnet" and (len(c.resnet_layers) != 4 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in c.resnet_layers)):
        raise ValueError(f"CLIP: resnet_layers must be four positive block counts, got "
                         f"{c.resnet_layers}")
    if not 0 <= c.eot_token < c.vocab_size:
        raise ValueError(f"CLIP: eot_token {c.eot_token} is not an id of the vocabulary "
                         f"(vocab_size {c.vocab_size})")
    if not (math.isfinite(c.logit_scale_init) and c.max_logit_scale > 0
            and math.isfinite(c.max_logit_scale)):
        raise ValueError(f"CLIP: logit_scale_init must be finite and max_logit_scale positive "
                         f"and finite, got {c.logit_scale_init} and {c.max_logit_scale}")
    for width, heads, tower in ((c.vision_width, c.vision_heads, "vision"),
                                (c.text_width, c.text_heads, "text")):
        if tower == "text" or c.image_encoder == "vit":  # the ResNet's heads split 32·width
            if width % heads:
                raise ValueError(f"CLIP: {tower}_width {width} must be divisible by "
                                 f"{tower}_heads {heads}")


class CLIP(nn.Module):
    """An image tower, a text tower and a learnable temperature (Fig. 3)."""

    def __init__(self, config, *, generator=None):
        super().__init__()
        check_config(config)
        self.config = config
        if config.image_encoder == "vit":
            self.visual = VisionTransformer(config, generator)
        elif config.image_encoder == "resnet":
            from models.clip_resnet import ModifiedResNet  # the ResNet tower lives apart
            self.visual = ModifiedResNet(config, generator)
        else:
            raise ValueError(f"CLIP: image_encoder must be 'vit' or 'resnet', got "
                             f"{config.image_encoder!r}")
        self.text = TextTransformer(config, generator)
        # t, one learnable number, kept as a (1,) vector: minitx's Adam/AdamW update arrays of
        # at least one axis (Hugging Face stores it 0-d; hf_state_dict reshapes it)
        self.logit_scale = nn.Parameter(np.full((1,), config.logit_scale_init, np.float32))

    def encode_image(self, images):  # (B, 3, H, W)
        return self.visual(images)  # (B, E), not normalised

    def encode_text(self, tokens):  # (B, T) int
        return self.text(tokens)  # (B, E), not normalised

    def forward(self, images, tokens):
        """Return the logits of Fig. 3: exp(t) · I_e T_eᵀ, (B_img, B_txt); their transpose are
        the text → image logits."""
        image_emb = normalize(self.encode_image(images))  # (B, E), ‖·‖ = 1   Fig. 3
        text_emb = normalize(self.encode_text(tokens))  # (B, E)
        return self.scale() * (image_emb @ text_emb.T)  # (B, E) @ (E, B) -> (B, B)

    def scale(self):
        """exp(t) with t clipped at log(100) (§2.5), so the logits grow at most 100-fold."""
        t = self.logit_scale.reshape(())  # a scalar
        return t.clip(None, math.log(self.config.max_logit_scale)).exp()

    def num_parameters(self):
        """The trained values (BatchNorm's running statistics are not counted, as in PyTorch)."""
        return sum(p.size for p in self.parameters() if p.requires_grad)


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2021) with CLIP's change of §2.4, a LayerNorm before the
    Transformer; the [class] output is projected into the joint space by a bias-free matrix,
    Fig. 3's W_i (the paper's linear projection, bias-free in the released code)."""

    def __init__(self, config, generator=None):
        super().__init__()
        D, P, kw = config.vision_width, config.patch_size, dict(generator=generator)
        if config.image_size % P:
            raise ValueError(f"VisionTransformer: image_size {config.image_size} must be a "
                             f"multiple of patch_size {P}")
        N = (config.image_size // P) ** 2
        self.image_size = config.image_size
        self.conv1 = nn.Conv2d(3, D, P, stride=P, bias=False, **kw)  # patch projection, Eq. 1
        scale = D ** -0.5  # the released code's init scale for the two embeddings below
        self.class_embedding = _normal((D,), scale, generator)  # x_class
        self.positional_embedding = _normal((N + 1, D), scale, generator)  # E_pos
        self.ln_pre = nn.LayerNorm(D)  # §2.4: "an additional layer normalization"
        self.blocks = _blocks(D, config.vision_heads, config.vision_layers, config, generator)
        self.ln_post = nn.LayerNorm(D)
        self.proj = nn.Linear(D, config.embed_dim, bias=False, **kw)  # W_i of Fig. 3
        init.normal_(self.proj.weight, std=scale, generator=generator)

    def forward(self, images):  # (B, 3, H, W)
        B, S = images.shape[0], self.image_size
        if images.ndim != 4 or images.shape[1:] != (3, S, S):
            raise ValueError(f"VisionTransformer: expected images (B, 3, {S}, {S}), got "
                             f"{images.shape}")
        # patches: one P × P convolution with stride P is the patch projection of Eq. 1
        x = self.conv1(images)  # (B, D, H/P, W/P)
        x = x.reshape(B, x.shape[1], x.shape[2] * x.shape[3]).transpose(0, 2, 1)  # (B, N, D)
        cls = self.class_embedding.reshape(1, 1, -1).broadcast_to((B, 1, x.shape[2]))
        x = F.concat([cls, x], axis=1) + self.positional_embedding  # (B, N+1, D)
        # the Transformer, with CLIP's extra LayerNorm in front
        x = self.ln_pre(x)  # (B, N+1, D)
        for block in self.blocks:
            x = block(x)  # (B, N+1, D)
        # the [class] token's output, normalised and projected
        return self.proj(self.ln_post(x[:, 0]))  # (B, D) -> (B, E)


class TextTransformer(nn.Module):
    """A causal pre-LN Transformer over tokens; the text is represented by the features at
    its [EOS] token after the final LayerNorm, projected into the joint space (§2.4)."""

    def __init__(self, config, generator=None):
        super().__init__()
        D, T = config.text_width, config.context_length
        self.eot_token = config.eot_token
        self.token_embedding = nn.Embedding(config.vocab_size, D)
        init.normal_(self.token_embedding.weight, std=0.02, generator=generator)
        self.positional_embedding = _normal((T, D), 0.01, generator)  # learned positions
        self.blocks = _blocks(D, config.text_heads, config.text_layers, config, generator)
        self.ln_final = nn.LayerNorm(D)
        self.proj = nn.Linear(D, config.embed_dim, bias=False, generator=generator)  # W_t
        init.normal_(self.proj.weight, std=D ** -0.5, generator=generator)

    def forward(self, tokens):  # (B, T) int
        B, T = tokens.shape
        if T > len(self.positional_embedding):
            raise ValueError(f"TextTransformer: {T} tokens exceed the context length "
                             f"{len(self.positional_embedding)}")
        eot = self.eot_positions(tokens)  # (B,)
        x = self.token_embedding(tokens) + self.positional_embedding[:T]  # (B, T, D)
        for block in self.blocks:
            # causal: token i sees tokens ≤ i, so what follows [EOS] (padding) cannot reach it
            x = block(x, is_causal=True)  # (B, T, D)
        x = self.ln_final(x)  # (B, T, D)
        return self.proj(x[np.arange(B), eot])  # (B, D) -> (B, E)

    def eot_positions(self, tokens):
        """The position of the first [EOS] in each row; a row without one is an error."""
        is_eot = tokens.numpy() == self.eot_token  # (B, T), on the host
        if not is_eot.any(axis=1).all():
            rows = np.flatnonzero(~is_eot.any(axis=1)).tolist()
            raise ValueError(f"TextTransformer: rows {rows} have no end-of-text token "
                             f"(id {self.eot_token})")
        return is_eot.argmax(axis=1)  # (B,)


class QuickGELU(nn.Module):
    """x · σ(1.702 x): the sigmoid approximation of GELU (Hendrycks & Gimpel 2016, §2) that the
    released CLIP models were trained with."""

    def forward(self, x):
        return F.gelu(x, approximate="sigmoid")  # x·σ(1.702x): Φ(x) ≈ σ(1.702x)


def _blocks(D, heads, layers, config, generator):
    """`layers` pre-LN Transformer blocks of width D with a 4·D MLP (no dropout, as released),
    initialised as the released code initialises its text tower: attention std D^-½, residual
    outputs D^-½ (2·layers)^-½, MLP input (2D)^-½. DEVIATION: the released image tower keeps
    PyTorch's default initialisation; here both towers start the same way."""
    blocks = nn.ModuleList()
    attn_std, proj_std, fc_std = D ** -0.5, D ** -0.5 * (2 * layers) ** -0.5, (2 * D) ** -0.5
    for _ in range(layers):
        block = nn.TransformerEncoderLayer(D, heads, 4 * D, 0.0, "gelu", norm_first=True,
                                           generator=generator)
        if config.quick_gelu:
            block.ffn.activation = QuickGELU()
        attn = block.self_attn
        for linear, std in ((attn.q_proj, attn_std), (attn.k_proj, attn_std),
                            (attn.v_proj, attn_std), (attn.out_proj, proj_std),
                            (block.ffn.linear1, fc_std), (block.ffn.linear2, proj_std)):
            init.normal_(linear.weight, std=std, generator=generator)
        blocks.append(block)
    return blocks


def _normal(shape, std, generator):
    return init.normal_(nn.Parameter(np.zeros(shape, np.float32)), std=std, generator=generator)


def normalize(x):
    """x / ‖x‖₂ along the last axis (Fig. 3: l2_normalize)."""
    return x / (x * x).sum(-1, keepdims=True).sqrt()


# ---- the loss -------------------------------------------------------------------------------

def contrastive_loss(logits_per_image):
    """The symmetric cross-entropy of Fig. 3: image i's text is column i, text j's image is row
    j. (CE over rows + CE over columns) / 2. The fused cross-entropy subtracts each row's
    maximum before exponentiating, so logits of 100 and more are safe."""
    B = logits_per_image.shape[0]
    labels = mt.arange(B, device=logits_per_image.device)  # the diagonal
    loss_i = F.cross_entropy(logits_per_image, labels)  # image -> text, over each row
    loss_t = F.cross_entropy(logits_per_image.T, labels)  # text -> image, over each column
    return (loss_i + loss_t) / 2


# ---- zero-shot classification (§3.1.4) ------------------------------------------------------

TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.")


def zero_shot_classifier(model, tokenize, class_names, templates=TEMPLATES):
    """The weights (E, K) of a linear classifier made from text alone (§3.1.4): per class, the
    normalised embeddings of its prompts are averaged and the mean is normalised again
    ("ensembling over the embedding space instead of probability space").

    Args:
        tokenize: a list of strings -> (n, T) integer Tensor, each row ending in [EOS].
    """
    columns = []
    with mt.no_grad():
        for name in class_names:
            prompts = tokenize([t.format(name) for t in templates])  # (n_templates, T)
            emb = normalize(model.encode_text(prompts))  # (n_templates, E)
            columns.append(normalize(emb.mean(0)))  # (E,)
    return F.stack(columns, axis=1)  # (E, K)


def zero_shot_logits(model, images, classifier):
    """Cosine similarity of each image with each class's text embedding, (B, K)."""
    with mt.no_grad():
        return normalize(model.encode_image(images)) @ classifier  # (B, E) @ (E, K)


# ---- interop and presets ---------------------------------------------------------------------

def hf_name_map(config):
    """{our name: Hugging Face ``CLIPModel`` name} for the ViT-tower model (published
    checkpoints load through models/pretrained_clip.py)."""
    names = {"logit_scale": "logit_scale",
             "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
             "visual.class_embedding": "vision_model.embeddings.class_embedding",
             "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
             "visual.proj.weight": "visual_projection.weight",
             "text.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
             "text.positional_embedding": "text_model.embeddings.position_embedding.weight",
             "text.proj.weight": "text_projection.weight"}
    for ours, theirs in (("visual.ln_pre", "vision_model.pre_layrnorm"),
                         ("visual.ln_post", "vision_model.post_layernorm"),
                         ("text.ln_final", "text_model.final_layer_norm")):
        names.update({f"{ours}.{p}": f"{theirs}.{p}" for p in ("weight", "bias")})
    parts = {"self_attn.q_proj": "self_attn.q_proj", "self_attn.k_proj": "self_attn.k_proj",
             "self_attn.v_proj": "self_attn.v_proj", "self_attn.out_proj": "self_attn.out_proj",
             "ffn.linear1": "mlp.fc1", "ffn.linear2": "mlp.fc2", "norm1": "layer_norm1",
             "norm2": "layer_norm2"}
    for tower, theirs, layers in (("visual", "vision_model", config.vision_layers),
                                  ("text", "text_model", config.text_layers)):
        for i in range(layers):
            for ours, hf in parts.items():
                for p in ("weight", "bias"):
                    hf_name = f"{theirs}.encoder.layers.{i}.{hf}.{p}"
                    names[f"{tower}.blocks.{i}.{ours}.{p}"] = hf_name
    return names


PRESETS = {
    # the released ViT-B/32: 151,277,313 parameters
    "ViT-B/32": CLIPConfig(embed_dim=512, image_size=224, patch_size=32, vision_width=768,
                           vision_layers=12, vision_heads=12, context_length=77,
                           vocab_size=49408, text_width=512, text_layers=12, text_heads=8,
                           eot_token=49407),
    # the released RN50: 102,007,137 parameters
    "RN50": CLIPConfig(embed_dim=1024, image_encoder="resnet", image_size=224,
                       vision_width=64, vision_heads=32, resnet_layers=(3, 4, 6, 3),
                       context_length=77, vocab_size=49408, text_width=512, text_layers=12,
                       text_heads=8, eot_token=49407),
    "tiny": CLIPConfig(embed_dim=64, vision_width=64, vision_layers=2, vision_heads=2,
                       context_length=16, vocab_size=64, text_width=64, text_layers=2,
                       text_heads=2),
}
