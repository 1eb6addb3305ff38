"""Helpers shared by the optimizer tests: parameters on a device, gradients fed by hand."""

import numpy as np

import minitx as mt
from minitx import backend

SHAPES = [(3, 4), (5,)]  # a weight matrix and a bias


def random_arrays(rng, shapes=SHAPES, dtype=np.float64):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def make_params(arrays, device):
    """Leaf tensors on `device` holding copies of the host `arrays`."""
    return [mt.tensor(a, device=device, requires_grad=True) for a in arrays]


def set_grads(params, grads):
    """Give each parameter a copy of a host gradient (None leaves it without one)."""
    for p, g in zip(params, grads):
        p.grad = None if g is None else backend.to_device(g.copy(), p.device)


def run(opt, params, grad_steps, schedule=None):
    """Feed each list of gradients in turn and take one step (and a schedule step) per list."""
    for grads in grad_steps:
        set_grads(params, grads)
        opt.step()
        if schedule is not None:
            schedule.step()


def host(params):
    """Host copies of the parameters (on "cpu", Tensor.numpy() returns the live array)."""
    return [np.array(p.numpy()) for p in params]


def to_host(value):
    """A state dict with every array copied to NumPy, as a checkpoint file would hold it."""
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_host(v) for v in value]
    return np.array(backend.to_numpy(value)) if backend.is_array(value) else value
