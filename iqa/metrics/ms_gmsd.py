"""MS-GMSD: gradient magnitude similarity deviation over several scales, with an optional
chrominance term (MS-GMSDc).

Its options, public function and kernel; the luma, the downsampling, the gradient
magnitude, the similarity map and the pooling are GMSD's (:mod:`iqa.metrics.gmsd`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.color import YIQ_MATRIX
from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.metrics.gmsd import (
    C_255,
    check_channels,
    deviation_sq,
    downsample2,
    gradient_sq,
    image_size,
    luma,
    needs_grad,
    safe_sqrt,
    scaled_constant,
    similarity_map,
    weighted,
    working_precision,
)
from iqa.options import Conventions, ImageOptions, Options, option

__all__ = ["BETAS", "MASKING", "MS_GMSD_WEIGHTS", "MSGMSDOptions", "compute_ms_gmsd", "ms_gmsd"]

#: Zhang, Sander & Bermak (2017): the weights of the four scales, finest first (piq's defaults).
MS_GMSD_WEIGHTS = (0.096, 0.596, 0.289, 0.019)
#: The masking coefficient α of the similarity map ``((2 − α)g₁g₂ + c) / (g₁² + g₂² − αg₁g₂ + c)``.
MASKING = 0.5
#: β1 (weight of the chrominance term), β2 and β3 (its logistic mixing), as in the paper and piq.
BETAS = (0.01, 0.32, 15.0)


@dataclass(frozen=True)
class MSGMSDOptions(Options):
    """The parameters of MS-GMSD. After validation ``scales`` is always set and
    ``scale_weights`` holds the weights actually used: the published ones for four scales,
    the first ``scales`` of them renormalised below four, or custom weights normalised to
    sum to 1 (as piq normalises its ``scale_weights``)."""

    metric = "ms_gmsd"

    scales: int | None = option(
        None, "Number of scales, 1-4 (default 4; the weights are renormalised below 4).", metavar="INT"
    )
    scale_weights: tuple[float, ...] | None = option(
        None, "Custom weights, one per scale (finest first), normalised to sum 1 (their number sets the scales).",
        cli=False,
    )
    chromatic: bool = option(
        False, "MS-GMSDc: add the chrominance term (YIQ's I and Q at the coarsest scale); RGB images only."
    )

    def validate(self) -> None:
        w = self._scale_weights()
        self._set("scale_weights", w)
        self._set("scales", len(w))
        if not isinstance(self.chromatic, (bool, np.bool_)):
            raise self._error(f"{{kw}} must be True or False, got {self.chromatic!r}", "chromatic")
        self._set("chromatic", bool(self.chromatic))

    def _scale_weights(self) -> tuple[float, ...]:
        scales, weights = self.scales, self.scale_weights
        if weights is not None:
            try:
                if isinstance(weights, (str, bytes)):
                    raise TypeError
                w = tuple(float(x) for x in weights)
            except (TypeError, ValueError):
                raise self._error(
                    f"{{kw}} must be a sequence of numbers, one per scale, got {weights!r}", "scale_weights"
                ) from None
            if not w or not all(math.isfinite(x) and x >= 0 for x in w) or not sum(w) > 0:
                raise self._error(
                    f"{{kw}} must be finite, non-negative and not all zero, one per scale, got {weights!r}",
                    "scale_weights",
                )
            if scales is not None and scales != len(w):
                raise self._error(
                    f"{{kw}} disagrees with the {len(w)} weights given; give the weights alone "
                    "(their number sets the scales)", "scales", scales,
                )
            total = sum(w)
            return tuple(x / total for x in w)
        if scales is None:
            return MS_GMSD_WEIGHTS
        n = len(MS_GMSD_WEIGHTS)
        if isinstance(scales, bool) or not isinstance(scales, (int, np.integer)) or not 1 <= scales <= n:
            raise self._error(f"{{kw}} must be an integer from 1 to {n}, got {scales!r}", "scales")
        if scales == n:
            return MS_GMSD_WEIGHTS  # as published and as piq uses them (not renormalised)
        w = MS_GMSD_WEIGHTS[:scales]
        total = sum(w)
        return tuple(x / total for x in w)

    def constants(self) -> dict[str, Any]:
        return {
            "c": C_255,
            "c_scale": "0-255 (c = 170*(L/255)^2)",
            "masking": MASKING,
            "beta1": BETAS[0],
            "beta2": BETAS[1],
            "beta3": BETAS[2],
            "luma": "yiq (0.299 R + 0.587 G + 0.114 B)",
            "downsample": "2x2 average, odd edge zero-padded",
            "gradient": "prewitt/3, zero-padded",
        }


def ms_gmsd(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    scales: int | None = None,
    scale_weights: tuple[float, ...] | None = None,
    chromatic: bool = False,
) -> Any:
    """Multi-scale gradient magnitude similarity deviation (Zhang, Sander & Bermak 2017): 0
    for identical images, larger for more distortion.

    RGB images are reduced to the YIQ luma ``0.299 R + 0.587 G + 0.114 B`` (gray images are
    used as they are). At each scale (the first at full resolution, then 2×2 averages on a
    stride of 2, an odd last row or column averaged with zeros) the Prewitt gradient
    magnitudes (``[-1 0 1]/3``, zero padding) give the masked similarity map
    ``(1.5·g₁g₂ + c) / (g₁² + g₂² − 0.5·g₁g₂ + c)``, ``c = 170`` on the 0–255 scale
    (``170·(L/255)²`` for data range L), and its population variance ``v_s``. The value is
    ``M = √(Σ w_s·v_s)`` with the weights (0.096, 0.596, 0.289, 0.019), finest first.

    With ``chromatic=True`` (MS-GMSDc, RGB only) the root-mean-square differences of YIQ's
    I and Q at the coarsest scale, on the 0–255 scale, give ``R = √(rms_I² + rms_Q²)`` and
    the value is ``γ·M + (1 − γ)·0.01·R`` with ``γ = 2 / (1 + 0.32·exp(−15·M)) − 1``.

    Args:
        reference, distorted, data_range, bit_depth, alpha, check_range, color, crop_border: as for
            :func:`iqa.gmsd`.
        scales: number of scales (1–4, default 4); fewer scales use the first weights,
            renormalised to sum to 1. Both sides must be at least ``2**scales + 1`` px
            (17 px for the default).
        scale_weights: custom weights, one per scale, finest first: finite, non-negative
            and not all zero, normalised to sum to 1 (as piq does). Their number sets the
            scales; ``scales``, if also passed, must equal it.
        chromatic: add the chrominance term (MS-GMSDc); needs RGB images and
            ``color="rgb"``.

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable).

    Raises:
        ShapeError: an image too small for the scales; two or four channels; ``chromatic``
            on gray images (or with ``color="y"``).
        OptionError: invalid ``scales``, ``scale_weights`` (or both, disagreeing) or
            ``chromatic``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> ms_gmsd(a, a, chromatic=True)
        0.0

    References: Zhang, Sander & Bermak, "Gradient magnitude similarity deviation on multiple
    scales for color image quality assessment", IEEE ICASSP 2017.
    Matches: ``piq.multi_scale_gmsd(distorted, reference, data_range=L, chromatic=...,
    reduction="none")`` (piq 0.8); for ``scales=k``, piq's ``scale_weights=`` the first k
    weights.
    """
    from iqa.pairwise import evaluate

    return evaluate(
        "ms_gmsd", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=MSGMSDOptions(scales=scales, scale_weights=scale_weights, chromatic=chromatic),
    )


def compute_ms_gmsd(pair: Pair, options: MSGMSDOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The MS-GMSD kernel: ``(values, None)`` of a prepared pair (conventions applied), one
    value per image."""
    import torch

    from iqa.metrics.tensor_pair import from_torch, to_torch

    check_channels(pair, "MS-GMSD")
    w = options.scale_weights
    n_scales = len(w)
    h, wd = image_size(pair)
    need = 2**n_scales + 1
    if min(h, wd) < need:
        fit = math.floor(math.log2(min(h, wd) - 1)) if min(h, wd) >= 3 else 0
        custom = w != MSGMSDOptions(scales=n_scales).scale_weights if n_scales <= len(MS_GMSD_WEIGHTS) else True
        if fit < 1:
            hint = ""
        elif custom:
            hint = f"; give {fit} weights instead of {n_scales}"
        else:
            hint = "; pass {fit} (weights renormalised)"
        raise ShapeError(
            f"{pair.names[0]}: MS-GMSD with {n_scales} scales needs both sides to be at least "
            f"2^{n_scales} + 1 = {need} px, got {wd}×{h}{hint}",
            options={"fit": ("scales", fit)}, metric="ms_gmsd",
        )
    if options.chromatic and pair.channels != 3:
        raise ShapeError(
            # The colour option is named in words: the placeholders take the metric's prefix
            # in `iqa score`, which the conventions' options do not have.
            f"{pair.names[0]}: {{chromatic}} needs RGB images (the I and Q of YIQ), got 1 channel: a gray "
            "image, or one reduced to luma by the colour convention y, has no chrominance",
            options={"chromatic": ("chromatic", True)}, metric="ms_gmsd",
        )
    ref, dist = to_torch(pair)
    ref, dist, restore = working_precision(ref, dist)
    grad = needs_grad(ref, dist)
    c = scaled_constant(pair.data_range)
    xr, xd = luma(ref), luma(dist)
    # The chrominance term needs YIQ's I and Q of the difference at the coarsest scale: the
    # conversion and the downsampling are linear, so the RGB difference is downsampled and
    # converted there (piq converts both images at full resolution and downsamples the six
    # channels; the same numbers to rounding).
    diff = ref - dist if options.chromatic else None
    total = None
    for s, weight in enumerate(w):
        if s:
            xr, xd = downsample2(xr), downsample2(xd)
            if diff is not None:
                diff = downsample2(diff)
        gms = similarity_map(gradient_sq(xr), gradient_sq(xd), c, MASKING, grad)
        term = deviation_sq(gms) * weight
        total = term if total is None else total + term
    ms = safe_sqrt(total, grad)
    if diff is None:
        return from_torch(pair, restore(ms)), None
    beta1, beta2, beta3 = BETAS
    i, q = weighted(diff, YIQ_MATRIX[1]), weighted(diff, YIQ_MATRIX[2])
    msd = (i * i).mean(dim=(1, 2, 3)) + (q * q).mean(dim=(1, 2, 3))
    rms = safe_sqrt(msd, grad) * (255.0 / pair.data_range)  # on the 0-255 scale
    gamma = 2.0 / (1.0 + beta2 * torch.exp(-beta3 * ms)) - 1.0
    return from_torch(pair, restore(gamma * ms + (1.0 - gamma) * beta1 * rms)), None
