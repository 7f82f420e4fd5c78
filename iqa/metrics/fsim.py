"""FSIM and FSIMc: feature similarity from phase congruency and gradient magnitude.

Both metrics share one options layout, one public-function body and one torch kernel,
:func:`compute_fsim`; FSIMc is FSIM with ``chromatic=True`` (the I and Q chrominance
similarity, weighted by λ = 0.03), and each has its own registry entry (``fsim``,
``fsimc``), differing only in that option's default.

The computation is piq's ``piq.fsim`` (itself a port of Zhang et al.'s ``FeatureSIM.m``),
step for step:

1. Pixels are rescaled to 0–255 (``x / data_range * 255``): every constant below is on that
   scale. For 16-bit input (``data_range`` 65535) the constants therefore mean 160/255 and
   200/255 of the full range, i.e. T2 = 160 is a gradient of about 41,120 raw 16-bit units;
   a uint16 image and its 8-bit quantisation ``x / 257`` give nearly the same score.
2. Automatic downsampling: an f×f average pooling (``avg_pool2d``, stride f, trailing rows
   and columns that do not fill a block are dropped) with f = max(1, round(min(H, W) / 256)),
   Python's ``round`` (halves to even: 384 → 2, 640 → 2, 896 → 4). MATLAB's ``FeatureSIM.m``
   uses ``conv2(x, ones(f)/f², 'same')`` then every f-th sample, with MATLAB's rounding
   (half away from zero: 640 → 3); piq's choice is kept.
3. RGB → YIQ (:func:`iqa.color.rgb_to_yiq`: Y = 0.299 R + 0.587 G + 0.114 B, no offset);
   gray input is its own luma.
4. Phase congruency of each luma plane with a bank of ``scales × orientations`` log-Gabor
   filters built in the frequency domain (Kovesi's ``phasecong2``, FFT filtering, a
   Butterworth low-pass of cutoff 0.45 and order 15, the noise threshold estimated from the
   median response at the smallest scale, ``k`` standard deviations above the mean, divided
   by 1.7).
5. Gradient magnitude with the 3×3 Scharr operator divided by 16 (zero padding).
6. Similarities (2ab + T) / (a² + b² + T) with T1 = 0.85 (phase congruency), T2 = 160
   (gradient), T3 = T4 = 200 (I and Q); the value is Σ S_PC·S_G·PC_max [·|S_I·S_Q|^λ] /
   Σ PC_max over the (downsampled) image.

The filter bank and its noise constants depend only on the image size, the options, the
dtype and the device: they are built once and cached (piq rebuilds them, and the inverse
FFT of the bank twice, on every call). Reference and distorted luma go through one FFT
batch, in chunks that bound the memory of the complex responses.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.options import Conventions, ImageOptions, Options, check_integer, option

__all__ = ["FSIMOptions", "FSIMcOptions", "compute_fsim", "fsim", "fsimc"]

#: The constants of Zhang et al. (2011), on the 0–255 scale: phase-congruency, gradient and
#: I, Q similarity stabilisers, and the chrominance exponent λ.
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
#: Butterworth low-pass applied to every log-Gabor filter (Kovesi's ``lowpassfilter``).
LOWPASS_CUTOFF, LOWPASS_ORDER = 0.45, 15
#: Empirical rescaling of the noise threshold for the PC_2 measure (Kovesi).
NOISE_RESCALE = 1.7

#: Complex response elements (planes × orientations × scales × pixels) per chunk of the
#: phase-congruency stage: a bound on its memory (about 56 bytes × this in float64, half
#: in float32). One 512×512 pair (two 256×256 planes after the downsampling) is one chunk:
#: smaller chunks are kinder to the cache on one thread, but multiply the operations, whose
#: start-up dominates when several threads compete for busy cores.
_CHUNK_ELEMS = 1 << 21


@dataclass(frozen=True)
class FSIMOptions(Options):
    """The parameters of FSIM (piq's names and defaults). The constants T1 = 0.85,
    T2 = 160, T3 = T4 = 200 (0–255 scale) and λ = 0.03 are fixed."""

    metric = "fsim"

    chromatic: bool = option(False, "Include the I/Q chrominance similarity (FSIMc); needs RGB images.")
    scales: int = option(4, "Number of log-Gabor wavelet scales of the phase congruency.")
    orientations: int = option(4, "Number of log-Gabor filter orientations.")
    min_length: int = option(6, "Wavelength in pixels of the smallest-scale filter (at least 2).")
    mult: int = option(2, "Scaling factor between the wavelengths of successive scales.")
    sigma_f: float = option(
        0.55, "Bandwidth of the log-Gabor filters: σ of the log-Gaussian over the centre frequency, in (0, 1)."
    )
    delta_theta: float = option(
        1.2, "Angular spacing of the orientations over the σ of their angular Gaussian: positive."
    )
    k: float = option(2.0, "Noise threshold in standard deviations of the noise energy above its mean: >= 0.")

    def validate(self) -> None:
        if not isinstance(self.chromatic, (bool, np.bool_)):
            raise self._error(f"{{kw}} must be True or False, got {self.chromatic!r}", "chromatic")
        self._set("chromatic", bool(self.chromatic))
        self._set("scales", check_integer(self.metric, "scales", self.scales, minimum=1, hint="; the usual value is 4"))
        self._set(
            "orientations",
            check_integer(self.metric, "orientations", self.orientations, minimum=1, hint="; the usual value is 4"),
        )
        self._set(
            "min_length",
            check_integer(
                self.metric, "min_length", self.min_length, minimum=2,
                hint=" (a wavelength below 2 pixels is beyond the Nyquist frequency); the usual value is 6",
            ),
        )
        self._set("mult", check_integer(self.metric, "mult", self.mult, minimum=1, hint="; the usual value is 2"))
        sigma_f = _real(self.sigma_f)
        if not 0.0 < sigma_f < 1.0:
            raise self._error(
                f"{{kw}} must be a number between 0 and 1 (exclusive), got {self.sigma_f!r}; "
                "0.55 gives about two octaves of bandwidth",
                "sigma_f",
            )
        self._set("sigma_f", sigma_f)
        delta_theta = _real(self.delta_theta)
        if not (math.isfinite(delta_theta) and delta_theta > 0):
            raise self._error(
                f"{{kw}} must be a positive finite number, got {self.delta_theta!r}; the usual value is 1.2",
                "delta_theta",
            )
        self._set("delta_theta", delta_theta)
        k = _real(self.k)
        if not (math.isfinite(k) and k >= 0):
            raise self._error(f"{{kw}} must be a finite number >= 0, got {self.k!r}; the usual value is 2", "k")
        self._set("k", k)

    def constants(self) -> dict[str, Any]:
        return {
            "t1": T1,
            "t2": T2,
            "t3": T3,
            "t4": T4,
            "lambda": LAMBDA,
            "constants_scale": "0-255 (pixels rescaled by 255/data_range)",
            "downsample": "avg_pool2d by max(1, round(min(H, W)/256)), Python round",
            "luma": "YIQ Y = 0.299 R + 0.587 G + 0.114 B",
            "chroma": "YIQ I, Q of piq.functional.rgb2yiq (chromatic only)",
            "gradient": "scharr/16, zero padding",
            "lowpass": [LOWPASS_CUTOFF, LOWPASS_ORDER],
            "noise_rescale": NOISE_RESCALE,
        }


@dataclass(frozen=True)
class FSIMcOptions(FSIMOptions):
    """The parameters of FSIMc: FSIM's, with the chrominance term on by default."""

    metric = "fsimc"

    chromatic: bool = option(True, "Include the I/Q chrominance similarity (FSIMc); needs RGB images.")


def _real(value: Any) -> float:
    """``value`` as a float, or NaN for anything that is not a real number (bools included)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return math.nan


def fsim(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    chromatic: bool = False,
    scales: int = 4,
    orientations: int = 4,
    min_length: int = 6,
    mult: int = 2,
    sigma_f: float = 0.55,
    delta_theta: float = 1.2,
    k: float = 2.0,
) -> Any:
    """Feature similarity index FSIM (Zhang et al. 2011); FSIMc with ``chromatic=True``.

    Phase congruency (log-Gabor filters, ``scales × orientations``, FFT filtering) and
    Scharr gradient magnitude of the luma, compared with T1 = 0.85 and T2 = 160 and pooled
    with the larger phase congruency as weight. Pixels are rescaled to 0–255 (the constants'
    scale), average-pooled by f = max(1, round(min(H, W)/256)), and RGB images use the YIQ
    luma Y = 0.299 R + 0.587 G + 0.114 B (gray images are their own luma). With
    ``chromatic``, the I and Q similarities (T3 = T4 = 200) enter as ``|S_I·S_Q|^0.03``.
    1 for identical images; symmetric in its two arguments.

    Args:
        reference: the pristine image: a path, NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or torch tensor (``C×H×W``, ``N×C×H×W``); gray or RGB.
        distorted: the image being scored, in the same form and size.
        data_range: the peak value; the pixels are rescaled by 255/data_range, so for
            16-bit data the 0–255 constants are relative to the full 16-bit range.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"``, ``"drop"`` or ``"keep"`` (a kept alpha channel is refused:
            FSIM takes 1 or 3 channels).
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"`` (gray or RGB as given) or ``"y"`` (BT.601 luma, scored as gray with
            data range 255: a different number from the YIQ luma FSIM uses on RGB).
        crop_border: pixels removed from every edge before anything else.
        chromatic: add the chrominance term (FSIMc); needs RGB images.
        scales: number of log-Gabor scales (a positive integer).
        orientations: number of filter orientations (a positive integer).
        min_length: wavelength of the smallest-scale filter in pixels (an integer >= 2).
        mult: ratio between successive wavelengths (a positive integer).
        sigma_f: log-Gabor bandwidth, in (0, 1).
        delta_theta: orientation spacing over the angular σ (positive).
        k: noise threshold in standard deviations (>= 0).

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor in
        the input's dtype (differentiable).

    Raises:
        ShapeError: an image smaller than 2×2, 2 or 4 channels, ``chromatic`` on a gray
            image, or mismatched images.
        OptionError: an invalid option.
        RangeError, ImageLoadError: from the image layer.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> fsim(a, a)
        1.0

    References: Zhang, Zhang, Mou & Zhang, "FSIM: a feature similarity index for image
    quality assessment", IEEE TIP 20(8), 2011.
    Matches: ``piq.fsim(ref / R, dist / R, data_range=1.0, chromatic=False)`` of piq 0.8.0
    (and ``chromatic=True`` for FSIMc), with its automatic downsampling.
    """
    return _evaluate(
        "fsim", FSIMOptions, reference, distorted, data_range, bit_depth, alpha, color, crop_border,
        {"chromatic": chromatic, "scales": scales, "orientations": orientations, "min_length": min_length,
         "mult": mult, "sigma_f": sigma_f, "delta_theta": delta_theta, "k": k}, check_range,
    )


def fsimc(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    chromatic: bool = True,
    scales: int = 4,
    orientations: int = 4,
    min_length: int = 6,
    mult: int = 2,
    sigma_f: float = 0.55,
    delta_theta: float = 1.2,
    k: float = 2.0,
) -> Any:
    """FSIMc: FSIM with the chrominance term (Zhang et al. 2011); ``fsim(..., chromatic=True)``.

    The FSIM value (see :func:`fsim`) multiplied, pixel by pixel before pooling, by
    ``|S_I·S_Q|^0.03``, the similarities of the YIQ chrominance planes I and Q with
    T3 = T4 = 200 on the 0–255 scale. RGB images only.

    Args:
        reference: the pristine RGB image: a path, NumPy array (``H×W×3``, ``N×H×W×3``) or
            torch tensor (``3×H×W``, ``N×3×H×W``).
        distorted: the image being scored, in the same form and size.
        data_range: the peak value; pixels are rescaled by 255/data_range.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"``, ``"drop"`` or ``"keep"`` (a kept alpha channel is refused).
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"``; ``"y"`` leaves one channel, which FSIMc refuses.
        crop_border: pixels removed from every edge before anything else.
        chromatic: the chrominance term (on by default; off gives FSIM).
        scales: number of log-Gabor scales (a positive integer).
        orientations: number of filter orientations (a positive integer).
        min_length: wavelength of the smallest-scale filter in pixels (an integer >= 2).
        mult: ratio between successive wavelengths (a positive integer).
        sigma_f: log-Gabor bandwidth, in (0, 1).
        delta_theta: orientation spacing over the angular σ (positive).
        k: noise threshold in standard deviations (>= 0).

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor in
        the input's dtype (differentiable).

    Raises:
        ShapeError: a gray image (use :func:`fsim`), an image smaller than 2×2, 2 or 4
            channels, or mismatched images.
        OptionError: an invalid option.
        RangeError, ImageLoadError: from the image layer.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> fsimc(a, a)
        1.0

    References: Zhang, Zhang, Mou & Zhang, "FSIM: a feature similarity index for image
    quality assessment", IEEE TIP 20(8), 2011.
    Matches: ``piq.fsim(ref / R, dist / R, data_range=1.0, chromatic=True)`` of piq 0.8.0.
    """
    return _evaluate(
        "fsimc", FSIMcOptions, reference, distorted, data_range, bit_depth, alpha, color, crop_border,
        {"chromatic": chromatic, "scales": scales, "orientations": orientations, "min_length": min_length,
         "mult": mult, "sigma_f": sigma_f, "delta_theta": delta_theta, "k": k}, check_range,
    )


def _evaluate(name, cls, reference, distorted, data_range, bit_depth, alpha, color, crop_border, options, check_range=True):
    from iqa.pairwise import evaluate

    return evaluate(
        name, reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=cls(**options),
    )


def compute_fsim(pair: Pair, options: FSIMOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The FSIM/FSIMc kernel: ``(values, None)`` of a prepared pair (conventions applied),
    one value per image; ``options.chromatic`` chooses FSIMc. FSIM has no map output.

    NumPy input is computed as float64 tensors; tensors in their own dtype and device,
    differentiable.

    Raises:
        ShapeError: not 1 or 3 channels, ``chromatic`` without 3 channels, or an image
            smaller than 2×2 pixels.
    """
    from iqa.metrics.tensor_pair import from_torch, to_torch

    name = "FSIMc" if options.chromatic else "FSIM"
    channels = pair.channels
    if channels not in (1, 3):
        raise ShapeError(
            f"{pair.names[0]}: {name} takes gray (1 channel) or RGB (3 channels) images, got {channels} channels"
            + ("; drop the alpha channel with {alpha}" if channels in (2, 4) else ""),
            options={"alpha": ("alpha", "drop")},
        )
    if options.chromatic and channels != 3:
        raise ShapeError(
            f"{pair.names[0]}: FSIMc compares the I and Q chrominance of RGB images, got {channels} channel(s); "
            "score gray images (or color y) with fsim, without the chromatic term"
        )
    import torch

    ref, dist = to_torch(pair)
    h, w = int(ref.shape[2]), int(ref.shape[3])
    if min(h, w) < 2:
        raise ShapeError(
            f"{pair.names[0]}: {name} needs images of at least 2×2 pixels (its frequency grid is undefined on "
            f"a 1-pixel side), got {w}×{h}; if a border crop left it that small, pass a smaller {{crop}}",
            options={"crop": "crop_border"},
        )
    if ref.dtype in (torch.float32, torch.float64):
        values = fsim_torch(ref, dist, float(pair.data_range), options)
    else:  # half precision: the FFTs need float32 (on the CPU at least); the value comes back as given
        values = fsim_torch(ref.float(), dist.float(), float(pair.data_range), options).to(ref.dtype)
    return from_torch(pair, values), None


