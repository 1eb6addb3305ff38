"""models/hub.py without a reference library: the preprocessing's own checks."""

import numpy as np
import pytest

from models import hub

Image = pytest.importorskip("PIL.Image")


def image(height, width):
    return Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("settings, message", [
    ({"do_resize": False, "do_center_crop": True, "crop_size": 224},
     r"the centre crop 224x224 is larger than the image 100x120; resize it first"),
    ({"do_resize": True, "size": {"height": 100, "width": 50}, "do_center_crop": True,
      "crop_size": {"height": 64, "width": 64}},
     r"the centre crop 64x64 is larger than the image 100x50 \(after the resize\)"),
])
def test_a_centre_crop_larger_than_the_image_is_refused(settings, message):
    """A crop larger than the image would be a smaller, off-centre slice (negative offsets),
    and the batch would not have the model's input size."""
    with pytest.raises(ValueError, match="preprocess: " + message):
        hub.preprocess(image(100, 120), settings)


def test_a_centre_crop_inside_the_image_has_the_crop_size():
    settings = {"do_resize": False, "do_center_crop": True, "crop_size": {"height": 100,
                                                                          "width": 64}}
    assert hub.preprocess(image(100, 120), settings).shape == (1, 3, 100, 64)
