"""Peak signal-to-noise ratio: its (empty) options, public function and kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.io import Pair
from iqa.options import Conventions, ImageOptions, Options

__all__ = ["PSNROptions", "compute_psnr", "psnr"]


@dataclass(frozen=True)
class PSNROptions(Options):
    """PSNR has no parameters beyond the image layer's and the conventions."""

    metric = "psnr"


def psnr(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    color: str = "rgb",
    crop_border: int = 0,
) -> Any:
    """Peak signal-to-noise ratio in dB: ``10·log10(R² / MSE)``.

    One MSE over all pixels and channels of an image; a batch gives one value per image.
    Identical images give ``inf`` (no epsilon is added).

    Args:
        reference: the pristine image: a path, a NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or a torch tensor (``C×H×W``, ``N×C×H×W``).
        distorted: the image being scored, in the same form and size.
        data_range: the peak value R; implied by uint8 (255) and uint16 (65535), required
            for float input.
        bit_depth: for 10- or 12-bit data stored as uint16 (R = 2**bit_depth - 1).
        alpha: ``"error"``, ``"drop"`` or ``"keep"``; see :func:`iqa.io.prepare_pair`.
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        color: ``"rgb"`` (channels as given) or ``"y"`` (BT.601 luma on the 0–255 scale,
            scored with R = 255).
        crop_border: pixels removed from every edge before the colour conversion.

    Returns:
        A Python float for paths and single NumPy images, a float64 array for a NumPy
        batch, a tensor for tensors (differentiable, in the input's float dtype).

    Raises:
        ImageLoadError, ShapeError, RangeError: from the image layer.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((8, 8), np.uint8); b = a.copy(); b[0, 0] = 255
        >>> round(psnr(a, b), 4)
        18.0618

    References: Huynh-Thu & Ghanbari, "Scope of validity of PSNR in image/video quality
    assessment", Electronics Letters 2008.
    Matches: ``skimage.metrics.peak_signal_noise_ratio(ref, dist, data_range=R)``.
    """
    from iqa.pairwise import evaluate

    return evaluate(
        "psnr", reference, distorted,
        image=ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range),
        conventions=Conventions(color=color, crop_border=crop_border),
        options=PSNROptions(),
    )


