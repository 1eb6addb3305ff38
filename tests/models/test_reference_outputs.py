"""Every model and Transformer layer computes what it computed when the reference file was
recorded (tests/models/make_reference_outputs.py): outputs, attention figures and gradients,
in float64, to 1e-12. A refactoring that is not meant to change the numbers must pass this."""

import numpy as np
import pytest

from tests.models import make_reference_outputs as reference

STORED = reference.load()


@pytest.mark.parametrize("name", list(reference.CASES))
def test_outputs_and_gradients_are_unchanged(name):
    stored = STORED[name]
    state = {k.split("/", 1)[1]: v for k, v in stored.items() if k.startswith("param/")}
    now = reference.run(name, state)
    assert sorted(now) == sorted(stored)
    for key, expected in stored.items():
        np.testing.assert_allclose(now[key], expected, rtol=0, atol=1e-12, err_msg=key)
