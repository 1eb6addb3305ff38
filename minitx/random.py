"""The default random generator: every random draw of minitx (initial weights, dropout masks,
shuffles) comes from a seeded NumPy generator on the host, and is moved to the device afterwards,
so a run gives the same numbers on every backend.
"""

import numpy as np

_generator = np.random.default_rng(0)  # the default; replace it with seed()


def seed(value):
    """Reseed the default generator (and return it)."""
    global _generator
    _generator = np.random.default_rng(value)
    return _generator


def default_generator():
    """The generator used when a function is not given one explicitly."""
    return _generator


def generator_or_default(generator, op_name):
    """`generator` (checked to be a NumPy Generator), or the default one when it is None."""
    if generator is None:
        return _generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{op_name}: generator must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(generator).__name__}")
    return generator


def get_state():
    """The default generator's state as a JSON-friendly dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_state(state):
    """Restore a state returned by :func:`get_state`."""
    _generator.bit_generator.state = state
