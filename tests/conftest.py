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


# A fixed example budget keeps the suite at a few minutes; `--hypothesis-profile=thorough`
# runs ten times as many.
settings.register_profile("default", deadline=None, max_examples=25, derandomize=False)
settings.register_profile("thorough", deadline=None, max_examples=250)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
