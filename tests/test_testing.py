"""minitx.testing.gradcheck catches wrong backwards, including the one a sum-only check misses."""

import numpy as np
import pytest

import minitx.functional as F
from minitx.autograd import Function
from minitx.kernels import softmax as stable_softmax
from minitx.testing import GradcheckError, gradcheck


class ZeroGradSoftmax(Function):
    """A softmax whose backward returns zeros: right for sum(softmax(x)), wrong otherwise."""

    def forward(self, x):
        return stable_softmax(x, -1)

    def backward(self, g):
        return g * 0


class DoubledTanh(Function):
    """tanh with a backward twice too large."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, g):
        return 2 * g * (1 - self.y ** 2)


def test_zero_backward_softmax_is_caught():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(ZeroGradSoftmax.apply, x)


def test_sum_only_check_would_miss_it():
    """The gradient of sum(softmax(x)) is exactly zero: why gradcheck uses a random v."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = __import__("minitx").tensor(x, requires_grad=True)
    F.softmax(t, -1).sum().backward()
    np.testing.assert_allclose(t.grad, 0, atol=1e-12)


def test_report_names_input_element_and_values():
    with pytest.raises(GradcheckError) as info:
        gradcheck(DoubledTanh.apply, np.array([0.1, 0.2, 0.3]))
    message = str(info.value)
    assert "input 0" in message and "element" in message and "analytic" in message


def test_large_inputs_use_random_directions():
    x = np.random.default_rng(1).standard_normal(600)  # above max_full
    assert gradcheck(F.tanh, x)
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(DoubledTanh.apply, x)


def test_float32_inputs_are_refused():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(F.tanh, np.ones(3, np.float32))


def test_strategies_draw_scalars_empty_arrays_and_large_values():
    from hypothesis import find

    from minitx.testing import arrays, broadcastable_shapes, magnitudes, shapes
    assert find(shapes(), lambda s: s == ()) == ()
    assert 0 in find(shapes(), lambda s: 0 in s)
    assert any(0 in s for s in find(broadcastable_shapes(2), lambda ss: any(0 in s for s in ss)))
    assert find(magnitudes(), lambda k: k >= 1e6) == 1e6
    big = find(magnitudes().flatmap(lambda k: arrays((3,), scale=k)),
               lambda a: np.abs(a).max() > 1e5)
    assert np.abs(big).max() <= 2e6


def test_gradcheck_scales_its_step_with_large_inputs():
    """A step of 1e-6 on values near 1e6 drowns in rounding; the step follows the values."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-2, 2, (3, 4)) * 1e6, rng.uniform(-2, 2, (3, 4)) * 1e6
    assert gradcheck(lambda x, y: x * y, a, b, atol=10.0)
    assert gradcheck(lambda x: (x * 2.0).sum(), a)


def test_ci_runs_draw_the_same_examples():
    """With CI set, hypothesis is derandomized (a CI failure replays locally with CI=1)."""
    import os
    import subprocess
    import sys
    code = ("import tests.conftest; from hypothesis import settings; "
            "print(settings.default.derandomize, settings.default.print_blob)")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    out = [subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          check=True).stdout.split() for e in (dict(env, CI="1"), env)]
    assert out == [["True", "True"], ["False", "True"]]


def test_gradcheck_reports_nan_on_either_side_and_ops_that_write_into_inputs():
    class NanGrad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * np.nan

    class Doubles(Function):  # doubles its input in place: wrong for any op
        def forward(self, x):
            x *= 2
            return x.copy()

        def backward(self, gy):
            return 2 * gy

    for x in (np.array([0.5, 1.0]), np.linspace(0.1, 1.0, 300)):  # elementwise, by direction
        with pytest.raises(GradcheckError, match="analytic nan"):
            gradcheck(lambda t: NanGrad.apply(t), x)
    with np.errstate(invalid="ignore"), pytest.raises(GradcheckError, match="numeric nan"):
        gradcheck(lambda t: t.log(), np.array([-1.0, 1.0]))
    a = np.linspace(-1.0, 1.0, 6)
    with pytest.raises(GradcheckError, match="fn wrote into input 0"):
        gradcheck(lambda t: Doubles.apply(t), a)
    np.testing.assert_array_equal(a, np.linspace(-1.0, 1.0, 6))  # the caller's array untouched
