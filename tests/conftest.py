"""Every test that takes a `device` argument runs once per backend.

By default: "cpu" (NumPy) and "strict" (the stand-in that refuses implicit conversion to NumPy,
as CuPy does), plus "cuda" when CuPy sees a GPU. MINITX_TEST_DEVICES=cpu,cuda picks the list.
"""

import os

from hypothesis import settings

from minitx import backend


def _devices():
    chosen = os.environ.get("MINITX_TEST_DEVICES")
    if chosen:
        return [d.strip() for d in chosen.split(",") if d.strip()]
    return ["cpu", "strict"] + (["cuda"] if backend.cuda_available() else [])


DEVICES = _devices()


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", DEVICES)


# Hypothesis profiles. A fixed example budget keeps the suite at a few minutes.
# - "default" (a run on your machine): new random examples on every run, so repeated runs
#   explore further; a failure prints its falsifying example and a `@reproduce_failure(...)`
#   blob to paste above the test to replay it.
# - "ci" (chosen when the environment variable CI is set, as CI services do): derandomize=True,
#   so every run draws the same examples and a red CI run is red again on your machine with
#   CI=1; print_blob=True prints the replay blob too.
# - "thorough": ten times as many examples.
# HYPOTHESIS_PROFILE=<name> (or pytest's --hypothesis-profile=<name>) picks one explicitly.
settings.register_profile("default", deadline=None, max_examples=25, derandomize=False,
                          print_blob=True)
settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True,
                          print_blob=True)
settings.register_profile("thorough", deadline=None, max_examples=250, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "default"))
