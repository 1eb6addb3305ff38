"""Shared helpers of the nn tests: gradient checks through a module's parameters."""

from contextlib import contextmanager

from minitx.testing import gradcheck


def _get(owner, part):
    if isinstance(owner, (list, tuple)):
        return owner[int(part)]
    if isinstance(owner, dict):
        return owner[part]
    return getattr(owner, part)


def _set(owner, part, value):
    if isinstance(owner, list):
        owner[int(part)] = value
    elif isinstance(owner, dict):
        owner[part] = value
    else:
        setattr(owner, part, value)


@contextmanager
def substituted(module, tensors):
    """Temporarily put the Tensors of {dotted name: Tensor} in place of those parameters."""
    saved = []
    try:
        for name, tensor in tensors.items():
            *path, leaf = name.split(".")
            owner = module
            for part in path:
                owner = _get(owner, part)
            saved.append((owner, leaf, _get(owner, leaf)))
            _set(owner, leaf, tensor)
        yield module
    finally:
        for owner, leaf, old in reversed(saved):
            _set(owner, leaf, old)


def module_gradcheck(module, *inputs, device="cpu", call=None, **tolerances):
    """gradcheck the module's output with respect to its float inputs AND every parameter.

    `module` must be float64; `inputs` are NumPy arrays (ints and bools pass through as
    constants). `call(module, *tensors)` runs it (default: ``module(*tensors)``). Off the host,
    where the point is that no NumPy call touches device data, each input is checked along one
    random direction instead of element by element: two passes per input instead of hundreds.
    """
    module.to(device)
    named = list(module.named_parameters())
    names = [name for name, _ in named]
    params = [p.numpy() for _, p in named]
    call = call if call is not None else (lambda m, *xs: m(*xs))

    def fn(*tensors):
        with substituted(module, dict(zip(names, tensors[len(inputs):]))):
            return call(module, *tensors[:len(inputs)])

    if device != "cpu":
        tolerances["max_full"], tolerances["directions"] = 0, 1
    return gradcheck(fn, *inputs, *params, device=device, **tolerances)


@contextmanager
def spied_weights(attention):
    """Within the block, every call of the MultiHeadAttention `attention` also asks it for its
    weights (``need_weights=True``) and appends them, as NumPy arrays, to the yielded list;
    the caller still gets the plain output. A check independent of ``record_attention``."""
    seen, original = [], attention.forward

    def forward(*args, **kwargs):
        out, weights = original(*args, **{**kwargs, "need_weights": True})
        seen.append(weights.numpy())
        return out

    attention.forward = forward
    try:
        yield seen
    finally:
        del attention.forward


@contextmanager
def without_random_init():
    """Within the block, the random init functions of ``nn.init`` leave the values as they are
    (zeros), so a model of hundreds of millions of parameters builds in moments: the arrays
    are allocated (untouched zero pages cost no memory) but never filled. For counting
    parameters and checking shapes only."""
    from minitx.nn import init

    names = ("uniform_", "normal_", "trunc_normal_")
    saved = {name: getattr(init, name) for name in names}
    try:
        for name in names:
            setattr(init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)
