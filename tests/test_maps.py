"""Heat-map PNGs: colours, the colour bar, and ``iqa ssim --map``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from iqa.cli.app import main
from iqa.errors import IQAError, ShapeError
from iqa.io import read_image
from iqa.maps import _lut, colorize, render_heatmap

# The reference: OpenCV's viridis, entry i the colour of index i (applyColorMap gives BGR).
VIRIDIS = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
# Its ends, as matplotlib's viridis table has them (0.267004, 0.004874, 0.329415) and
# (0.993248, 0.906157, 0.143936), times 255 and rounded: dark purple and yellow.
DARK_PURPLE, YELLOW = (68, 1, 84), (253, 231, 37)


def test_reference_ends_are_viridis():
    # Guards the reference itself: OpenCV's table runs from dark purple to yellow.
    assert tuple(VIRIDIS[0]) == DARK_PURPLE and tuple(VIRIDIS[-1]) == YELLOW


def test_lut_is_opencv_viridis_entry_for_entry():
    assert _lut(False).dtype == np.uint8 and _lut(False).shape == (256, 3)
    np.testing.assert_array_equal(_lut(False), VIRIDIS)
    np.testing.assert_array_equal(_lut(True), VIRIDIS[::-1])
    # Through the public function: a 0…255 ramp scaled to [0, 255] reads the table in order.
    ramp = np.arange(256, dtype=np.float64)[None, :]
    np.testing.assert_array_equal(colorize(ramp, 0.0, 255.0)[0], VIRIDIS)
    np.testing.assert_array_equal(colorize(ramp, 0.0, 255.0, reverse=True)[0], VIRIDIS[::-1])
    np.testing.assert_array_equal(colorize(ramp / 255.0, 0.0, 1.0)[0], VIRIDIS)


def test_colorize_ends_clipping_and_nan():
    v = np.array([[0.0, 1.0], [-5.0, np.nan], [7.0, 0.5]])
    rgb = colorize(v, 0.0, 1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 2, 3)
    assert tuple(rgb[0, 0]) == DARK_PURPLE  # low: viridis' dark end
    assert tuple(rgb[0, 1]) == YELLOW  # high: viridis' bright end
    assert tuple(rgb[1, 0]) == DARK_PURPLE  # clipped below
    assert tuple(rgb[2, 0]) == YELLOW  # clipped above
    assert tuple(rgb[1, 1]) == (128, 128, 128)  # NaN is gray
    assert tuple(rgb[2, 1]) == tuple(VIRIDIS[128])  # the middle: round(0.5 · 255) = 128
    rev = colorize(v, 0.0, 1.0, reverse=True)
    assert tuple(rev[0, 0]) == YELLOW and tuple(rev[0, 1]) == DARK_PURPLE
    assert tuple(rev[1, 1]) == (128, 128, 128)
    # Viridis' lightness increases (to within rounding): the scale reads as an order.
    lightness = colorize(np.linspace(0, 1, 256)[None], 0.0, 1.0)[0] @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lightness) > -1.0) and lightness[-1] - lightness[0] > 150
    with pytest.raises(ShapeError):
        colorize(np.zeros((2, 2, 2)), 0, 1)


def _first_map_row(img: np.ndarray) -> int:
    return int(np.nonzero((img[:, 0] != 255).any(axis=1))[0][0])  # first non-white row at x=0


@pytest.mark.parametrize("reverse", [False, True])
def test_render_has_map_and_colour_bar(tmp_path, reverse):
    values = np.tile(np.linspace(0.0, 2.0, 40), (30, 1))  # a left-to-right ramp
    out = render_heatmap(values, tmp_path / "m.png", title="test map", reverse=reverse)
    img = read_image(out)
    k = int(np.ceil(256 / 40))  # enlarged by an integer factor, nearest neighbour
    assert img.shape[1] > 40 * k and img.shape[0] > 30 * k
    low, high = (YELLOW, DARK_PURPLE) if reverse else (DARK_PURPLE, YELLOW)
    row = img[_first_map_row(img) + 5]
    assert tuple(row[0]) == low and tuple(row[40 * k - 1]) == high
    # The colour bar: a column right of the map running from the high end (top) down to the low end.
    bar_x = 40 * k + 8 + 8
    column = img[:, bar_x]
    colours = {tuple(c) for c in column}
    assert low in colours and high in colours
    first_high = np.nonzero((column == high).all(axis=1))[0][0]
    last_low = np.nonzero((column == low).all(axis=1))[0][-1]
    assert first_high < last_low


def test_render_edge_cases(tmp_path):
    render_heatmap(np.zeros((3, 3)), tmp_path / "flat.png")  # vmin == vmax
    render_heatmap(np.full((2, 5), np.nan), tmp_path / "nan.png")
    big = render_heatmap(np.random.default_rng(0).random((300, 400)), tmp_path / "big.png")
    assert read_image(big).shape[1] >= 400  # not enlarged, not shrunk
    # A .jpg path gets a JPEG of the same picture: without chroma subsampling, a map of
    # pixel-wise noise (the worst case) is 4.1 levels off on average (28 with 4:2:0).
    jpg = render_heatmap(np.random.default_rng(0).random((300, 400)), tmp_path / "big.jpg")
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    assert np.abs(read_image(jpg).astype(int) - read_image(big).astype(int)).mean() < 6
    with pytest.raises(ShapeError, match="2-D"):
        render_heatmap(np.zeros(5), tmp_path / "bad.png")
    with pytest.raises(IQAError, match="cannot write"):
        render_heatmap(np.zeros((4, 4)), tmp_path / "missing-folder" / "m.png")


def test_cli_ssim_map(tmp_path):
    from helpers import write_png

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    b = a.copy()
    b[10:20, 10:20] = 255 - b[10:20, 10:20]  # one damaged square
    pa, pb = write_png(tmp_path / "a.png", a), write_png(tmp_path / "b.png", b)
    out = tmp_path / "ssim.png"
    runner = CliRunner()
    plain = runner.invoke(main, ["ssim", str(pa), str(pb)])
    res = runner.invoke(main, ["ssim", str(pa), str(pb), "--map", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout == plain.stdout  # the number is unchanged by --map
    img = read_image(out)
    assert img.ndim == 3 and img.shape[2] == 3
    # The SSIM map is drawn with the reversed scale: the damaged square (low SSIM) is at
    # viridis' yellow end, undamaged areas (SSIM = 1) at its dark purple end.
    from iqa import ssim

    _, smap = ssim(a, b, return_map=True)
    plane = smap.mean(axis=-1)  # channels averaged, valid region 38×30
    h, w = plane.shape
    k = int(np.ceil(256 / max(h, w)))
    top = _first_map_row(img)

    def drawn(r: int, c: int) -> tuple[int, ...]:
        return tuple(int(x) for x in img[top + r * k + k // 2, c * k + k // 2])

    worst = np.unravel_index(plane.argmin(), plane.shape)  # inside the square, SSIM < 0 = vmin
    assert plane[worst] < 0 and drawn(*worst) == YELLOW
    assert plane[30, 25] == 1.0 and drawn(30, 25) == DARK_PURPLE  # far from the square
    assert plane[h - 1, 0] == 1.0 and drawn(h - 1, 0) == DARK_PURPLE
