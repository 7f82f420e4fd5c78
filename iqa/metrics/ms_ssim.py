"""MS-SSIM: structural similarity over several scales.

Its options, public function and kernel; the per-scale statistics, the window and the
downsampling are SSIM's (:mod:`iqa.metrics.ssim`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.metrics.ssim import (
    K1,
    K2,
    SIGMA_HELP,
    WIN_SIZE_HELP,
    Workspace,
    as_planes,
    box_downsample_plane,
    box_downsample_torch,
    check_sigma,
    check_win_size,
    check_window,
    gaussian_window,
    image_size,
    plane_stats,
    run_planes,
    stats_torch,
)
from iqa.options import Conventions, ImageOptions, Options, option, renamed_keyword

__all__ = ["MS_SSIM_WEIGHTS", "MSSSIMOptions", "compute_ms_ssim", "ms_ssim"]

#: Wang, Simoncelli & Bovik (2003), Table 1: the exponents of the five scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class MSSSIMOptions(Options):
    """The parameters of MS-SSIM. After validation ``scales`` is always set and
    ``scale_weights`` holds the exponents actually used (the published ones, renormalised
    below five scales). The name is piq's; ``weights`` is kept for network files."""

    metric = "ms_ssim"

    win_size: int = option(11, WIN_SIZE_HELP)
    sigma: float = option(1.5, SIGMA_HELP)
    scales: int | None = option(None, "Number of scales, 1-5 (default 5; the weights are renormalised below 5).",
                                metavar="INT")
    scale_weights: tuple[float, ...] | None = option(
        None, "Custom exponents, one per scale, used as given (their number sets the scales).", cli=False
    )

    def validate(self) -> None:
        self._set("win_size", check_win_size(self.win_size, self.metric))
        self._set("sigma", check_sigma(self.sigma, self.metric))
        w = self._scale_weights()
        self._set("scale_weights", w)
        self._set("scales", len(w))

    def _scale_weights(self) -> tuple[float, ...]:
        scales, weights = self.scales, self.scale_weights
        if weights is not None:
            try:
                if isinstance(weights, (str, bytes)):
                    raise TypeError
                w = tuple(float(x) for x in weights)
            except (TypeError, ValueError):
                raise self._error(f"{{kw}} must be a sequence of numbers, one per scale, got {weights!r}", "scale_weights") from None
            # All-zero weights would score every pair 1.0, and NaN would pass a plain `< 0` test.
            if not w or not all(math.isfinite(x) and x >= 0 for x in w) or not sum(w) > 0:
                raise self._error(
                    f"{{kw}} must be finite, non-negative and not all zero, one per scale, got {weights!r}", "scale_weights"
                )
            if scales is not None and scales != len(w):
                raise self._error(
                    f"{{kw}} disagrees with the {len(w)} weights given; give the weights alone "
                    "(their number sets the scales)", "scales", scales,
                )
            return w
        if scales is None:
            return MS_SSIM_WEIGHTS
        if isinstance(scales, bool) or not isinstance(scales, (int, np.integer)) or not 1 <= scales <= len(MS_SSIM_WEIGHTS):
            raise self._error(f"{{kw}} must be an integer from 1 to {len(MS_SSIM_WEIGHTS)}, got {scales!r}", "scales")
        if scales == len(MS_SSIM_WEIGHTS):
            return MS_SSIM_WEIGHTS  # as published (they sum to 1.0001; not renormalised)
        w = MS_SSIM_WEIGHTS[:scales]
        total = sum(w)
        return tuple(x / total for x in w)

    def constants(self) -> dict[str, Any]:
        return {"k1": K1, "k2": K2, "window": "gaussian"}


