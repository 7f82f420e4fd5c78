"""The super-resolution conventions: BT.601 luma and border crop (``iqa.color``)."""

from __future__ import annotations

import numpy as np
import pytest

import iqa
import torch

from iqa.color import apply_conventions, crop_border, rgb_to_y
from iqa.errors import OptionError, ShapeError
from iqa.io import prepare_pair
from iqa.options import Conventions


def direct_y(rgb: np.ndarray, data_range: float) -> np.ndarray:
    """BT.601 as written in the issue: Y = 16 + 65.481 R + 128.553 G + 24.966 B, R, G, B in [0, 1]."""
    r, g, b = (rgb[..., i].astype(np.float64) / data_range for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def test_rgb_to_y_matches_the_formula_numpy(rng):
    img = rng.integers(0, 256, (2, 9, 7, 3)).astype(np.float64)
    y = rgb_to_y(img, 255.0, "numpy")
    assert y.shape == (2, 9, 7, 1)
    # Same arithmetic up to the order of operations: a few ulps of 235.
    np.testing.assert_allclose(y[..., 0], direct_y(img, 255.0), rtol=0, atol=1e-12)


def test_rgb_to_y_matches_the_formula_uint16_range(rng):
    img = rng.integers(0, 65536, (1, 5, 6, 3)).astype(np.float64)
    np.testing.assert_allclose(rgb_to_y(img, 65535.0, "numpy")[..., 0], direct_y(img, 65535.0), atol=1e-12)


def test_rgb_to_y_torch_matches_numpy(rng):
    img = rng.integers(0, 256, (2, 6, 5, 3)).astype(np.float64)
    t = torch.from_numpy(img).permute(0, 3, 1, 2)
    y = rgb_to_y(t, 255.0, "torch")
    assert y.shape == (2, 1, 6, 5)
    np.testing.assert_allclose(y[:, 0].numpy(), direct_y(img, 255.0), atol=1e-12)


def test_rgb_to_y_extremes_and_primaries():
    # White, black and the primaries: Y = 235, 16 and 16 + the coefficient (unrounded; MATLAB's
    # rgb2ycbcr on uint8 rounds these to 81, 145 and 41).
    img = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.float64)
    y = rgb_to_y(img[None], 255.0, "numpy")[0, 0, :, 0]
    np.testing.assert_allclose(y, [235.0, 16.0, 81.481, 144.553, 40.966], atol=1e-12)
    np.testing.assert_array_equal(np.round(y), [235, 16, 81, 145, 41])


def test_crop_border_numpy_and_torch(rng):
    img = rng.random((1, 10, 12, 3))
    np.testing.assert_array_equal(crop_border(img, 2, "numpy"), img[:, 2:-2, 2:-2, :])
    assert crop_border(img, 0, "numpy") is img
    t = torch.from_numpy(img).permute(0, 3, 1, 2)
    assert torch.equal(crop_border(t, 3, "torch"), t[:, :, 3:-3, 3:-3])


@pytest.mark.parametrize("k", [-1, 1.5])
def test_crop_border_rejects_bad_values(k):
    # Validated once, by Conventions, which every public function and command builds.
    with pytest.raises(OptionError, match=rf"crop_border must be an integer of at least 0, got {k!r}"):
        Conventions(crop_border=k)
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(OptionError, match=rf"crop_border must be an integer of at least 0, got {k!r}"):
        iqa.psnr(a, a, crop_border=k)


def test_crop_border_too_large_names_the_image():
    with pytest.raises(ShapeError, match=r"ref\.png: crop_border=4 leaves nothing of a 9×8 image"):
        crop_border(np.zeros((1, 8, 9, 1)), 4, "numpy", "ref.png")


def test_apply_conventions_crops_before_converting(rng):
    a = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    pair = apply_conventions(prepare_pair(a, b), Conventions(color="y", crop_border=3))
    assert pair.data_range == 255.0
    np.testing.assert_allclose(pair.reference[0, :, :, 0], direct_y(a[3:-3, 3:-3], 255.0), atol=1e-12)
    np.testing.assert_allclose(pair.distorted[0, :, :, 0], direct_y(b[3:-3, 3:-3], 255.0), atol=1e-12)


def test_apply_conventions_y_on_16_bit_uses_the_data_range(rng):
    a = rng.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    pair = apply_conventions(prepare_pair(a, a), Conventions(color="y"))
    np.testing.assert_allclose(pair.reference[0, :, :, 0], direct_y(a, 65535.0), atol=1e-12)
    assert pair.data_range == 255.0


def test_apply_conventions_rgb_is_untouched(rng):
    a = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    pair = prepare_pair(a, a)
    out = apply_conventions(pair, Conventions(color="rgb"))
    assert out.reference is pair.reference and out.data_range == 255.0
    cropped = apply_conventions(pair, Conventions(color="rgb", crop_border=1))
    np.testing.assert_array_equal(cropped.reference[0], a[1:-1, 1:-1])
    assert cropped.data_range == 255.0 and cropped.channels == 3


def test_y_on_gray_scores_the_gray_image_as_it_is(rng):
    # BasicSR's to_y_channel leaves a gray image as it is, so a folder mixing gray and RGB
    # images can be scored with color='y'; the pair carries a note saying so.
    a = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    b = np.clip(a + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    out = apply_conventions(prepare_pair(a, b), Conventions(color="y"))
    np.testing.assert_array_equal(out.reference[0, :, :, 0], a)
    assert out.data_range == 255.0 and "gray image scored as is under color='y'" in out.notes
    assert iqa.psnr(a, b, color="y") == iqa.psnr(a, b)


def test_y_on_two_channels_is_an_error():
    a = np.zeros((8, 8, 2), np.uint8)
    with pytest.raises(ShapeError, match="color='y' needs RGB or gray images, got 2 channel"):
        apply_conventions(prepare_pair(a, a, alpha="keep"), Conventions(color="y"))


def test_unknown_color_is_an_error():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(OptionError, match="color must be one of rgb, y; got 'ycbcr'"):
        Conventions(color="ycbcr")
    from iqa import psnr

    with pytest.raises(OptionError, match="color must be one of rgb, y; got 'ycbcr'"):
        psnr(a, a, color="ycbcr")
