"""Heat-map pictures of per-pixel quality maps (LPIPS distance, SSIM), with a colour bar.

A map is drawn with a perceptually ordered colour scale (viridis), enlarged by an integer
factor with nearest-neighbour sampling so that small maps stay legible and every map pixel
stays a sharp block, and a colour bar on the right labels the scale with its values. The
values themselves are not changed: the picture is for people; the numbers come from the
metric functions.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from iqa.errors import ShapeError
from iqa.outfile import atomic_open

__all__ = ["colorize", "render_heatmap"]

_NAN_COLOUR = (128, 128, 128)
_BAR_WIDTH = 16
_GAP = 8


@functools.lru_cache(maxsize=1)
def _viridis() -> np.ndarray:
    """OpenCV's ``COLORMAP_VIRIDIS`` as a read-only 256×3 RGB uint8 table (entry i is the
    colour of index i: dark purple at 0, yellow at 255).

    The colours are exactly ``cv2.applyColorMap`` on the indices 0…255 (OpenCV's copy of
    matplotlib's viridis, CC0), which returns BGR, turned to RGB here. OpenCV is imported on
    first use, so importing this module stays light.
    """
    import cv2

    idx = np.arange(256, dtype=np.uint8).reshape(256, 1)
    bgr = cv2.applyColorMap(idx, cv2.COLORMAP_VIRIDIS)
    lut = np.ascontiguousarray(bgr.reshape(256, 3)[:, ::-1])
    lut.setflags(write=False)
    return lut


def _lut(reverse: bool) -> np.ndarray:
    """The 256-entry RGB colour table: viridis, or viridis reversed (yellow at 0)."""
    lut = _viridis()
    return lut[::-1] if reverse else lut


def colorize(values: np.ndarray, vmin: float, vmax: float, *, reverse: bool = False) -> np.ndarray:
    """Map a 2-D array to ``H×W×3`` uint8 colours: ``vmin`` → the dark end of viridis,
    ``vmax`` → the bright end (swapped with ``reverse``). Values outside are clipped; NaN is
    gray.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ShapeError(f"a heat map needs a 2-D array, got shape {v.shape}")
    span = vmax - vmin if vmax > vmin else 1.0
    idx = np.clip(np.nan_to_num((v - vmin) / span, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.intp)
    rgb = _lut(reverse)[idx]
    rgb[np.isnan(v)] = _NAN_COLOUR
    return rgb


def _ticks(vmin: float, vmax: float, count: int = 5) -> list[float]:
    if vmax <= vmin:
        return [vmin]
    return [vmin + (vmax - vmin) * i / (count - 1) for i in range(count)]


def render_heatmap(
    values: Any,
    path: str | os.PathLike,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str = "",
    reverse: bool = False,
    min_size: int = 256,
) -> Path:
    """Write ``values`` (a 2-D map) as a heat map with a labelled colour bar: PNG, or JPEG
    (quality 92, no chroma subsampling) when ``path`` ends in ``.jpg`` or ``.jpeg``.

    Args:
        values: the map, ``H×W`` (NumPy array or anything ``np.asarray`` accepts).
        path: the picture to write.
        vmin, vmax: the ends of the colour scale (default: the map's finite min and max).
        title: a line of text above the map (e.g. the metric and its settings).
        reverse: put the bright end at ``vmin`` (for similarity maps such as SSIM, so that
            differences are bright in every map).
        min_size: maps whose long side is shorter are enlarged by an integer factor.

    Returns:
        The path written.

    Raises:
        ShapeError: ``values`` is not 2-D or is empty.
        OutputError: the file cannot be written (it is left as it was).
    """
    from PIL import Image, ImageDraw, ImageFont

    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.size == 0:
        raise ShapeError(f"{path}: a heat map needs a non-empty 2-D array, got shape {v.shape}")
    finite = v[np.isfinite(v)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi < lo:
        lo, hi = hi, lo
    h, w = v.shape
    k = max(1, math.ceil(min_size / max(h, w)))
    heat = Image.fromarray(colorize(v, lo, hi, reverse=reverse)).resize((w * k, h * k), Image.NEAREST)
    mh, mw = h * k, w * k

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(s: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), s, font=font)
        return right - left, bottom - top

    labels = [f"{t:.4g}" for t in _ticks(lo, hi)]
    label_w = max(text_size(s)[0] for s in labels)
    line_h = max(text_size("Ag")[1], 8)
    top = (line_h + 8) if title else 4
    bar_h = max(mh, 5 * (line_h + 4))
    width = max(mw + _GAP + _BAR_WIDTH + 6 + label_w + 6, text_size(title)[0] + 8 if title else 0)
    height = top + max(mh, bar_h) + line_h // 2 + 6
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(heat, (0, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0), font=font)

    # The colour bar: the top row is hi, the bottom row lo.
    ramp = np.linspace(hi, lo, bar_h)[:, None].repeat(_BAR_WIDTH, axis=1)
    bar = Image.fromarray(colorize(ramp, lo, hi, reverse=reverse))
    bx = mw + _GAP
    canvas.paste(bar, (bx, top))
    draw.rectangle((bx - 1, top - 1, bx + _BAR_WIDTH, top + bar_h), outline=(0, 0, 0))
    ticks = _ticks(lo, hi)
    for t, label in zip(ticks, labels):
        frac = 0.0 if hi == lo else (hi - t) / (hi - lo)
        y = top + int(round(frac * (bar_h - 1)))
        draw.line((bx + _BAR_WIDTH, y, bx + _BAR_WIDTH + 4, y), fill=(0, 0, 0))
        draw.text((bx + _BAR_WIDTH + 6, y - line_h // 2), label, fill=(0, 0, 0), font=font)

    out = Path(path)
    # Written beside ``out`` and renamed over it when complete: a failure leaves no half map.
    with atomic_open(out, "wb", what="map") as fh:
        if out.suffix.lower() in (".jpg", ".jpeg"):
            canvas.save(fh, format="JPEG", quality=92, subsampling=0)
        else:
            canvas.save(fh, format="PNG")
    return out
