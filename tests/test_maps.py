"""Heat-map PNGs: colours, the colour bar, and ``iqa ssim --map``."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from iqa.cli.app import main
from iqa.errors import IQAError, ShapeError
from iqa.io import read_image
from iqa.maps import _lut, colorize, render_heatmap


def test_colorize_ends_clipping_and_nan():
    lut = _lut(False)
    v = np.array([[0.0, 1.0], [-5.0, np.nan]])
    rgb = colorize(v, 0.0, 1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == tuple(lut[0]) == (68, 1, 84)  # viridis' dark end
    assert tuple(rgb[0, 1]) == tuple(lut[-1]) == (253, 231, 37)  # viridis' bright end
    assert tuple(rgb[1, 0]) == tuple(lut[0])  # clipped
    assert tuple(rgb[1, 1]) == (128, 128, 128)  # NaN is gray
    assert tuple(colorize(v, 0.0, 1.0, reverse=True)[0, 0]) == tuple(lut[-1])
    # Viridis' lightness increases monotonically: the scale reads as an order.
    lightness = lut @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lightness) > -1.0)
    with pytest.raises(ShapeError):
        colorize(np.zeros((2, 2, 2)), 0, 1)


def test_render_has_map_and_colour_bar(tmp_path):
    values = np.tile(np.linspace(0.0, 2.0, 40), (30, 1))  # a left-to-right ramp
    out = render_heatmap(values, tmp_path / "m.png", title="test map")
    img = read_image(out)
    k = int(np.ceil(256 / 40))  # enlarged by an integer factor, nearest neighbour
    assert img.shape[1] > 40 * k and img.shape[0] > 30 * k
    lut = _lut(False)
    top = np.nonzero((img[:, 0] != 255).any(axis=1))[0][0] + 0  # first non-white row at x=0
    row = img[top + 5]
    assert tuple(row[0]) == tuple(lut[0]) and tuple(row[40 * k - 1]) == tuple(lut[-1])
    # The colour bar: a column right of the map running from the bright end down to the dark end.
    bar_x = 40 * k + 8 + 8
    column = img[:, bar_x]
    colours = {tuple(c) for c in column}
    assert tuple(lut[-1]) in colours and tuple(lut[0]) in colours
    first_bright = np.nonzero((column == lut[-1]).all(axis=1))[0][0]
    last_dark = np.nonzero((column == lut[0]).all(axis=1))[0][-1]
    assert first_bright < last_dark


def test_render_edge_cases(tmp_path):
    render_heatmap(np.zeros((3, 3)), tmp_path / "flat.png")  # vmin == vmax
    render_heatmap(np.full((2, 5), np.nan), tmp_path / "nan.png")
    big = render_heatmap(np.random.default_rng(0).random((300, 400)), tmp_path / "big.png")
    assert read_image(big).shape[1] >= 400  # not enlarged, not shrunk
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
    # reverse scale: low SSIM (the damaged square) is bright, undamaged areas darker.
    lut = _lut(False)
    bright = (np.abs(img.astype(int) - lut[-1]).sum(-1) < 60).sum()
    assert bright > 0
