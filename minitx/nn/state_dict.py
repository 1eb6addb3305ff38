"""Checking a state dict against what it is loaded into: StateDictError, check_state_dict."""

from minitx import backend
from minitx.tensor import Tensor


class StateDictError(ValueError):
    """A state dict does not fit a model; ``missing``, ``unexpected`` and ``mismatched`` list
    the offending keys (mismatched: wrong shape or dtype)."""

    def __init__(self, message, missing, unexpected, mismatched):
        super().__init__(message)
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched


def check_state_dict(expected, state, strict, where):
    """The one check of a state dict against what it is loaded into (a Module, a checkpoint).

    Args:
        expected: ``{name: array or Tensor}`` that the receiver holds.
        state: ``{name: array or Tensor}`` to be loaded.
        strict: names missing from `state` or unknown to `expected` are errors (else only
            returned). A wrong shape or dtype is always an error.
        where: the start of the error message, e.g. the function and the file.

    Returns:
        ``(missing, unexpected)``: the names of `expected` absent from `state`, and the reverse.

    Raises:
        TypeError: a value of `state` is neither an array nor a Tensor.
        StateDictError: every missing, unexpected and mismatched name, in one message.
    """
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    mismatched = []
    for name in expected:
        if name not in state:
            continue
        have, want = (v.data if isinstance(v, Tensor) else v for v in (state[name], expected[name]))
        if not backend.is_array(have):
            kind = type(state[name])  # named with its module: torch.Tensor is not minitx's
            hint = (".numpy() (.detach().cpu().numpy() for a PyTorch tensor that requires grad "
                    "or is on a GPU)" if hasattr(state[name], "numpy") else "numpy.asarray(...)")
            raise TypeError(f"{where}: state[{name!r}] must be an array or a minitx Tensor, got "
                            f"{kind.__module__}.{kind.__qualname__}; convert it with {hint}")
        if tuple(have.shape) != tuple(want.shape) or have.dtype != want.dtype:
            mismatched.append(f"{name}: checkpoint {tuple(have.shape)} {have.dtype}, "
                              f"model {tuple(want.shape)} {want.dtype}")
    if mismatched or (strict and (missing or unexpected)):
        problems = [f"missing keys: {missing}"] if missing else []
        problems += [f"unexpected keys: {unexpected}"] if unexpected else []
        problems += [f"wrong shape or dtype: {'; '.join(mismatched)}"] if mismatched else []
        raise StateDictError(f"{where}: " + " | ".join(problems), missing, unexpected, mismatched)
    return missing, unexpected