def ms_ssim(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    win_size: int = 11,
    sigma: float = 1.5,
    scales: int | None = None,
    scale_weights: tuple[float, ...] | None = None,
    weights: tuple[float, ...] | None = None,
) -> Any:
    """Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003).

    ``prod_j cs_j^w_j · ssim_S^w_S`` over ``scales`` scales with the published weights
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Between scales: a 2×2 average then every
    other pixel, odd sizes extended symmetrically at the bottom/right edge (output
    ``ceil(n/2)``), as in Wang's ``msssim.m``. The per-channel means cs₁…cs_{S-1} and
    ssim_S are clamped at 0 before the weighted product (no NaN from a negative base).
    Colour images are scored per channel, then averaged.

    Args:
        reference, distorted, data_range, bit_depth, alpha, check_range, color, crop_border, win_size,
            sigma: as for :func:`iqa.ssim`.
        scales: number of scales (1–5, default 5); fewer scales use the first weights,
            renormalised to sum to 1. The short side must be at least
            ``win_size · 2**(scales-1)`` (176 px for the default).
        scale_weights: custom exponents, one per scale, used as given: finite, non-negative
            and not all zero. Their number sets the scales; ``scales``, if also passed, must
            equal it.
        weights: the former name of ``scale_weights``; deprecated (``weights`` names network
            files elsewhere).

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor.

    Raises:
        ShapeError: the image is too small for the number of scales.
        OptionError: invalid ``scales`` or ``scale_weights`` (or both, disagreeing), ``win_size``
            or ``sigma``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (176, 176, 3), dtype=np.uint8)
        >>> ms_ssim(a, a)
        1.0

    References: Wang, Simoncelli & Bovik, "Multiscale structural similarity for image
    quality assessment", Asilomar 2003.
    Matches: ``pytorch_msssim.ms_ssim(x, y, data_range=L)`` on sizes divisible by 16;
    Wang's ``msssim.m`` on all sizes.
    """
    from iqa.pairwise import evaluate

    if weights is not None:
        scale_weights = renamed_keyword("weights", "scale_weights", weights)
    return evaluate(
        "ms_ssim", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=MSSSIMOptions(win_size=win_size, sigma=sigma, scales=scales, scale_weights=scale_weights),
    )


def compute_ms_ssim(pair: Pair, options: MSSSIMOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The MS-SSIM kernel: ``(values, None)`` of a prepared pair (conventions applied), one
    value per image."""
    w = options.scale_weights
    win_size = options.win_size
    window = gaussian_window(win_size, options.sigma)
    h, wd = image_size(pair.reference, pair.backend)
    need = win_size * 2 ** (len(w) - 1)
    if min(h, wd) < need:
        fit = int(math.floor(math.log2(min(h, wd) / win_size))) + 1 if min(h, wd) >= win_size else 0
        custom = w != MSSSIMOptions(scales=len(w)).scale_weights
        if fit < 1:
            hint = ""
        elif custom:
            hint = f"; give {fit} weights instead of {len(w)}"
        else:
            hint = "; pass {fit} (weights renormalised)"
        raise ShapeError(
            f"{pair.names[0]}: MS-SSIM with {len(w)} scales needs a short side of at least "
            f"{need} px, got {wd}×{h}{hint}",
            options={"fit": ("scales", fit)}, metric="ms_ssim",
        )
    check_window(h, wd, pair, win_size, "MS-SSIM", "ms_ssim")
    c1, c2 = (K1 * pair.data_range) ** 2, (K2 * pair.data_range) ** 2
    planes = as_planes(pair)
    if planes is not None:
        # One channel of one image through all scales: the working set stays in cache.
        ref, dist, restore = planes
        n, ch = ref.shape[0], ref.shape[3]
        last = len(w) - 1

        def job(k: int, ws: Workspace) -> list[float]:
            i, c = divmod(k, ch)
            x, y = ref[i, :, :, c], dist[i, :, :, c]
            out = []
            for s in range(len(w)):
                ssim_v, cs_v = plane_stats(x, y, window, c1, c2, ws, want_ssim=s == last, want_cs=s < last)
                out.append(ssim_v if s == last else cs_v)
                if s < last:
                    x, y = box_downsample_plane(x, 2), box_downsample_plane(y, 2)
            return out

        terms = np.array(run_planes(job, n * ch), dtype=np.float64).reshape(n, ch, len(w))
        weights_arr = np.asarray(w, dtype=np.float64)
        return restore(np.prod(np.maximum(terms, 0.0) ** weights_arr, axis=2).mean(axis=1)), None
    import torch

    ref, dist = pair.reference, pair.distorted
    terms_t = []
    for s in range(len(w)):
        ssim_c, cs_c, _ = stats_torch(ref, dist, window, c1, c2, False)
        terms_t.append(cs_c if s < len(w) - 1 else ssim_c)
        if s < len(w) - 1:
            ref, dist = box_downsample_torch(ref, 2), box_downsample_torch(dist, 2)
    stacked = torch.relu(torch.stack(terms_t))  # (S, N, C); clamp at 0 before the product
    weights_t = torch.tensor(w, dtype=stacked.dtype, device=stacked.device).view(-1, 1, 1)
    return torch.prod(stacked**weights_t, dim=0).mean(dim=1), None
