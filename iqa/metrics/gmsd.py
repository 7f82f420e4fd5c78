"""GMSD, and the building blocks MS-GMSD shares (:mod:`iqa.metrics.ms_gmsd`).

The whole computation of GMSD is here: its options, the public function, the kernel
(:func:`compute_gmsd`), the per-pixel map's picture, and the steps MS-GMSD reuses: the
luma, the 2×2 downsampling, the Prewitt gradient magnitude and the similarity map.

Kernel:
    One torch kernel serves every input: NumPy and path inputs run it on float64 tensors,
    tensors in their own dtype and device, differentiable (float16 and bfloat16 are computed
    in float32 and returned in their dtype). It computes piq's formula with fewer passes
    over the pixels: the constant is scaled to the data range instead of the pixels being
    divided by it; the luma is taken after pairing rows (the 2×2 average folded into its
    weights); the Prewitt filters are applied separably with slices (a 1-channel ``conv2d``
    is an order of magnitude slower on the CPU) and without their 1/3, the constant taking
    the factor 9 instead; the squared magnitudes are compared without their square roots
    (``g₁g₂ = √(g₁²g₂²)``); in-place operations are used only when no gradient is recorded.
    The numbers differ from piq's by round-off only (~1e-15 relative in float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.options import Conventions, ImageOptions, Options

__all__ = [
    "C_255",
    "GMSDOptions",
    "compute_gmsd",
    "deviation",
    "deviation_sq",
    "downsample2",
    "gmsd",
    "gmsd_map_view",
    "gradient_sq",
    "luma",
    "luma_downsample2",
    "safe_sqrt",
    "scaled_constant",
    "similarity_map",
    "weighted",
    "working_precision",
]

#: The similarity map's stabilising constant on the 0–255 scale (Xue et al. 2014; ``T = 170``
#: in the authors' ``GMSD.m``). It is scaled with the data range: ``c = 170·(L/255)²``.
C_255 = 170.0

#: The smallest image side: after the 2×2 downsampling the map must hold a 3×3 Prewitt window.
MIN_SIZE = 5


@dataclass(frozen=True)
class GMSDOptions(Options):
    """GMSD has no parameters: the constant (170 on the 0–255 scale), the Prewitt filters,
    the YIQ luma and the 2×2 downsampling are fixed, as in the paper and piq."""

    metric = "gmsd"

    def constants(self) -> dict[str, Any]:
        return {
            "c": C_255,
            "c_scale": "0-255 (c = 170*(L/255)^2)",
            "luma": "yiq (0.299 R + 0.587 G + 0.114 B)",
            "downsample": "2x2 average, odd edge zero-padded",
            "gradient": "prewitt/3, zero-padded",
            "pooling": "population standard deviation",
        }


def gmsd(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    return_map: bool = False,
) -> Any:
    """Gradient magnitude similarity deviation (Xue et al. 2014): 0 for identical images,
    larger for more distortion.

    RGB images are reduced to the YIQ luma ``0.299 R + 0.587 G + 0.114 B`` (gray images are
    used as they are), averaged over 2×2 blocks and subsampled by 2 (an odd last row or
    column is averaged with zeros). The gradient magnitudes ``g`` of both images come from
    the Prewitt filters ``[-1 0 1]/3`` (zero padding, same size); their similarity map
    ``(2·g₁g₂ + c) / (g₁² + g₂² + c)``, with ``c = 170`` on the 0–255 scale
    (``170·(L/255)²`` for data range L), is pooled by its population standard deviation.

    Args:
        reference: the pristine image: a path, NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or torch tensor (``C×H×W``, ``N×C×H×W``), gray or RGB.
        distorted: the image being scored, in the same form and size.
        data_range: the peak value L (the constant is ``170·(L/255)²``); implied by integer
            dtypes. A 16-bit image and its 8-bit version get the same value.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"``, ``"drop"`` or ``"keep"`` (a kept alpha channel is an error here).
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"`` (gray, or RGB reduced to the YIQ luma) or ``"y"`` (BT.601 luma
            16–235, scored with L = 255: a different number, see docs/conventions.md).
        crop_border: pixels removed from every edge before the colour conversion.
        return_map: also return the gradient magnitude similarity map at half resolution
            (``N×⌈H/2⌉×⌈W/2⌉×1`` for NumPy, ``N×1×⌈H/2⌉×⌈W/2⌉`` for tensors; without the
            batch dimension for a single image), 1 where the gradients agree.

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable); with ``return_map=True`` a tuple ``(value, map)``.

    Raises:
        ShapeError: a side shorter than 5 px, two or four channels, or mismatched images.
        RangeError, ImageLoadError: from the image layer.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> gmsd(a, a)
        0.0

    References: Xue, Zhang, Mou & Bovik, "Gradient magnitude similarity deviation: a highly
    efficient perceptual image quality index", IEEE TIP 23(2), 2014.
    Matches: ``piq.gmsd(distorted, reference, data_range=L, reduction="none")`` (piq 0.8);
    the authors' ``GMSD.m`` (given the same luma) times ``sqrt(n/(n-1))``, n the map's pixel
    count (``std2`` is the sample standard deviation).
    """
    from iqa.pairwise import evaluate

    return evaluate(
        "gmsd", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=GMSDOptions(),
        return_map=return_map,
    )


def compute_gmsd(pair: Pair, options: GMSDOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, Any]:
    """The GMSD kernel: ``(values, maps)`` of a prepared pair (conventions applied), one value
    per image; ``maps`` (the similarity maps at half resolution) is None unless ``want_map``."""
    from iqa.metrics.tensor_pair import from_torch, to_torch

    check_channels(pair, "GMSD")
    h, w = image_size(pair)
    if min(h, w) < MIN_SIZE:
        raise ShapeError(
            f"{pair.names[0]}: GMSD needs images of at least {MIN_SIZE}×{MIN_SIZE} (a 3×3 gradient "
            f"window after the 2× downsampling), got {w}×{h} (after {{kw}}, if any)",
            options={"kw": "crop_border"},
        )
    ref, dist = to_torch(pair)
    ref, dist, restore = working_precision(ref, dist)
    grad = needs_grad(ref, dist)
    c = scaled_constant(pair.data_range)
    m1 = gradient_sq(luma_downsample2(ref))
    m2 = gradient_sq(luma_downsample2(dist))
    gms = similarity_map(m1, m2, c, 0.0, grad)
    values = restore(deviation(gms, grad))
    return from_torch(pair, values), (from_torch(pair, restore(gms), image=True) if want_map else None)


def gmsd_map_view(maps: Any, index: int, options: GMSDOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Image ``index``'s gradient magnitude similarity map as one plane and how to draw it
    (1 = same gradients, drawn dark; differences bright)."""
    m = maps[index]
    plane = np.asarray(m.detach().cpu().double().permute(1, 2, 0) if hasattr(m, "detach") else m)[..., 0]
    h, w = plane.shape
    return plane, {
        "vmin": min(0.0, float(plane.min())),
        "vmax": 1.0,
        "reverse": True,
        "title": f"GMS map, half resolution {w}x{h}: bright = different",
    }


