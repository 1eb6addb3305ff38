"""0-d and empty inputs, op by op: each gives what PyTorch gives, or a clear error saying why.

The values are those of the definitions (a 0-d tensor reduced over its axis 0 or −1 is itself,
softmax of one value is 1, anything over an empty axis is empty, a product over k = 0 is
zeros); where torch is installed, it is compared as well.
"""

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import ops
from minitx.testing import gradcheck

S = np.array(1.5)
I0 = np.zeros((), np.int64)

# name: (fn of Tensors, inputs, expected value)
WORKS = {
    "sum axis 0": (lambda s: s.sum(axis=0), [S], S),
    "sum axis -1": (lambda s: s.sum(axis=-1), [S], S),
    "mean axis 0": (lambda s: s.mean(axis=0), [S], S),
    "mean axis -1": (lambda s: s.mean(axis=-1, keepdims=True), [S], S),
    "max axis 0": (lambda s: s.max(axis=0), [S], S),
    "min axis -1": (lambda s: s.min(axis=-1), [S], S),
    "logsumexp axis 0": (lambda s: s.logsumexp(0), [S], S),
    "logsumexp axis -1": (lambda s: s.logsumexp(-1), [S], S),
    "softmax of a scalar": (lambda s: F.softmax(s, 0), [S], np.array(1.0)),
    "log_softmax of a scalar": (lambda s: F.log_softmax(s, -1), [S], np.array(0.0)),
    "softmax over an empty axis": (lambda x: F.softmax(x, -1), [np.ones((2, 0))],
                                   np.ones((2, 0))),
    "log_softmax over an empty axis": (lambda x: F.log_softmax(x, -1), [np.ones((2, 0))],
                                       np.ones((2, 0))),
    "logsumexp over an empty axis": (lambda x: x.logsumexp(-1), [np.ones((2, 0))],
                                     np.full(2, -np.inf)),
    "swapaxes(s, 0, 0)": (lambda s: s.swapaxes(0, 0), [S], S),
    "swapaxes(s, -1, 0)": (lambda s: s.swapaxes(-1, 0), [S], S),
    "matmul over k = 0": (lambda a, b: a @ b, [np.ones((5, 5, 0)), np.ones((0, 5))],
                          np.zeros((5, 5, 5))),
    "linear over k = 0": (lambda x, w: F.linear(x, w), [np.ones((3, 2, 0)), np.ones((4, 0))],
                          np.zeros((3, 2, 4))),
    "gather from a scalar": (lambda s, i: ops.gather(s, i, 0), [S, I0], S),
    "gather with a (2, 0) index": (lambda x, i: ops.gather(x, i, 1),
                                   [np.ones((2, 3)), np.zeros((2, 0), np.int64)],
                                   np.ones((2, 0))),
    "gather (1, 5) with a (5, 2) index": (
        lambda x, i: ops.gather(x, i, 0),
        [np.arange(5.0)[None], np.zeros((5, 2), np.int64)], np.tile([0.0, 1.0], (5, 1))),
    "cross_entropy of an empty batch, sum": (
        lambda z, t: F.cross_entropy(z, t, reduction="sum"),
        [np.ones((0, 3)), np.zeros(0, np.int64)], np.array(0.0)),
    "layer_norm over an empty batch": (F.layer_norm, [np.ones((0, 3))], np.ones((0, 3))),
    "split of an empty axis": (lambda x: x.split(2, axis=1)[0], [np.ones((2, 0))],
                               np.ones((2, 0))),
    "chunk of an empty axis": (lambda x: x.chunk(3, axis=0)[0], [np.ones((0, 2))],
                               np.ones((0, 2))),
}

# name: (fn of Tensors, inputs, error type, words the message must contain)
REFUSED = {
    "layer_norm of a scalar": (F.layer_norm, [np.array(3.0)], ValueError, "0-d"),
    "cross_entropy of a scalar": (lambda z, t: F.cross_entropy(z, t), [S, I0], ValueError,
                                  "class axis"),
    "max over an empty axis": (lambda x: x.max(-1), [np.ones((2, 0))], ValueError,
                               "no elements"),
    "min over an empty axis": (lambda x: x.min(0), [np.ones((0, 2))], ValueError, "no elements"),
    "gather with an index too large": (lambda x, i: ops.gather(x, i, 1),
                                       [np.ones((2, 3)), np.full((2, 1), 3)], IndexError,
                                       "[0, 3)"),
    "reshape of an empty tensor with -1": (lambda x: x.reshape(0, -1), [np.ones((0, 3))],
                                           ValueError, "any size fits"),
    "concat of scalars": (lambda a: mt.concat([a, a]), [S], ValueError, "0-d"),
    "axis out of range of a scalar": (lambda s: s.sum(axis=1), [S], ValueError, "out of range"),
}


def tensors(arrays):
    return [mt.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]


@pytest.mark.parametrize("name", sorted(WORKS))
def test_value_and_gradient(name):
    fn, inputs, expected = WORKS[name]
    out = fn(*tensors(inputs))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    if not name.startswith("logsumexp over"):  # -inf values: no finite differences
        gradcheck(fn, *inputs)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_clear_error(name):
    fn, inputs, error, words = REFUSED[name]
    with pytest.raises(error, match=__import__("re").escape(words)):
        fn(*tensors(inputs))


def test_the_same_as_torch():
    torch = pytest.importorskip("torch")
    theirs = {
        "sum axis 0": lambda s: s.sum(0), "sum axis -1": lambda s: s.sum(-1),
        "mean axis 0": lambda s: s.mean(0), "mean axis -1": lambda s: s.mean(-1, keepdim=True),
        "max axis 0": lambda s: s.amax(0), "min axis -1": lambda s: s.amin(-1),
        "logsumexp axis 0": lambda s: s.logsumexp(0),
        "logsumexp axis -1": lambda s: s.logsumexp(-1),
        "softmax of a scalar": lambda s: s.softmax(0),
        "log_softmax of a scalar": lambda s: s.log_softmax(-1),
        "softmax over an empty axis": lambda x: x.softmax(-1),
        "log_softmax over an empty axis": lambda x: x.log_softmax(-1),
        "logsumexp over an empty axis": lambda x: x.logsumexp(-1),
        "swapaxes(s, 0, 0)": lambda s: s.swapaxes(0, 0),
        "swapaxes(s, -1, 0)": lambda s: s.swapaxes(-1, 0),
        "matmul over k = 0": lambda a, b: a @ b,
        "linear over k = 0": torch.nn.functional.linear,
        "gather from a scalar": lambda s, i: torch.gather(s, 0, i),
        "gather with a (2, 0) index": lambda x, i: torch.gather(x, 1, i),
        "gather (1, 5) with a (5, 2) index": lambda x, i: torch.gather(x, 0, i),
        "cross_entropy of an empty batch, sum": lambda z, t: torch.nn.functional.cross_entropy(
            z, t, reduction="sum"),
        "layer_norm over an empty batch": lambda x: torch.nn.functional.layer_norm(x, (3,)),
        "split of an empty axis": lambda x: x.split(2, dim=1)[0],
        "chunk of an empty axis": lambda x: x.chunk(3, dim=0)[0],
    }
    assert set(theirs) == set(WORKS)
    for name, fn in theirs.items():
        expected = fn(*[torch.tensor(a) for a in WORKS[name][1]]).numpy()
        out = WORKS[name][0](*tensors(WORKS[name][1])).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-12, err_msg=name)