def compute_psnr(pair: Pair, options: PSNROptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The PSNR kernel: ``(values, None)`` of a prepared pair (conventions applied), one value
    per image (NumPy float64 array or tensor).

    NumPy input, and CPU tensors that need no gradient, go through one float64 kernel (the
    tensor's result is returned in its own dtype); tensors that need a gradient, or live on
    a GPU, use torch operations.
    """
    ref, dist = pair.reference, pair.distorted
    peak = pair.data_range**2
    if pair.backend == "numpy":
        if pair.unchecked is not None:
            mse = _mse_checked(pair)
        elif ref.dtype in _OPENCV_DTYPES:
            mse = _mse_opencv(ref, dist)
        else:
            mse = _mse_numpy(ref, dist)
        # Identical images give inf, an infinite MSE (overflowing differences) -inf: no warning.
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(peak / mse), None
    import torch

    needs_grad = torch.is_grad_enabled() and (ref.requires_grad or dist.requires_grad)
    if not needs_grad and ref.device.type == "cpu" and ref.dtype in (torch.float32, torch.float64):
        mse = _mse_numpy(ref.detach().numpy(), dist.detach().numpy())
        with np.errstate(divide="ignore"):
            return torch.from_numpy(10.0 * np.log10(peak / mse)).to(ref.dtype), None
    mse = (ref - dist).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(peak / mse), None


#: Elements per chunk of the float32 MSE kernel: the two float64 buffers (256 KiB each)
#: stay in a core's L2 (measured on 512² RGB: 16,384 0.61 ms, 32,768 0.56, 65,536 0.56,
#: 131,072 0.86).
_CHUNK = 1 << 15


#: Sample types whose MSE OpenCV's ``norm(NORM_L2SQR)`` computes: integers (squared in
#: integer SIMD, no float copy of the images) and float64. float32 stays on iqa's own kernel,
#: which forms its differences in float64.
_OPENCV_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float64))


def _mse_opencv(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Mean squared difference of each image of two same-shape batches (uint8, uint16 or
    float64) by OpenCV's ``norm(NORM_L2SQR)``: the squared differences are summed in SIMD
    blocks added in float64, within 1e-15 relative of the exact sum (tested against
    ``math.fsum``), as close as a float64 mean gets; for integers the sum is then rounded to
    the exact integer sum (tested).
    """
    import cv2

    if ref.dtype == np.float64:
        # In _mse_checked's blocks and order: iqa.psnr and iqa score give the same bits.
        return _block_sums(np.ascontiguousarray(ref), np.ascontiguousarray(dist)) / ref[0].size
    n, h = ref.shape[:2]
    size = ref[0].size
    # N planes of H×(W·C), one channel: OpenCV takes any width. Views of the prepared
    # pair, which is C-contiguous (reshape would copy an array that is not).
    ref = ref.reshape(n, h, -1)
    dist = dist.reshape(n, h, -1)
    sums = [cv2.norm(ref[i], dist[i], cv2.NORM_L2SQR) for i in range(n)]
    if ref.dtype.kind in "ui":
        # The exact sum is an integer, OpenCV's within 1e-15 of it: rounding gives it back
        # (identical images against an offset of 255 give exactly 65025, never 65025.00000001).
        sums = [float(round(s)) for s in sums]
    return np.array(sums) / size


#: Elements per block of :func:`_mse_checked`: two blocks of float64 take 1 MiB, half a
#: core's L2, so the min and max are taken from cache after the MSE has read them from
#: memory (measured on 512² RGB: 2^16 0.93 ms, 2^15 0.96, 2^17 1.00, 2^18 1.25).
_CHECK_BLOCK = 1 << 16


def _block_sums(ref: np.ndarray, dist: np.ndarray, on_block: Any = None) -> np.ndarray:
    """Per image, the sum of squared differences of two C-contiguous float64 batches: OpenCV's
    ``norm(NORM_L2SQR)`` of each pair of :data:`_CHECK_BLOCK`-element blocks, added in order;
    ``on_block(r, d)`` sees each pair of blocks while it is in cache."""
    import cv2

    n = ref.shape[0]
    sums = np.empty(n)
    for i in range(n):
        r = ref[i].reshape(-1)  # views: C-contiguous
        d = dist[i].reshape(-1)
        total = 0.0
        for k in range(0, r.size, _CHECK_BLOCK):
            blocks = r[k : k + _CHECK_BLOCK], d[k : k + _CHECK_BLOCK]
            total += cv2.norm(*blocks, cv2.NORM_L2SQR)
            if on_block is not None:
                on_block(*blocks)
        sums[i] = total
    return sums


def _mse_checked(pair: Pair) -> np.ndarray:
    """The MSE of a float64 pair whose values the image layer left unchecked
    (:attr:`~iqa.io.Pair.unchecked`), checked here on the way: block by block
    (:func:`_block_sums`, the sums :func:`_mse_opencv` makes too), the min and max of each
    block are taken while it is in cache after OpenCV's norm has read it. The verdict is the
    image layer's (:func:`iqa.io.judge_bounds`): same errors, warnings and tolerance.
    Without the range check, a finite MSE proves every value finite; a NaN or infinite one
    sends both images to the image layer's element-wise check.
    """
    from iqa import io

    check_range, warn = pair.unchecked
    mins: list[list[float]] = [[], []]
    maxs: list[list[float]] = [[], []]

    def bounds_of(*blocks: np.ndarray) -> None:
        for j, block in enumerate(blocks):
            mins[j].append(block.min())
            maxs[j].append(block.max())

    sums = _block_sums(pair.reference, pair.distorted, bounds_of if check_range else None)
    if check_range:
        # np.min and np.max propagate NaN (Python's min and max would drop it).
        bounds = [(float(np.min(lo)), float(np.max(hi))) for lo, hi in zip(mins, maxs)]
        io.judge_bounds(list(pair.names), bounds, pair.data_range, warn)
    elif not np.isfinite(sums).all():
        pair.checked()  # the image layer's element-wise check names the input (or finds none)
    return sums / pair.reference[0].size


def _mse_numpy(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Mean squared difference of each image of two same-shape batches, in float64.

    Both images are copied to float64 (exact) in two buffers of at most :data:`_CHUNK`
    elements and OpenCV's ``norm(NORM_L2SQR)`` forms the differences in float64 (exact for
    float32 input) and sums their squares (float64 SIMD blocks, single-threaded), so no
    image-sized temporary is made: a large image goes through chunk by chunk, small ones
    as many at a time as fill a buffer (one copy for a small batch). (NumPy's mixed-type
    subtract casts through its own small buffers, and its dot would wake OpenBLAS's threads
    on chunks this size.)
    """
    import cv2

    n, size = ref.shape[0], ref[0].size
    sums = np.empty(n)
    if size <= _CHUNK:
        group = min(n, _CHUNK // size)
        x, y = np.empty((group, size)), np.empty((group, size))
        for i0 in range(0, n, group):
            m = min(group, n - i0)
            x[:m].reshape(ref[i0 : i0 + m].shape)[...] = ref[i0 : i0 + m]
            y[:m].reshape(dist[i0 : i0 + m].shape)[...] = dist[i0 : i0 + m]
            for j in range(m):
                sums[i0 + j] = cv2.norm(x[j], y[j], cv2.NORM_L2SQR)
        return sums / size
    x, y = np.empty(_CHUNK), np.empty(_CHUNK)
    for i in range(n):
        r = np.ravel(ref[i])  # a view for contiguous images
        d = np.ravel(dist[i])
        total = 0.0
        for k in range(0, size, _CHUNK):
            m = min(_CHUNK, size - k)
            x[:m] = r[k : k + m]
            y[:m] = d[k : k + m]
            total += cv2.norm(x[:m], y[:m], cv2.NORM_L2SQR)
        sums[i] = total
    return sums / size
