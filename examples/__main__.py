"""A two-minute tour of the engine: ``python -m examples``.

It fits a small two-layer network to a two-spirals problem with nothing but minitx Tensors,
autodiff and a hand-written gradient-descent step, checks one gradient by finite differences,
and prints what it reached.
"""

import time

import numpy as np

import minitx as mt
import minitx.functional as F
from minitx.testing import gradcheck


def two_spirals(n, rng):
    """n points on each of two interleaved spirals, labels 0 and 1."""
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(scale=0.02, size=(2 * n, 2))
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.int64)
    return x.astype(np.float32), y


def main(steps=1500, hidden=64, lr=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x, y = two_spirals(500, rng)
    X, Y = mt.tensor(x), mt.tensor(y)
    # He initialisation (He et al. 2015) for the ReLU layer, small weights for the output
    W1 = mt.tensor(rng.normal(0, np.sqrt(2 / 2), (hidden, 2)), "float32", requires_grad=True)
    b1 = mt.zeros(hidden, requires_grad=True)
    W2 = mt.tensor(rng.normal(0, 0.01, (2, hidden)), "float32", requires_grad=True)
    b2 = mt.zeros(2, requires_grad=True)
    params = [W1, b1, W2, b2]

    start = time.perf_counter()
    for step in range(steps + 1):
        logits = F.linear(F.relu(F.linear(X, W1, b1)), W2, b2)  # (N, 2)
        loss = F.cross_entropy(logits, Y)
        loss.backward()
        with mt.no_grad():
            for p in params:
                p.data -= lr * p.grad  # plain gradient descent
                p.grad = None
        if step % 300 == 0:
            accuracy = float((logits.argmax(-1).numpy() == y).mean())
            print(f"step {step:5d}   loss {loss.item():.4f}   train accuracy {accuracy:.3f}")
    print(f"{steps} full-batch steps on {len(x)} points in {time.perf_counter() - start:.1f} s")

    gradcheck(lambda a: F.softmax(a @ a.T, -1), rng.normal(size=(4, 3)))
    print("gradcheck of softmax(A Aᵀ) against finite differences: ok")


if __name__ == "__main__":
    import sys
    main(steps=30 if "--quick" in sys.argv else 1500)
