"""Every reference operator refuses a bad image with a ValueError naming ``image``."""

from __future__ import annotations

import numpy as np
import pytest

from operators.checks import check_number
from operators.dehaze import dehaze
from operators.detail import detail_enhance
from operators.local_laplacian import local_laplacian
from operators.looks import apply_look
from operators.style_transfer import style_transfer
from operators.tone_mapping import tone_map

OPERATORS = [dehaze, detail_enhance, local_laplacian, apply_look, style_transfer, tone_map]
BAD_IMAGES = [
    np.zeros((8, 8), np.float32),
    np.zeros((8, 8, 4), np.float32),
    np.zeros((8, 8, 3), np.float64),
    np.zeros((8, 8, 3), np.uint8),
    np.zeros((0, 8, 3), np.float32),
    np.full((8, 8, 3), 1.5, np.float32),
    np.full((8, 8, 3), np.nan, np.float32),
    [[[0.5, 0.5, 0.5]]],
]


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("image", BAD_IMAGES, ids=range(len(BAD_IMAGES)))
def test_bad_images_are_refused_by_name(operator, image):
    with pytest.raises(ValueError, match=r"^image:"):
        operator(image)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1", None, -1.0])
def test_check_number_refuses_non_finite_bools_strings_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"^gain: expected a finite number >= 0"):
        check_number("gain", value, lambda v: v >= 0, ">= 0")
