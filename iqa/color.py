"""Conventions shared by several metrics: border crop and RGB → Y (BT.601 luma).

These are the super-resolution conventions: papers report PSNR/SSIM on the luma channel
of YCbCr after cropping a border of ``scale`` pixels.
"""

from __future__ import annotations

from typing import Any

from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.options import COLOR_SPACES, Conventions

__all__ = [
    "COLOR_SPACES",
    "YIQ_MATRIX",
    "Y_COEFFS",
    "Y_OFFSET",
    "apply_conventions",
    "crop_border",
    "rgb_to_y",
    "rgb_to_yiq",
]

#: ITU-R BT.601 luma for R, G, B in [0, 1], giving Y in [16, 235] (MATLAB ``rgb2ycbcr``).
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(pixels: Any, data_range: float, backend: str) -> Any:
    """BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with ``R, G, B = x / data_range``.

    Y is on the 0–255 scale and kept as a float (not rounded); score it with data range 255.
    MATLAB's ``rgb2ycbcr`` on uint8 input rounds Y to an integer: round the result with
    ``np.round`` to reproduce that variant.

    Args:
        pixels: NumPy ``N×H×W×3`` or a torch ``N×3×H×W`` tensor.
        data_range: the peak value of ``pixels``.
        backend: ``"numpy"`` or ``"torch"``.

    Returns:
        NumPy ``N×H×W×1`` or torch ``N×1×H×W``.
    """
    kr, kg, kb = (k / data_range for k in Y_COEFFS)
    if backend == "numpy":
        r, g, b = pixels[..., 0:1], pixels[..., 1:2], pixels[..., 2:3]
    else:
        r, g, b = pixels[:, 0:1], pixels[:, 1:2], pixels[:, 2:3]
    return Y_OFFSET + kr * r + kg * g + kb * b


#: RGB → YIQ (NTSC), rows Y, I, Q. Y is the plain luma 0.299 R + 0.587 G + 0.114 B (no offset,
#: the input's scale), which piq's GMSD, VIF, FSIM and HaarPSI use: not iqa's BT.601 Y above.
#: Matches: ``piq.functional.rgb2yiq``.
YIQ_MATRIX = (
    (0.299, 0.587, 0.114),
    (0.5959, -0.2746, -0.3213),
    (0.2115, -0.5227, 0.3112),
)


def rgb_to_yiq(x: Any) -> Any:
    """YIQ of a torch ``N×3×H×W`` tensor, on the input's scale (``N×3×H×W``; channel 0 is the
    plain luma 0.299 R + 0.587 G + 0.114 B). Computed as piq does (one matrix product over
    the channel axis), so the rounding matches too."""
    import torch

    m = torch.tensor(YIQ_MATRIX, dtype=x.dtype, device=x.device).t()
    return torch.matmul(x.permute(0, 2, 3, 1), m).permute(0, 3, 1, 2)


def crop_border(pixels: Any, k: int, backend: str, name: str = "image") -> Any:
    """Remove ``k`` pixels from every edge (NumPy ``N×H×W×C`` or torch ``N×C×H×W``).

    ``k`` is a non-negative integer, as :class:`iqa.options.Conventions` validates it.
    """
    if k == 0:
        return pixels
    h, w = (pixels.shape[1:3] if backend == "numpy" else pixels.shape[2:4])
    if 2 * k >= min(h, w):
        raise ShapeError(
            f"{name}: {{crop}} leaves nothing of a {w}×{h} image", options={"crop": ("crop_border", k)}
        )
    if backend == "numpy":
        return pixels[:, k:-k, k:-k, :]
    return pixels[:, :, k:-k, k:-k]


def apply_conventions(pair: Pair, conventions: Conventions) -> Pair:
    """Crop the border, then convert to Y if asked (the order the SR literature uses).

    Raises:
        ShapeError: ``color="y"`` on an image that is not RGB, or a crop larger than the image.
    """
    ref = crop_border(pair.reference, conventions.crop_border, pair.backend, pair.names[0])
    dist = crop_border(pair.distorted, conventions.crop_border, pair.backend, pair.names[1])
    if conventions.color == "rgb":
        return pair.with_pixels(ref, dist)
    if pair.channels == 1:
        # A gray image is luma already: scored as it is, as BasicSR's to_y_channel leaves it
        # (so a folder mixing gray and RGB images can be scored with color='y').
        return pair.with_pixels(ref, dist, notes=(*pair.notes, "gray image scored as is under color='y'"))
    if pair.channels != 3:
        raise ShapeError(
            f"{pair.names[0]}: {{y}} needs RGB or gray images, got {pair.channels} channel(s) "
            "(an alpha channel kept?)",
            options={"y": ("color", "y")},
        )
    return pair.with_pixels(
        rgb_to_y(ref, pair.data_range, pair.backend),
        rgb_to_y(dist, pair.data_range, pair.backend),
        data_range=255.0,
    )
