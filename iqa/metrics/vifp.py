"""VIFp: pixel-domain visual information fidelity over four scales.

Its options, public function and kernel. VIFp is LIVE's ``vifp_mscale.m`` (Sheikh & Bovik),
computed as ``piq.vif_p`` computes it: the pixels rescaled to 0–255, RGB reduced to the plain
luma ``0.299 R + 0.587 G + 0.114 B`` (:data:`iqa.color.YIQ_MATRIX`'s first row), four scales
of valid-region Gaussian statistics (17, 9, 5 and 3 taps, σ = taps / 5), a filter-and-decimate
by two between scales, and piq's stabiliser 1e-8.

Kernel:
    One torch kernel for every input (NumPy and paths in float64, tensors in their own dtype
    and device, differentiable). The Gaussian windows are separable, and each 1-D pass is a
    matrix product with a banded (Toeplitz) matrix of the taps, in blocks of
    :data:`_BLOCK` outputs: BLAS runs it several times faster than a depthwise convolution,
    and the decimation between scales is built into the band (only the kept outputs are
    computed). A pass writes its output transposed, so two passes filter both axes without
    a copy. The five local moments of a scale are filtered together; the four scales'
    moments are then laid end to end and the per-pixel formula runs once, since only the
    sums over all scales matter. A batch is scored a few images at a time
    (:data:`_CHUNK_PIXELS`) so that the working set stays in cache. Each image's luma is
    shifted by its own mean first: variances and covariances do not change, but
    ``E[x²] − μ²`` no longer cancels digits, so float32 tracks float64 on bright,
    low-contrast and flat images (piq's float32 does not, see the tests). float16 and
    bfloat16 are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iqa.errors import ShapeError
from iqa.io import Pair
from iqa.options import Conventions, ImageOptions, Options, check_positive, option

__all__ = ["EPS", "MIN_SIZE", "SIGMA_N_SQ", "VIFpOptions", "compute_vifp", "vifp"]

#: piq's (and ``vifp_mscale.m``'s) variance of the visual noise, on the 0–255 scale.
SIGMA_N_SQ = 2.0

#: piq's stabiliser, on the 0–255 scale: variances below it count as zero, the distortion
#: noise variance is at least it, and the score is ``(num + EPS) / (den + EPS)``
#: (``vifp_mscale.m`` uses 1e-10 and ``num / den``).
EPS = 1e-8

#: Window sizes of the four scales (``2**(4 - s) + 1``); each Gaussian has σ = size / 5.
WINDOWS = (17, 9, 5, 3)

#: The smallest side with at least one value at the fourth scale.
MIN_SIZE = 41

#: Output columns of one block of a banded pass (a block's band is ``(_BLOCK - 1)·stride + k``
#: inputs wide); passes with up to 1.5 blocks of output use one dense band.
_BLOCK = 128

#: Pixels per image chunk of a batch: large enough that each operation has work, small
#: enough that a chunk's moments (5 planes) stay in the last-level cache.
_CHUNK_PIXELS = 1 << 20


@dataclass(frozen=True)
class VIFpOptions(Options):
    """The parameter of VIFp: the variance of the visual noise (the four scales, windows and
    stabiliser are fixed)."""

    metric = "vifp"

    sigma_n_sq: float = option(
        SIGMA_N_SQ,
        "Variance of the visual noise on the 0-255 scale (pixels are rescaled by 255/data range "
        "first; 2.0 in vifp_mscale.m and piq): positive and finite.",
        metavar="FLOAT",
    )

    def validate(self) -> None:
        hint = "; the usual value is 2.0"
        self._set("sigma_n_sq", check_positive(self.metric, "sigma_n_sq", self.sigma_n_sq, hint=hint))

    def constants(self) -> dict[str, Any]:
        return {
            "scales": len(WINDOWS),
            "windows": list(WINDOWS),
            "window_sigma": "size/5",
            "eps": EPS,
            "luma": "0.299 R + 0.587 G + 0.114 B",
            "pixel_scale": "0-255",
        }


def vifp(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
    sigma_n_sq: float = SIGMA_N_SQ,
) -> Any:
    """Pixel-domain visual information fidelity, four scales (Sheikh & Bovik 2006).

    The information the distorted image preserves about the reference, relative to the
    information in the reference: ``Σ log10(1 + g²σ_r² / (σ_v² + σ_n²)) / Σ log10(1 + σ_r² / σ_n²)``
    over the valid pixels of four scales, with local Gaussian statistics of the reference
    (σ_r²), the gain ``g = σ_rd / σ_r²`` and the distortion noise ``σ_v² = σ_d² − g·σ_rd``.
    It is **not symmetric**: the reference goes first. 1 for identical images (up to about
    1e-9, from the stabiliser 1e-8); below 1 for losses; above 1 for a distorted image with
    more contrast than the reference. A flat reference carries no information: the score is
    then 1 whatever the distorted image (``(0 + 1e-8) / (0 + 1e-8)``, as in piq).

    Pixels are rescaled to 0–255 (``x·255 / data_range``) before anything else, so
    ``sigma_n_sq`` and the stabiliser are on the 0–255 scale whatever the bit depth: a 16-bit
    image scores as its 8-bit original (``x·257``) does, and the default ``sigma_n_sq=2.0``
    means a noise variance of ``2·(65535/255)² ≈ 1.32e5`` in 16-bit units (a standard
    deviation of about 363 codes). To give the noise variance ``v`` in the input's own units,
    pass ``sigma_n_sq = v·(255 / data_range)²``.

    RGB images are reduced to the plain luma ``0.299 R + 0.587 G + 0.114 B`` (YIQ's Y, as in
    piq; not the BT.601 Y of ``color="y"``, which has an offset and other weights); gray
    images are scored as they are.

    Args:
        reference: the pristine image: a path, NumPy array (``H×W``, ``H×W×C``, ``N×H×W×C``)
            or torch tensor (``C×H×W``, ``N×C×H×W``), gray or RGB.
        distorted: the image being scored, in the same form and size.
        data_range: the peak value of the pixels; implied by integer dtypes.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"``, ``"drop"`` or ``"keep"`` (a kept alpha channel is an error here).
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"`` (RGB reduced to the plain luma) or ``"y"`` (BT.601 luma on the
            0–255 scale, scored as a gray image).
        crop_border: pixels removed from every edge before the colour conversion.
        sigma_n_sq: the variance of the visual noise on the 0–255 scale: a positive finite
            number (2.0 in ``vifp_mscale.m`` and piq).

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable, in the input's float dtype).

    Raises:
        ShapeError: a side shorter than 41 px (after ``crop_border``), two or four channels
            (an alpha channel kept), or mismatched images.
        OptionError: ``sigma_n_sq`` not a positive finite number.
        RangeError, ImageLoadError: from the image layer.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        >>> round(vifp(ref, ref), 6)
        1.0
        >>> dist = (ref // 2).astype(np.uint8)
        >>> vifp(ref, dist) < 1 < vifp(dist, ref)  # not symmetric
        True

    References: Sheikh & Bovik, "Image information and visual quality", IEEE TIP 2006;
    LIVE's ``vifp_mscale.m`` (https://live.ece.utexas.edu/research/Quality/VIF.htm).
    Matches: ``piq.vif_p(distorted, reference, sigma_n_sq=sigma_n_sq, data_range=L,
    reduction="none")`` (piq takes the distorted image first); ``vifp_mscale(ref, dist)`` on
    gray 0–255 images to about 3e-10 (checked through sewar 0.4.6's port and the 0.2665 piq
    records for it; it uses the stabiliser 1e-10, and a flat reference gives NaN there).
    """
    from iqa.pairwise import evaluate

    return evaluate(
        "vifp", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=VIFpOptions(sigma_n_sq=sigma_n_sq),
    )


def compute_vifp(pair: Pair, options: VIFpOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The VIFp kernel: ``(values, None)`` of a prepared pair (conventions applied), one value
    per image. VIFp has no single map (its four scales have four sizes)."""
    import torch

    from iqa.color import YIQ_MATRIX
    from iqa.metrics.tensor_pair import from_torch, to_torch

    c = pair.channels
    if c not in (1, 3):
        raise ShapeError(
            f"{pair.names[0]}: VIFp takes gray or RGB images, got {c} channels (an alpha channel "
            "kept?); use {drop}",
            options={"drop": ("alpha", "drop")},
        )
    ref, dist = to_torch(pair)
    dtype = ref.dtype
    if dtype in (torch.float16, torch.bfloat16):
        # 1e-8 and the 0-255 moments (up to 65025) are out of half precision's reach.
        ref, dist = ref.float(), dist.float()
    h, w = int(ref.shape[2]), int(ref.shape[3])
    if min(h, w) < MIN_SIZE:
        raise ShapeError(
            f"{pair.names[0]}: VIFp needs images of at least {MIN_SIZE}×{MIN_SIZE} (its four scales "
            f"filter valid regions only), got {w}×{h}; no option lowers this: score larger images"
            " (or crop less with {crop})",
            options={"crop": "crop_border"},  # a convention, not a VIFp option: never prefixed
        )
    scale = 255.0 / pair.data_range
    filters = _Filters(ref.dtype, ref.device)
    chunk = max(1, _CHUNK_PIXELS // (h * w))
    values = []
    for i in range(0, ref.shape[0], chunk):
        r, d = (_luma(x[i : i + chunk], YIQ_MATRIX[0], scale) for x in (ref, dist))
        num, den = _information(r, d, options.sigma_n_sq, filters)
        values.append((num + EPS) / (den + EPS))
    return from_torch(pair, torch.cat(values).to(dtype)), None


def _luma(x: Any, weights: tuple[float, float, float], scale: float) -> Any:
    """``N×H×W`` on the 0–255 scale (plain luma of RGB), minus each image's mean.

    The mean is a constant per image, so it changes no variance or covariance (nor their
    gradients: it is detached); it only keeps ``E[x²] − μ²`` from cancelling digits.
    """
    if x.shape[1] == 3:
        kr, kg, kb = weights
        y = (x[:, 0] * kr + x[:, 1] * kg + x[:, 2] * kb) * scale
    else:
        y = x[:, 0] * scale
    return y - y.detach().mean(dim=(1, 2), keepdim=True)


def _information(r: Any, d: Any, sigma_n_sq: float, filters: _Filters) -> tuple[Any, Any]:
    """Σ over the four scales of the information the distorted image keeps (``num``) and the
    reference's information (``den``), per image, for ``N×H×W`` luma planes."""
    import torch

    n = r.shape[0]
    moments = []
    for s, k in enumerate(WINDOWS):
        if s > 0:
            rd = filters.apply(torch.cat((r, d)), k, 2)
            r, d = rd[:n], rd[n:]
        moments.append(filters.apply(torch.cat((r, d, r * r, d * d, r * d)), k, 1).reshape(5, n, -1))
    # Only the sums over all scales and pixels matter: the four scales' local moments are
    # laid end to end and the formula runs once (a quarter of the operations).
    mr, md, mrr, mdd, mrd = torch.cat(moments, dim=2)
    var_r = torch.relu(torch.addcmul(mrr, mr, mr, value=-1.0))
    var_d = torch.relu(torch.addcmul(mdd, md, md, value=-1.0))
    cov = torch.addcmul(mrd, mr, md, value=-1.0)
    ref_ok = var_r >= EPS
    # piq's chain of where()s reduced: the gain g is zeroed where either variance is below
    # EPS or g < 0, and every other branch only sets σ_v² where g = 0, whose term is 0.
    kept = ref_ok & (var_d >= EPS) & (cov > 0)
    g = cov / (var_r + EPS)
    noise = torch.clamp_min(torch.addcmul(var_d, g, cov, value=-1.0), EPS) + sigma_n_sq
    num = torch.where(kept, torch.log10(1.0 + g * g * var_r / noise), 0.0).sum(dim=1)
    den = torch.log10(1.0 + torch.where(ref_ok, var_r, 0.0) / sigma_n_sq).sum(dim=1)
    return num, den


class _Filters:
    """The separable Gaussian windows of the four scales as banded matrices, built once per
    call (per window, length and stride) and shared by the chunks of a batch."""

    def __init__(self, dtype: Any, device: Any) -> None:
        self.dtype, self.device = dtype, device
        self._bands: dict[tuple[int, int, int], Any] = {}

    def taps(self, k: int) -> Any:
        """piq's ``gaussian_filter(k, k / 5)``, one axis of it (it is an outer product)."""
        import torch

        x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2.0
        g = torch.exp(-(x * x) / (2.0 * (k / 5.0) ** 2))
        return (g / g.sum()).to(self.dtype)

    def band(self, k: int, n: int, stride: int) -> Any:
        """``(n_out, n)``: row j holds the k taps at columns ``j·stride … j·stride + k − 1``."""
        key = (k, n, stride)
        if key not in self._bands:
            import torch

            n_out = (n - k) // stride + 1
            offset = torch.arange(n)[None, :] - stride * torch.arange(n_out)[:, None]
            inside = (offset >= 0) & (offset < k)
            band = torch.where(inside, self.taps(k)[offset.clamp(0, k - 1)], 0.0)
            self._bands[key] = band.to(self.device)
        return self._bands[key]

    def apply(self, x: Any, k: int, stride: int) -> Any:
        """``N×H×W`` → the valid ``k``-tap Gaussian filtering of each plane, keeping every
        ``stride``-th output along both axes (``F.conv2d(x, w2d)[..., ::s, ::s]`` as piq)."""
        return self._pass(self._pass(x, k, stride), k, stride)

    def _pass(self, x: Any, k: int, stride: int) -> Any:
        """Filter ``P×A×L`` along its last axis; the output is ``P×L'×A`` (transposed)."""
        import torch

        length = x.shape[2]
        n_out = (length - k) // stride + 1
        xt = x.transpose(1, 2)
        if 2 * n_out <= 3 * _BLOCK:
            return torch.matmul(self.band(k, length, stride), xt)
        band = self.band(k, (_BLOCK - 1) * stride + k, stride)
        parts = []
        for j in range(0, n_out, _BLOCK):
            b = min(_BLOCK, n_out - j)
            width = (b - 1) * stride + k
            parts.append(torch.matmul(band[:b, :width], xt[:, j * stride : j * stride + width]))
        return torch.cat(parts, dim=1)