# --------------------------------------------------------------------------------------
# Building blocks shared with MS-GMSD
# --------------------------------------------------------------------------------------


def image_size(pair: Pair) -> tuple[int, int]:
    x = pair.reference
    return (int(x.shape[1]), int(x.shape[2])) if pair.backend == "numpy" else (int(x.shape[2]), int(x.shape[3]))


def check_channels(pair: Pair, what: str) -> None:
    """Gray or RGB only: two or four channels are an alpha channel kept."""
    c = pair.channels
    if c not in (1, 3):
        raise ShapeError(
            f"{pair.names[0]}: {what} takes gray or RGB images, got {c} channels (an alpha channel "
            "kept?); use {drop}",
            options={"drop": ("alpha", "drop")},
        )


def working_precision(ref: Any, dist: Any) -> tuple[Any, Any, Any]:
    """float32 and float64 tensors as they are; half-precision ones (float16, bfloat16)
    computed in float32, whose range holds the squared gradients (float16 overflows at
    65504), with a ``restore`` that casts results back to the input's dtype (differentiably)."""
    import torch

    dtype = ref.dtype
    if dtype in (torch.float32, torch.float64):
        return ref, dist, lambda t: t
    return ref.to(torch.float32), dist.to(torch.float32), lambda t: t.to(dtype)


def needs_grad(*xs: Any) -> bool:
    import torch

    return torch.is_grad_enabled() and any(x.requires_grad for x in xs)


def scaled_constant(data_range: float, c_255: float = C_255) -> float:
    """A constant defined on the 0–255 scale, for pixels in [0, ``data_range``]: piq divides
    the pixels by L and uses ``c/255²``; the same number comes from ``c·(L/255)²``."""
    return c_255 * (data_range / 255.0) ** 2


#: The YIQ luma weights (the first row of :data:`iqa.color.YIQ_MATRIX`).
LUMA = (0.299, 0.587, 0.114)

#: The filters are applied as ``[-1 0 1]`` across three rows (or columns), without piq's and
#: ``GMSD.m``'s division by 3, so squared magnitudes are 9 times theirs; the constant is
#: multiplied by 9 instead, which leaves the similarity map unchanged.
PREWITT_GAIN = 9.0


def weighted(x: Any, weights: tuple[float, ...]) -> Any:
    """``Σ weights[k]·x[:, k]`` over the channels, as ``N×1×H×W`` (one multiply and two
    fused multiply-adds: no channels-last copy, unlike a matrix product over the channels)."""
    out = x[:, 0:1] * weights[0]
    for k in range(1, len(weights)):
        out.add_(x[:, k : k + 1], alpha=weights[k])  # a fresh tensor: safe under autograd
    return out