# --------------------------------------------------------------------------------------
# The torch kernel
# --------------------------------------------------------------------------------------


def downsample_factor(h: int, w: int) -> int:
    """piq's automatic downsampling factor: max(1, round(min(H, W) / 256)), Python's round."""
    return max(1, round(min(h, w) / 256))


def average_pool(x: Any, f: int) -> Any:
    """``torch.nn.functional.avg_pool2d(x, f)``: f×f blocks averaged, trailing rows and
    columns that do not fill a block dropped. The same sums in the same order (bit-identical
    results), as f² strided slices, which is several times faster than ``avg_pool2d`` on
    CPU."""
    h, w = x.shape[2] // f * f, x.shape[3] // f * f
    acc = x[:, :, 0:h:f, 0:w:f].clone()
    for di in range(f):
        for dj in range(f):
            if di or dj:
                acc += x[:, :, di:h:f, dj:w:f]
    return acc / (f * f)


def fsim_torch(x: Any, y: Any, data_range: float, options: FSIMOptions) -> Any:
    """FSIM (FSIMc with ``options.chromatic``) of two ``N×C×H×W`` tensors (C = 1 or 3)
    with pixels in [0, data_range]: one value per image, differentiable."""
    import torch

    from iqa.color import rgb_to_yiq

    f = downsample_factor(x.shape[2], x.shape[3])
    if f > 1:
        x, y = average_pool(x, f), average_pool(y, f)
    # The constants are on the 0–255 scale. piq rescales before pooling; pooling first does
    # the same arithmetic on a quarter of the pixels (the results differ by rounding only).
    x = x / data_range * 255
    y = y / data_range * 255
    n = x.shape[0]
    if x.shape[1] == 3:
        x_yiq, y_yiq = rgb_to_yiq(x), rgb_to_yiq(y)
        lum = torch.cat([x_yiq[:, :1], y_yiq[:, :1]])
    else:
        lum = torch.cat([x, y])
    bank = _filter_bank(
        lum.shape[2], lum.shape[3], options.scales, options.orientations, options.min_length, options.mult,
        options.sigma_f, options.delta_theta, lum.dtype, lum.device,
    )
    pc = phase_congruency(lum, bank, options.k)
    gm = gradient_magnitude(lum)
    pc_x, pc_y = pc[:n], pc[n:]
    gm_x, gm_y = gm[:n], gm[n:]
    s_pc = _similarity(pc_x, pc_y, T1)
    s_g = _similarity(gm_x, gm_y, T2)
    pc_max = torch.where(pc_x > pc_y, pc_x, pc_y)
    score = s_g * s_pc * pc_max
    if options.chromatic:
        s_i = _similarity(x_yiq[:, 1:2], y_yiq[:, 1:2], T3)
        s_q = _similarity(x_yiq[:, 2:], y_yiq[:, 2:], T4)
        score = score * torch.abs(s_i * s_q) ** LAMBDA
    return score.sum(dim=(1, 2, 3)) / pc_max.sum(dim=(1, 2, 3))


