"""SSIM, and the kernels it shares with MS-SSIM (:mod:`iqa.metrics.ms_ssim`).

The whole computation of SSIM is here: its options, the public function, the kernel
(:func:`compute_ssim`), the Gaussian window, MATLAB's box downsampling and the two routes
that compute the local statistics.

Kernels:
    NumPy input is computed in float64 with OpenCV's separable filter, one channel of one
    image (a plane) at a time, in bands of rows with reused buffers, so that the working
    set stays in cache and the scratch memory does not grow with the image. Planes are
    spread over a small thread pool (OpenCV and NumPy release the GIL) whose size is
    OpenCV's thread setting, capped by the CPUs available: ``cv2.setNumThreads(1)`` makes
    iqa single-threaded. Tensors that need no gradient and live on the CPU take the same
    route in their own dtype; tensors that need a gradient (or live on a GPU) go through
    ``torch.nn.functional.conv2d``, image by image. All routes compute the same formula
    over the valid region only.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import OptionError, ShapeError
from iqa.io import Pair
from iqa.options import Conventions, ImageOptions, Options, option, renamed_keyword

__all__ = ["K1", "K2", "SSIMOptions", "compute_ssim", "gaussian_window", "ssim", "ssim_map_view"]

#: The stabilising constants: C1 = (K1·L)², C2 = (K2·L)².
K1, K2 = 0.01, 0.03


def check_win_size(win_size: Any, metric: str | None = None) -> int:
    """``win_size`` as an int, or an :class:`OptionError`: it must be an odd positive integer."""
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral) or win_size < 1 or win_size % 2 == 0:
        raise OptionError(
            f"{{kw}} must be odd and positive, got {win_size!r}; the usual window is 11",
            options={"kw": "win_size"}, metric=metric,
        )
    return int(win_size)


def check_sigma(sigma: Any, metric: str | None = None) -> float:
    """``sigma`` as a float, or an :class:`OptionError`.

    It must be a positive finite number whose window is finite: the centre tap is
    ``exp(-0 / 2σ²)``, which is 0/0 once 2σ² underflows to 0 (σ below about 1e-162).
    Above that, taps that underflow are exact zeros and the window stays well defined.
    """
    s = float(sigma) if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) else math.nan
    if not (math.isfinite(s) and s > 0 and 2.0 * s * s > 0):
        raise OptionError(
            "{kw} must be a positive finite number large enough that the Gaussian window is "
            f"finite (2·sigma² must not underflow to 0, about 1e-162), got {sigma!r}; the usual sigma is 1.5",
            options={"kw": "sigma"}, metric=metric,
        )
    return s


WIN_SIZE_HELP = "Odd size of the Gaussian window."
SIGMA_HELP = "Standard deviation of the Gaussian window: positive and finite."


@dataclass(frozen=True)
class SSIMOptions(Options):
    """The parameters of SSIM (the constants K1 = 0.01, K2 = 0.03 are fixed)."""

    metric = "ssim"

    win_size: int = option(11, WIN_SIZE_HELP)
    sigma: float = option(1.5, SIGMA_HELP)
    downsample: bool = option(False, "MATLAB ssim.m's automatic downsampling by round(min(H, W)/256).")

    def validate(self) -> None:
        self._set("win_size", check_win_size(self.win_size, self.metric))
        self._set("sigma", check_sigma(self.sigma, self.metric))
        if not isinstance(self.downsample, (bool, np.bool_)):
            raise self._error(f"{{kw}} must be True or False, got {self.downsample!r}", "downsample")
        self._set("downsample", bool(self.downsample))

    def constants(self) -> dict[str, Any]:
        return {"k1": K1, "k2": K2, "window": "gaussian"}


def ssim(
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
    downsample: bool = False,
    return_map: bool = False,
    full: bool | None = None,
) -> Any:
    """Structural similarity (Wang et al. 2004).

    An ``win_size``-tap Gaussian window (σ = ``sigma``), K1 = 0.01, K2 = 0.03, population
    (biased) covariances, the mean of the SSIM map over the valid region (no padding), and
    channels averaged.

    Args:
        reference: the pristine image: a path, NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or torch tensor (``C×H×W``, ``N×C×H×W``).
        distorted: the image being scored, in the same form and size.
        data_range: the peak value L (C1 = (K1·L)², C2 = (K2·L)²); implied by integer dtypes.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"``, ``"drop"`` or ``"keep"``.
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"`` or ``"y"`` (BT.601 luma, scored with L = 255).
        crop_border: pixels removed from every edge before the colour conversion.
        win_size: odd Gaussian window size (a positive integer).
        sigma: Gaussian standard deviation: a positive finite number large enough that the
            window is finite (2·sigma² must not underflow to 0, i.e. about 1e-162 or more).
            A very small sigma gives a window that is numerically a single tap, so SSIM
            compares pixel by pixel, as ``win_size=1`` does.
        downsample: MATLAB ``ssim.m``'s automatic downsampling: an f×f box filter with
            symmetric edges then every f-th pixel, f = max(1, round(min(H, W) / 256)).
        return_map: also return the SSIM map of the valid region (``N×H'×W'×C`` for NumPy,
            ``N×C×H'×W'`` for tensors; without the batch dimension for a single image).
        full: the former name of ``return_map`` (scikit-image's); deprecated.

    Returns:
        A float (paths, a single NumPy image), a float64 array (NumPy batch) or a tensor;
        with ``return_map=True`` a tuple ``(value, map)``.

    Raises:
        ShapeError: an image smaller than the window, or mismatched images.
        RangeError, ImageLoadError: from the image layer.
        OptionError: an even or non-positive ``win_size``, or an invalid ``sigma``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        >>> ssim(a, a)
        1.0

    References: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 2004.
    Matches: ``skimage.metrics.structural_similarity(ref, dist, data_range=L,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)``;
    with ``downsample=True``, Wang's ``ssim.m``.
    """
    from iqa.pairwise import evaluate

    if full is not None:
        return_map = renamed_keyword("full", "return_map", full)
    return evaluate(
        "ssim", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=SSIMOptions(win_size=win_size, sigma=sigma, downsample=downsample),
        return_map=return_map,
    )


def compute_ssim(pair: Pair, options: SSIMOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, Any]:
    """The SSIM kernel: ``(values, maps)`` of a prepared pair (conventions applied), one value
    per image; ``maps`` is None unless ``want_map``."""
    win_size = options.win_size
    window = gaussian_window(win_size, options.sigma)
    h, w = image_size(pair.reference, pair.backend)
    f = max(1, math.floor(min(h, w) / 256 + 0.5)) if options.downsample else 1  # MATLAB round()
    check_window((h + f - 1) // f, (w + f - 1) // f, pair, win_size, "SSIM" if f == 1 else f"SSIM (downsampled by {f})", "ssim")
    c1, c2 = (K1 * pair.data_range) ** 2, (K2 * pair.data_range) ** 2
    planes = as_planes(pair)
    if planes is not None:
        ref, dist, restore = planes
        n, ch = ref.shape[0], ref.shape[3]
        ssim_map = None
        if want_map:
            hv, wv = (h + f - 1) // f - 2 * (win_size // 2), (w + f - 1) // f - 2 * (win_size // 2)
            ssim_map = np.empty((n, hv, wv, ch), ref.dtype)

        def job(k: int, ws: Workspace) -> float:
            i, c = divmod(k, ch)
            x, y = ref[i, :, :, c], dist[i, :, :, c]
            if f > 1:
                x, y = box_downsample_plane(x, f), box_downsample_plane(y, f)
            out = ssim_map[i, :, :, c] if want_map else None
            return plane_stats(x, y, window, c1, c2, ws, out, want_cs=False)[0]

        values = np.array(run_planes(job, n * ch), dtype=np.float64).reshape(n, ch)
        value = restore(values.mean(axis=1))
        return value, (restore(ssim_map, image=True) if want_map else None)
    ref, dist = pair.reference, pair.distorted
    if f > 1:
        ref, dist = box_downsample_torch(ref, f), box_downsample_torch(dist, f)
    ssim_c, _, ssim_map = stats_torch(ref, dist, window, c1, c2, want_map)
    return ssim_c.mean(1), ssim_map


def ssim_map_view(maps: Any, index: int, options: SSIMOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Image ``index``'s SSIM map as one plane (channels averaged) and how to draw it."""
    m = maps[index]
    plane = np.asarray(m.detach().cpu().double().permute(1, 2, 0) if hasattr(m, "detach") else m).mean(axis=-1)
    h, w = plane.shape
    return plane, {
        "vmin": min(0.0, float(plane.min())),
        "vmax": 1.0,
        "reverse": True,
        "title": f"SSIM map, valid region {w}x{h}: bright = different",
    }


# --------------------------------------------------------------------------------------
# Building blocks shared with MS-SSIM
# --------------------------------------------------------------------------------------


def image_size(x: Any, backend: str) -> tuple[int, int]:
    return (int(x.shape[1]), int(x.shape[2])) if backend == "numpy" else (int(x.shape[2]), int(x.shape[3]))


def check_window(h: int, w: int, pair: Pair, win_size: int, what: str, metric: str) -> None:
    if min(h, w) < win_size:
        raise ShapeError(
            f"{pair.names[0]}: {what} needs images of at least {win_size}×{win_size} "
            f"(the window), got {w}×{h}; pass a smaller {{kw}}",
            options={"kw": "win_size"}, metric=metric,
        )


def gaussian_window(win_size: int, sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian ``exp(-x²/2σ²)`` on ``x = -(n//2) … n//2`` (float64).

    Raises:
        OptionError: ``win_size`` is not an odd positive integer, or ``sigma`` is not a
            positive finite number with a finite window (see :func:`check_sigma`).
    """
    win_size, sigma = check_win_size(win_size), check_sigma(sigma)
    x = np.arange(win_size, dtype=np.float64) - win_size // 2
    # x²/2σ² may overflow to inf for a tiny σ: exp(-inf) = 0 is then the exact tap. A huge σ
    # makes 2σ² inf and the window flat, the Gaussian's limit.
    with np.errstate(over="ignore", under="ignore"):
        g = np.exp(-(x**2) / (2.0 * sigma * sigma))
    return g / g.sum()


def as_planes(pair: Pair):
    """NumPy channels-last views for the OpenCV route, or None for the torch route.

    NumPy input always takes the OpenCV route. A tensor takes it when it lives on the CPU and
    no gradient is wanted (computed in float32 or float64, as given); the result is turned
    back into a tensor of the input's dtype by the returned ``restore`` function.
    """
    if pair.backend == "numpy":
        return pair.reference, pair.distorted, lambda v, image=False: v
    import torch

    ref, dist = pair.reference, pair.distorted
    needs_grad = torch.is_grad_enabled() and (ref.requires_grad or dist.requires_grad)
    if needs_grad or ref.device.type != "cpu":
        return None
    dtype = ref.dtype if ref.dtype in (torch.float32, torch.float64) else torch.float32
    r = ref.detach().to(dtype).permute(0, 2, 3, 1).numpy()
    d = dist.detach().to(dtype).permute(0, 2, 3, 1).numpy()

    def restore(v: np.ndarray, image: bool = False) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(v))
        return (t.permute(0, 3, 1, 2) if image else t).to(ref.dtype)

    return r, d, restore


# --------------------------------------------------------------------------------------
# Downsampling (MATLAB imfilter(x, ones(f)/f², 'symmetric', 'same') then x(1:f:end, 1:f:end))
# --------------------------------------------------------------------------------------


def _symmetric_index(n: int, before: int, after: int) -> np.ndarray:
    """Indices of a length-n axis extended symmetrically (edge sample repeated)."""
    idx = np.arange(-before, n + after)
    idx = np.where(idx < 0, -idx - 1, idx)
    idx = np.where(idx >= n, 2 * n - idx - 1, idx)
    return idx


def _downsample_indices(n: int, f: int) -> tuple[np.ndarray, int]:
    """MATLAB ``imfilter(x, ones(f)/f², 'symmetric', 'same')`` then ``x(1:f:end)``, per axis.

    ``imfilter`` anchors an f-tap kernel at tap ``floor((f+1)/2)``, so output sample i
    averages input samples ``i·f - (c-1) … i·f + (f-c)``; there are ``ceil(n/f)`` outputs.
    Returns the indices of the extended axis (``f`` per output sample) and the output length.
    """
    c = (f + 1) // 2
    out = -(-n // f)
    return _symmetric_index(n, c - 1, f - c)[: out * f], out


def box_downsample_plane(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape
    rows, out_h = _downsample_indices(h, f)
    cols, out_w = _downsample_indices(w, f)
    if len(rows) == h and len(cols) == w and (rows == np.arange(h)).all() and (cols == np.arange(w)).all():
        xe = x  # nothing to extend: skip the gather
    else:
        xe = x[rows][:, cols]
    if f == 2:
        # Four strided views summed: one pass each, no reshape-reduction.
        return (xe[0::2, 0::2] + xe[1::2, 0::2] + xe[0::2, 1::2] + xe[1::2, 1::2]) * 0.25
    return xe.reshape(out_h, f, out_w, f).mean(axis=(1, 3))


def box_downsample_torch(x: Any, f: int) -> Any:
    import torch

    h, w = x.shape[2], x.shape[3]
    rows, out_h = _downsample_indices(h, f)
    cols, out_w = _downsample_indices(w, f)
    xe = x.index_select(2, torch.as_tensor(rows, device=x.device))
    xe = xe.index_select(3, torch.as_tensor(cols, device=x.device))
    n, ch = xe.shape[:2]
    return xe.reshape(n, ch, out_h, f, out_w, f).mean(dim=(3, 5))


# --------------------------------------------------------------------------------------
# The OpenCV kernel: one H×W plane pair at a time, planes spread over a few threads
# --------------------------------------------------------------------------------------
#
# The five local moments of SSIM (μx, μy, E[x²], E[y²], E[xy]) are obtained from four
# filtered maps of u = x + y and v = x − y, since the filter is linear:
#     μu² − μv² = 4 μx μy            μu² + μv² = 2 (μx² + μy²)
#     E[u²] − E[v²] = 4 E[xy]        E[u²] + E[v²] = 2 (E[x²] + E[y²])
# so, with A = μu² + 2C1, B = μv², P = E[u²] + 2(C1 + C2), Q = E[v²] (every term doubled,
# ratios unchanged; P's constant comes free with the filter's ``delta``):
#     luminance = (A − B) / (A + B)
#     cs        = (P − Q − (A − B)) / (P + Q − (A + B))
# One filter pass fewer than the textbook five and 14 pointwise passes; identical in exact
# arithmetic and within a few ulps in float64. A plane is processed in bands of rows (each
# band filters its own halo), so the scratch memory per thread is a few bands whatever the
# image size; the pointwise part runs over strips of a band that stay in cache, and skips
# the map a caller does not need.

#: Elements per strip of the pointwise stage (a handful of buffers of this size stay in L2).
_STRIP_ELEMS = 16384
#: Pixels per band of the filter stage (each band also filters 2p halo rows), and the
#: smallest band, which bounds the halo overhead for very wide images.
_BAND_ELEMS = 1 << 17
_BAND_MIN_ROWS = 64


class Workspace:
    """Scratch buffers reused across the planes one thread processes in one call."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype)
        return buf


def plane_stats(
    x: np.ndarray,
    y: np.ndarray,
    window: np.ndarray,
    c1: float,
    c2: float,
    ws: Workspace,
    out_map: np.ndarray | None = None,
    want_ssim: bool = True,
    want_cs: bool = True,
) -> tuple[float, float]:
    """Mean SSIM and mean cs (Python floats; NaN when not wanted) of one H×W plane pair
    over the valid region.

    ``x`` and ``y`` may be strided views (a channel of a channels-last image); they are read
    once. With ``out_map`` (an H'×W' view), the SSIM map is written into it.
    """
    import cv2

    h, w = x.shape
    dtype = x.dtype
    p = len(window) // 2
    hv, wv = h - 2 * p, w - 2 * p
    k = window.astype(dtype)
    want_ssim = want_ssim or out_map is not None
    # Reflect padding only fills rows and columns that are cropped away: every band of
    # output rows reads its own 2p halo rows, so the valid region is exact.
    border = cv2.BORDER_REFLECT
    delta = 2.0 * (c1 + c2)
    band = max(1, min(hv, max(_BAND_MIN_ROWS, _BAND_ELEMS // w)))
    shape = (band + 2 * p, w)
    bu, bv, bfu, bfv, bfuu, bfvv = (ws.get(name, shape, dtype) for name in ("u", "v", "fu", "fv", "fuu", "fvv"))
    rows = max(1, min(band, _STRIP_ELEMS // wv))
    sa, sb, sl, sd = (ws.get(name, (rows, wv), dtype) for name in ("sa", "sb", "sl", "sd"))
    two_c1 = 2.0 * c1
    ssim_sum = cs_sum = 0.0
    for b0 in range(0, hv, band):
        nb = min(band, hv - b0)
        m = nb + 2 * p
        xs, ys = x[b0 : b0 + m], y[b0 : b0 + m]
        u = np.add(xs, ys, out=bu[:m])
        v = np.subtract(xs, ys, out=bv[:m])
        fu = cv2.sepFilter2D(u, -1, k, k, dst=bfu[:m], borderType=border)
        fv = cv2.sepFilter2D(v, -1, k, k, dst=bfv[:m], borderType=border)
        np.multiply(u, u, out=u)
        np.multiply(v, v, out=v)
        fuu = cv2.sepFilter2D(u, -1, k, k, dst=bfuu[:m], delta=delta, borderType=border)
        fvv = cv2.sepFilter2D(v, -1, k, k, dst=bfvv[:m], borderType=border)
        for r0 in range(0, nb, rows):
            r1 = min(nb, r0 + rows)
            n = r1 - r0
            a, b, num, den = sa[:n], sb[:n], sl[:n], sd[:n]
            rs, cs_ = slice(p + r0, p + r1), slice(p, p + wv)
            mu, mv, pp, qq = fu[rs, cs_], fv[rs, cs_], fuu[rs, cs_], fvv[rs, cs_]
            np.multiply(mu, mu, out=a)
            a += two_c1  # A
            np.multiply(mv, mv, out=b)  # B
            np.subtract(a, b, out=num)  # luminance numerator A − B
            np.add(a, b, out=den)  # luminance denominator A + B
            np.subtract(pp, qq, out=a)
            a -= num  # cs numerator
            np.add(pp, qq, out=b)
            b -= den  # cs denominator
            np.divide(a, b, out=a)  # cs map
            if want_cs:
                cs_sum += float(a.sum())
            if want_ssim:
                np.divide(num, den, out=num)  # luminance map
                np.multiply(num, a, out=num)  # SSIM map
                ssim_sum += float(num.sum())
                if out_map is not None:
                    out_map[b0 + r0 : b0 + r1] = num
    count = hv * wv
    nan = float("nan")
    return (ssim_sum / count if want_ssim else nan), (cs_sum / count if want_cs else nan)


_POOL: Any = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _reset_pool_after_fork() -> None:
    global _POOL, _POOL_SIZE
    _POOL, _POOL_SIZE = None, 0  # the parent's worker threads do not exist in a child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _thread_budget() -> int:
    """Threads for the plane kernel: OpenCV's own setting (``cv2.setNumThreads``), capped by
    the CPUs this process may use. ``cv2.setNumThreads(1)`` makes iqa single-threaded."""
    import cv2

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cv2.getNumThreads(), cpus))


def run_planes(job: Any, count: int) -> list[Any]:
    """``[job(k, workspace) for k in range(count)]``, spread over the thread budget.

    OpenCV and NumPy release the GIL in their loops, so planes run in parallel. Each thread
    takes every t-th plane and owns one workspace; the caller's thread takes a share too.
    """
    global _POOL, _POOL_SIZE
    threads = min(_thread_budget(), count)
    if threads <= 1:
        ws = Workspace()
        return [job(k, ws) for k in range(count)]

    def share(start: int) -> list[tuple[int, Any]]:
        ws = Workspace()
        return [(k, job(k, ws)) for k in range(start, count, threads)]

    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < threads - 1:
            from concurrent.futures import ThreadPoolExecutor

            # A larger budget replaces the pool, but the old one is never shut down: another
            # caller may hold it and be about to submit (the batch scorer calls SSIM from
            # several threads). It is dropped instead; once its last caller returns it is
            # garbage-collected and its idle workers exit.
            _POOL = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="iqa-ssim")
            _POOL_SIZE = threads - 1
        pool = _POOL
    futures = [pool.submit(share, t) for t in range(1, threads)]
    parts = [share(0)] + [f.result() for f in futures]
    out: list[Any] = [None] * count
    for part in parts:
        for k, r in part:
            out[k] = r
    return out


# --------------------------------------------------------------------------------------
# The torch kernel (gradients, GPUs)
# --------------------------------------------------------------------------------------


def stats_torch(ref, dist, window, c1, c2, want_map):
    """Per image and channel SSIM and cs means of N×C×H×W tensors, differentiable.

    The same u = x + y, v = x − y formulation as the OpenCV kernel, with a separable
    ``conv2d`` over the valid region, one image at a time to keep the maps small.
    """
    import torch
    import torch.nn.functional as F

    n, ch = ref.shape[:2]
    g = torch.as_tensor(window, dtype=ref.dtype, device=ref.device)
    gw = g.view(1, 1, 1, -1).expand(4 * ch, 1, 1, -1)
    gh = g.view(1, 1, -1, 1).expand(4 * ch, 1, -1, 1)
    two_c1, two_c2 = 2.0 * c1, 2.0 * c2
    ssim_rows, cs_rows, maps = [], [], []
    for i in range(n):
        x, y = ref[i : i + 1], dist[i : i + 1]
        u, v = x + y, x - y
        stack = torch.cat([u, v, u * u, v * v], dim=1)
        f = F.conv2d(F.conv2d(stack, gw, groups=4 * ch), gh, groups=4 * ch)
        mu, mv, pp, qq = f.split(ch, dim=1)
        a, b = mu * mu, mv * mv
        cs_map = (pp - qq - (a - b) + two_c2) / (pp + qq - (a + b) + two_c2)
        ssim_map = (a - b + two_c1) / (a + b + two_c1) * cs_map
        ssim_rows.append(ssim_map.mean(dim=(2, 3)))
        cs_rows.append(cs_map.mean(dim=(2, 3)))
        if want_map:
            maps.append(ssim_map)
    return torch.cat(ssim_rows), torch.cat(cs_rows), (torch.cat(maps) if want_map else None)