def luma(x: Any) -> Any:
    """``N×1×H×W``: a gray tensor as it is, RGB reduced to ``0.299 R + 0.587 G + 0.114 B``
    (the Y of :func:`iqa.color.rgb_to_yiq`, computed alone)."""
    return x if x.shape[1] == 1 else weighted(x, LUMA)


def _pad_even(x: Any) -> Any:
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    return F.pad(x, (0, w % 2, 0, h % 2)) if h % 2 or w % 2 else x


def downsample2(x: Any) -> Any:
    """2×2 averages on a stride of 2; an odd last row or column is averaged with zeros
    (``⌈H/2⌉×⌈W/2⌉``). As piq (zero ``F.pad``, then ``avg_pool2d``) and ``GMSD.m``
    (``conv2(x, ones(2)/4, 'same')`` then ``x(1:2:end, 1:2:end)``). Rows are paired first
    (contiguous adds), then columns."""
    x = _pad_even(x)
    rows = x[:, :, 0::2] + x[:, :, 1::2]
    return (rows[..., 0::2] + rows[..., 1::2]).mul_(0.25)


def luma_downsample2(x: Any) -> Any:
    """``downsample2(luma(x))`` in fewer passes: rows are paired first, then the luma (with
    the 1/4 folded into its weights) is taken at half height, then columns are paired."""
    if x.shape[1] == 1:
        return downsample2(x)
    x = _pad_even(x)
    rows = x[:, :, 0::2] + x[:, :, 1::2]
    y = weighted(rows, tuple(0.25 * k for k in LUMA))
    return y[..., 0::2] + y[..., 1::2]


def gradient_sq(x: Any) -> Any:
    """``PREWITT_GAIN·(gx² + gy²)``: the squared Prewitt gradient magnitude of ``N×1×H×W``
    times 9 (same size, zero padding), from the separable filters ``[1 1 1]ᵀ[-1 0 1]`` and
    their transpose."""
    import torch.nn.functional as F

    p = F.pad(x, (1, 1, 1, 1))
    cols = p[:, :, :-2] + p[:, :, 1:-1]
    cols.add_(p[:, :, 2:])  # 3-row sums
    gx = cols[..., 2:] - cols[..., :-2]
    rows = p[..., :-2] + p[..., 1:-1]
    rows.add_(p[..., 2:])  # 3-column sums
    gy = rows[:, :, 2:] - rows[:, :, :-2]
    m = gx * gx
    return m.addcmul_(gy, gy)


def safe_sqrt(x: Any, grad: bool) -> Any:
    """``√x``; on a gradient path its gradient at 0 is 0 instead of ``inf·0 = NaN`` (flat
    regions, identical images)."""
    import torch

    if not grad:
        return x.sqrt()
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def similarity_map(m1: Any, m2: Any, c: float, alpha: float, grad: bool) -> Any:
    """``((2 − α)·g₁g₂ + c) / (g₁² + g₂² − α·g₁g₂ + c)`` from :func:`gradient_sq`'s
    ``m = 9g²`` (so the constant is taken 9 times; α = 0: GMSD; MS-GMSD masks with α = 0.5).
    Without a gradient to record, ``m1`` and ``m2`` are overwritten.

    Where the two gradients are equal the map is exactly 1 (so identical images score
    exactly 0): there ``g₁g₂`` is taken as ``(m1 + m2)/2`` (= m exactly, and the derivative
    of ``√(m1·m2)`` there), since the rounded ``√(m·m)`` can miss m by an ulp; and the
    denominator is formed as ``(m1 + m2 − α·g₁g₂) + c`` so that it rounds as the numerator
    ``(2 − α)·g₁g₂ + c`` does.
    """
    import torch

    c = c * PREWITT_GAIN
    g12 = safe_sqrt(m1 * m2, grad)
    equal = m1 == m2
    g12 = torch.where(equal, (m1 + m2) * 0.5, g12) if grad else torch.where(equal, m1, g12)
    if grad:
        den = m1 + m2
        if alpha:
            den = den - alpha * g12
        return ((2.0 - alpha) * g12 + c) / (den + c)
    den = m1.add_(m2)  # m1, m2 are not needed any more
    if alpha:
        den.sub_(g12, alpha=alpha)
    return g12.mul_(2.0 - alpha).add_(c).div_(den.add_(c))


def deviation_sq(gms: Any) -> Any:
    """The population variance of each image's map (length N), in two passes as piq (the
    mean, then the mean squared deviation; ``torch.var`` is ten times slower on the CPU)."""
    d = gms - gms.mean(dim=(1, 2, 3), keepdim=True)
    return (d * d).mean(dim=(1, 2, 3))


def deviation(gms: Any, grad: bool) -> Any:
    """The population standard deviation of each image's map (length N)."""
    return safe_sqrt(deviation_sq(gms), grad)