def _similarity(a: Any, b: Any, c: float) -> Any:
    return (2.0 * a * b + c) / (a**2 + b**2 + c)


def gradient_magnitude(x: Any) -> Any:
    """Scharr gradient magnitude (kernel / 16, zero padding) of ``N×1×H×W`` planes."""
    import torch
    import torch.nn.functional as F

    g = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]], dtype=x.dtype, device=x.device) / 16
    kernels = torch.stack([g, g.t()]).unsqueeze(1)
    grads = F.conv2d(x, kernels, padding=1)
    squared = torch.sum(grads**2, dim=1, keepdim=True)
    if torch.is_grad_enabled() and squared.requires_grad:
        return _safe_ops()[1](squared)
    return torch.sqrt(squared)


@functools.cache
def _safe_ops() -> tuple[Any, Any]:
    """``hypot(a, b)`` and ``sqrt(x)`` whose derivative at 0 is 0 instead of NaN (flat
    regions have zero responses and gradients; piq's gradient is NaN there). The values,
    and the derivatives elsewhere, are torch's."""
    import torch

    class SafeHypot(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, a: Any, b: Any) -> Any:
            r = torch.hypot(a, b)
            ctx.save_for_backward(a, b, r)
            return r

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            a, b, r = ctx.saved_tensors
            scale = torch.where(r > 0, grad / torch.where(r > 0, r, 1), 0)
            return scale * a, scale * b

    class SafeSqrt(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            r = torch.sqrt(x)
            ctx.save_for_backward(r)
            return r

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (r,) = ctx.saved_tensors
            return torch.where(r > 0, grad / (2 * torch.where(r > 0, r, 1)), 0)

    return SafeHypot.apply, SafeSqrt.apply


@dataclass(frozen=True)
class FilterBank:
    """The log-Gabor filters of one image size and their image-independent noise terms."""

    responses: Any  # (1, O*S, H, W) the real filters as a complex tensor, orientation-major
    orientations: int
    scales: int
    em_n: Any  # (O, 1) summed squared filter at the smallest scale
    sum_an2: Any  # (O, 1) Σ over scales and pixels of the spatial filters squared
    sum_ai_aj: Any  # (O, 1) Σ over pixels of the products of successive scales' spatial filters


def _meshgrid(h: int, w: int, dtype: Any, device: Any) -> tuple[Any, Any]:
    """Frequency coordinates centred at zero, as piq's ``get_meshgrid`` (odd sides divide by
    n - 1, as Kovesi's MATLAB code does)."""
    import torch

    def axis(n: int) -> Any:
        if n % 2:
            return torch.arange(-(n - 1) / 2, n / 2, device=device, dtype=dtype) / (n - 1)
        return torch.arange(-n / 2, n / 2, device=device, dtype=dtype) / n

    return torch.meshgrid(axis(h), axis(w), indexing="ij")


def _ifftshift(x: Any) -> Any:
    import torch

    return torch.roll(x, [-(n // 2) for n in x.shape], tuple(range(x.dim())))


@functools.lru_cache(maxsize=4)
def _filter_bank(
    h: int, w: int, scales: int, orientations: int, min_length: int, mult: int, sigma_f: float,
    delta_theta: float, dtype: Any, device: Any,
) -> FilterBank:
    """The filter bank for an H×W plane, built as piq builds it (same operations, same
    rounding), with the terms of the noise estimate that do not depend on the image."""
    import torch

    # Ordinary tensors without history, whatever the caller's mode (inference_mode tensors
    # could not enter a later differentiable computation).
    with torch.inference_mode(False), torch.no_grad():
        theta_sigma = math.pi / (orientations * delta_theta)
        grid_x, grid_y = _meshgrid(h, w, dtype, device)
        radius = torch.sqrt(grid_x**2 + grid_y**2)
        theta = torch.atan2(-grid_y, grid_x)
        lp = _ifftshift(1.0 / (1.0 + (radius / LOWPASS_CUTOFF) ** (2 * LOWPASS_ORDER)))
        radius = _ifftshift(radius)
        theta = _ifftshift(theta)
        radius[0, 0] = 1
        sintheta, costheta = torch.sin(theta), torch.cos(theta)
        log_gabor = []
        for s in range(scales):
            omega_0 = 1.0 / (min_length * mult**s)
            g = torch.exp((-torch.log(radius / omega_0) ** 2) / (2 * math.log(sigma_f) ** 2))
            g = g * lp
            g[0, 0] = 0
            log_gabor.append(g)
        log_gabor = torch.stack(log_gabor)
        spread = []
        for o in range(orientations):
            angle = o * math.pi / orientations
            ds = sintheta * math.cos(angle) - costheta * math.sin(angle)
            dc = costheta * math.cos(angle) + sintheta * math.sin(angle)
            dtheta = torch.abs(torch.atan2(ds, dc))
            spread.append(torch.exp((-(dtheta**2)) / (2 * theta_sigma**2)))
        spread = torch.stack(spread)
        filters = (spread.repeat_interleave(scales, dim=0) * log_gabor.repeat(orientations, 1, 1)).unsqueeze(0)

        # Noise terms (Kovesi): the summed squared filter at the smallest scale, and the
        # sums over the spatial filters' products that the expected noise energy needs.
        f5 = filters.view(1, orientations, scales, h, w)
        em_n = (f5[:, :, :1] ** 2).sum(dim=(-2, -1), keepdim=True)
        spatial = (torch.fft.ifft2(filters).real * math.sqrt(h * w)).view(1, orientations, scales, h, w)
        sum_an2 = torch.sum(spatial**2, dim=-3, keepdim=True)
        sum_ai_aj = torch.zeros(1, orientations, 1, h, w, dtype=dtype, device=device)
        for s in range(scales - 1):
            sum_ai_aj = sum_ai_aj + (spatial[:, :, s : s + 1] * spatial[:, :, s + 1 :]).sum(dim=-3, keepdim=True)
        sum_an2 = torch.sum(sum_an2, dim=(-1, -2), keepdim=True)
        sum_ai_aj = torch.sum(sum_ai_aj, dim=(-1, -2), keepdim=True)
        return FilterBank(
            responses=filters.to(torch.complex128 if dtype == torch.float64 else torch.complex64),
            orientations=orientations,
            scales=scales,
            em_n=em_n.view(orientations, 1),
            sum_an2=sum_an2.view(orientations, 1),
            sum_ai_aj=sum_ai_aj.view(orientations, 1),
        )


def phase_congruency(lum: Any, bank: FilterBank, k: float) -> Any:
    """Phase congruency (Kovesi's PC_2, as piq computes it) of ``B×1×H×W`` planes.

    The responses of all orientations and scales of a few planes are formed at once (fewer,
    larger operations), in chunks that bound their memory: several planes per chunk for
    small images, a group of orientations of one plane for very large ones. Where no
    gradient is wanted the same operations write into buffers reused from one chunk to the
    next (``out=``), which gives identical results without an allocation per pass.
    """
    import torch

    eps = torch.finfo(lum.dtype).eps
    b, _, h, w = lum.shape
    o_count, s_count = bank.orientations, bank.scales
    reuse = not (torch.is_grad_enabled() and lum.requires_grad)
    ws = _Workspace(lum.device, reuse)
    step = max(1, _CHUNK_ELEMS // (o_count * s_count * h * w))
    out = []
    for i in range(0, b, step):
        spectrum = torch.fft.fft2(lum[i : i + step])  # (c, 1, h, w)
        c = spectrum.shape[0]
        group = max(1, min(o_count, _CHUNK_ELEMS // (c * s_count * h * w)))
        an_all = energy_all = None
        for o0 in range(0, o_count, group):
            orients = range(o0, min(o_count, o0 + group))
            an, energy = _orientations(spectrum, bank, orients, k, eps, ws)
            an_all = an if an_all is None else an_all + an
            energy_all = energy if energy_all is None else energy_all + energy
        out.append(((energy_all + eps) / (an_all + eps)).unsqueeze(1))
    return out[0] if len(out) == 1 else torch.cat(out)


def _orientations(
    spectrum: Any, bank: FilterBank, orients: range, k: float, eps: float, ws: _Workspace
) -> tuple[Any, Any]:
    """For the orientations ``orients`` of ``c`` planes (their spectra ``c×1×H×W``): the
    summed response amplitudes and the summed thresholded energies, each ``c×H×W``."""
    import torch

    c, _, h, w = spectrum.shape
    g, s_count = len(orients), bank.scales
    grid, real = (c, g, 1, h, w), bank.em_n.dtype
    responses = bank.responses[:, orients.start * s_count : orients.stop * s_count]
    product = torch.mul(spectrum, responses, out=ws.get("product", (c, g * s_count, h, w), spectrum.dtype))
    eo = torch.fft.ifft2(product)  # (c, g·s, h, w); with out=, torch would copy into it
    # Even and odd responses as two contiguous real (c, g, s, h, w) tensors: one pass, then
    # every later pass runs on unit-stride data. Reusing, they go where the product was,
    # and the amplitudes where the responses were: no further buffer of this size.
    stacked = torch.view_as_real(eo).movedim(-1, 0).view(2, c, g, s_count, h, w)
    if ws.reuse:
        parts = torch.view_as_real(product).view(2, c, g, s_count, h, w).copy_(stacked)
        amp_out = torch.view_as_real(eo).view(-1)[: c * g * s_count * h * w].view(c, g, s_count, h, w)
    else:
        parts, amp_out = stacked.contiguous(), None
    even, odd = parts[0], parts[1]
    amp = ws.hypot(even, odd, out=amp_out)
    an = torch.sum(amp, dim=(1, 2))  # (c, h, w)
    sums = torch.sum(parts, dim=3, keepdim=True, out=ws.get("sums", (2, *grid), real))
    sum_e, sum_o = sums[0], sums[1]  # (c, g, 1, h, w)
    x_energy = ws.hypot(sum_e, sum_o, out=ws.get("x_energy", grid, real))
    x_energy = torch.add(x_energy, eps, out=ws.same(x_energy))
    mean_e = torch.div(sum_e, x_energy, out=ws.get("mean_e", grid, real))
    mean_o = torch.div(sum_o, x_energy, out=ws.same(x_energy))
    # Σ_s e·mean_e + o·mean_o - |e·mean_o - o·mean_e|, the first sum taken on the sums.
    cross = torch.mul(even, mean_o, out=ws.same(even))
    cross = torch.addcmul(cross, odd, mean_e, value=-1, out=ws.same(cross))
    cross = torch.abs(cross, out=ws.same(cross))
    energy = torch.addcmul(torch.mul(sum_e, mean_e, out=ws.same(sum_e)), sum_o, mean_o, out=ws.same(sum_e))
    cross_sum = torch.sum(cross, dim=2, keepdim=True, out=ws.get("cross", grid, real))
    energy = torch.sub(energy, cross_sum, out=ws.same(energy))  # (c, g, 1, h, w)
    # Noise: the median squared response at the smallest scale estimates its power
    # (torch.median's lower median, as piq; one contiguous row at a time: without indices
    # to track, a third faster than median(dim=-1)).
    medians = torch.stack([amp[i, j, 0].reshape(h * w).median() for i in range(c) for j in range(g)])
    threshold = _noise_threshold(medians.view(c, g).t() ** 2, bank, orients, k)  # (g, c)
    energy = torch.clamp_min(energy - threshold.t().reshape(c, g, 1, 1, 1), 0)
    return an, energy.sum(dim=(1, 2))


class _Workspace:
    """Output buffers for :func:`phase_congruency`: reused across the orientations and
    chunks of one call when no gradient is wanted, none (``out=None``: new tensors, recorded
    by autograd) otherwise, where the square roots get a zero derivative at 0."""

    def __init__(self, device: Any, reuse: bool) -> None:
        self.device = device
        self.reuse = reuse
        self._buffers: dict[str, Any] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """The buffer ``name`` of that shape and dtype, or None."""
        if not self.reuse:
            return None
        import torch

        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != dtype:
            buf = self._buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
        return buf

    def hypot(self, a: Any, b: Any, out: Any) -> Any:
        """``torch.hypot``; recorded with a zero derivative at 0 when not reusing."""
        import torch

        return torch.hypot(a, b, out=out) if self.reuse else _safe_ops()[0](a, b)

    def same(self, tensor: Any) -> Any:
        """``tensor`` itself as the output (an in-place operation), or None."""
        return tensor if self.reuse else None


def _noise_threshold(median_e2n: Any, bank: FilterBank, orients: range, k: float) -> Any:
    """The energy thresholds ``(g, planes)`` of the orientations ``orients`` from the median
    squared responses at the smallest scale ``(g, planes)``, as Kovesi and piq estimate
    them."""
    import torch

    sel = slice(orients.start, orients.stop)
    mean_e2n = -median_e2n / math.log(0.5)
    noise_power = mean_e2n / bank.em_n[sel]
    noise_energy2 = 2 * noise_power * bank.sum_an2[sel] + 4 * noise_power * bank.sum_ai_aj[sel]
    tau = torch.sqrt(noise_energy2 / 2)
    noise_energy = tau * math.sqrt(math.pi / 2)
    noise_sigma = torch.sqrt((2 - math.pi / 2) * tau**2)
    return (noise_energy + k * noise_sigma) / NOISE_RESCALE
