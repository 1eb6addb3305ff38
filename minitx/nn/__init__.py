"""Layers and the Module machinery: ``from minitx import nn``.

Files, in the order a Transformer uses them:

* ``module.py``: :class:`Module` (finds parameters, children and buffers by walking
  ``vars(self)``; state dicts, train/eval, devices, repr) and :class:`Parameter`;
* ``state_dict.py``: :class:`StateDictError` and ``check_state_dict``, the one check of a
  state dict (names, shapes, dtypes) that loading a module and a checkpoint share;
* ``containers.py``: :class:`Sequential`, :class:`ModuleList`, :class:`ModuleDict`;
* ``init.py``: initialization schemes (``nn.init.xavier_uniform_`` ...), each with its source;
* ``linear.py``, ``embedding.py``, ``norm.py``, ``activation.py``, ``dropout.py``: the layers;
* ``conv.py``, ``batchnorm.py``: convolution, pooling and batch normalization over images;
* ``positional.py``: sinusoidal (Vaswani §3.5) and learned positional encodings;
* ``attention.py``: :class:`MultiHeadAttention` (§3.2.2), masks and the key/value cache, and
  :class:`record_attention` (the weights the layers use, for figures);
* ``mlp.py``: :class:`PositionwiseFeedForward` (§3.3);
* ``transformer.py``: encoder and decoder layers (§3.1), post-LN or pre-LN.
"""

from minitx.nn import init
from minitx.nn.activation import GELU, ReLU
from minitx.nn.attention import MultiHeadAttention, record_attention
from minitx.nn.batchnorm import BatchNorm1d, BatchNorm2d
from minitx.nn.containers import ModuleDict, ModuleList, Sequential
from minitx.nn.conv import AvgPool2d, Conv2d, MaxPool2d
from minitx.nn.dropout import Dropout
from minitx.nn.embedding import Embedding
from minitx.nn.linear import Linear
from minitx.nn.mlp import PositionwiseFeedForward
from minitx.nn.module import Module, Parameter, Statistic
from minitx.nn.norm import LayerNorm
from minitx.nn.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from minitx.nn.state_dict import StateDictError
from minitx.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

__all__ = [
    "GELU", "Dropout", "Embedding", "LayerNorm", "LearnedPositionalEncoding", "Linear",
    "Module", "ModuleDict", "ModuleList", "MultiHeadAttention", "Parameter", "Statistic",
    "PositionwiseFeedForward", "ReLU", "Sequential", "SinusoidalPositionalEncoding",
    "StateDictError", "TransformerDecoderLayer", "TransformerEncoderLayer", "init",
    "record_attention", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "MaxPool2d",
]
