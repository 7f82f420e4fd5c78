"""PSNR, SSIM and MS-SSIM: iqa against scikit-image, pytorch-msssim, piq and torchmetrics.

On 512×512 RGB images, batch 1 and 16, through the NumPy path (float64 arrays, the
reported numbers) and the torch path (float32 tensors on the CPU, no gradient). Every
implementation runs in this one process, one after the other, so that all of them see the
same machine load, in interleaved rounds (each round times every implementation of a row in
turn, the order reversed every other round; after a warm-up call, a fast call is repeated
to fill about 50 ms of a round and timed per call); the table prints the median time per call and its spread (min–max over the rounds),
the ratio of the medians, peer / iqa (> 1: iqa is faster), and the largest difference
between the two sides' values.

Peers are called with the settings that reproduce iqa's numbers where one exists (see
docs/conventions.md); a "≠" marks a peer whose convention differs by design, so its
difference is not an error.

* scikit-image: ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0, channel_axis=-1)``, one image at a time
  (it has no batch API), and ``peak_signal_noise_ratio(data_range=1.0)`` (on uint8 images: its
  default range, 255).
* OpenCV: ``cv2.PSNR`` on uint8 images (its default peak, 255).
* pytorch-msssim: ``ssim``/``ms_ssim(data_range=1.0, size_average=False)``; on the NumPy
  rows (MS-SSIM has no NumPy peer) it gets float64 tensors and a float64 window.
* piq: ``ssim(downsample=False)``, ``multi_scale_ssim``, ``psnr``, ``reduction="none"``.
* torchmetrics: the functional ``structural_similarity_index_measure``,
  ``multiscale_structural_similarity_index_measure`` and ``peak_signal_noise_ratio``
  with ``data_range=1.0, reduction="none"`` (≠: its SSIM averages over the reflect-padded
  full image; its MS-SSIM does not clamp).

Usage: ``python benchmarks/bench_classic.py [--rounds 7] [--batch 16] [--metrics psnr,ssim,ms-ssim]``
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any, Callable

import numpy as np


def make_images(n: int, size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random scenes with texture in [0, 1], and a blurred, noisy copy."""
    import cv2

    rng = np.random.default_rng(seed)
    ref = np.empty((n, size, size, 3))
    dist = np.empty_like(ref)
    for i in range(n):
        coarse = rng.random((size // 16, size // 16, 3))
        img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
        ref[i] = img
        blurred = cv2.GaussianBlur(img, (5, 5), 1.0)
        dist[i] = np.clip(blurred + 0.03 * rng.standard_normal(img.shape), 0, 1)
    return ref, dist


def as_array(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().double().cpu().numpy()
    return np.atleast_1d(np.asarray(v, dtype=np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median and spread are printed)")
    parser.add_argument("--batch", type=int, default=16, help="the large batch size")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--metrics", default="psnr,ssim,ms-ssim", help="comma-separated subset")
    args = parser.parse_args()
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import interleaved, machine_line, median, spread

    print(machine_line())

    import cv2
    import piq
    import pytorch_msssim
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure as tm_ms_ssim,
        peak_signal_noise_ratio as tm_psnr,
        structural_similarity_index_measure as tm_ssim,
    )

    import iqa
    from iqa.metrics.ssim import gaussian_window

    warnings.simplefilter("ignore")  # peers' deprecation notices would interleave with the table
    ref_all, dist_all = make_images(args.batch, args.size)
    win64 = torch.from_numpy(gaussian_window(11, 1.5)).view(1, 1, 1, -1).repeat(3, 1, 1, 1)

    def sk_ssim(a, b):
        return [
            structural_similarity(
                a[i], b[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, channel_axis=-1,
            )
            for i in range(a.shape[0])
        ]

    def sk_psnr(a, b):
        return [peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(a.shape[0])]

    print(
        f"iqa {iqa.__version__} | torch {torch.__version__} ({torch.get_num_threads()} threads) | "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads) | CPUs {os.cpu_count()} | "
        f"{args.size}×{args.size} RGB"
    )
    header = (f"{'metric':8} {'path':18} {'N':>3}  {'peer':34} {'iqa ms, median (spread)':>27} "
              f"{'peer ms, median (spread)':>27} {'ratio':>7}  {'max |Δ|':>9}")
    print(header)
    print("-" * len(header))

    ratios: dict[tuple[str, str, int, str], tuple[float, float]] = {}
    for batch in (1, args.batch):
        a64, b64 = ref_all[:batch], dist_all[:batch]
        t64a = torch.from_numpy(np.ascontiguousarray(a64.transpose(0, 3, 1, 2)))
        t64b = torch.from_numpy(np.ascontiguousarray(b64.transpose(0, 3, 1, 2)))
        t32a, t32b = t64a.float(), t64b.float()
        a8, b8 = np.rint(a64 * 255).astype(np.uint8), np.rint(b64 * 255).astype(np.uint8)

        rows: list[tuple[str, str, Callable[[], Any], list[tuple[str, Callable[[], Any], bool]]]] = [
            ("psnr", "numpy float64", lambda: iqa.psnr(a64, b64, data_range=1.0), [
                ("scikit-image", lambda: sk_psnr(a64, b64), True),
            ]),
            ("psnr", "numpy uint8", lambda: iqa.psnr(a8, b8), [
                ("scikit-image", lambda: [peak_signal_noise_ratio(a8[i], b8[i]) for i in range(len(a8))], True),
                ("cv2.PSNR", lambda: [cv2.PSNR(a8[i], b8[i]) for i in range(len(a8))], True),
            ]),
            # One image per call, a different pair each time (a list of images scored one by
            # one): the pixels come from memory, not from the cache the previous call filled.
            ("psnr", "numpy uint8 1/call", lambda: [iqa.psnr(a8[i], b8[i]) for i in range(len(a8))], [
                ("cv2.PSNR", lambda: [cv2.PSNR(a8[i], b8[i]) for i in range(len(a8))], True),
            ]),
            ("psnr", "torch float32", lambda: iqa.psnr(t32a, t32b, data_range=1.0), [
                ("piq", lambda: piq.psnr(t32a, t32b, data_range=1.0, reduction="none"), True),
                ("torchmetrics", lambda: tm_psnr(t32a, t32b, data_range=1.0, reduction="none", dim=(1, 2, 3)), True),
            ]),
            ("ssim", "numpy float64", lambda: iqa.ssim(a64, b64, data_range=1.0), [
                ("scikit-image structural_similarity", lambda: sk_ssim(a64, b64), True),
            ]),
            ("ssim", "torch float32", lambda: iqa.ssim(t32a, t32b, data_range=1.0), [
                ("pytorch-msssim", lambda: pytorch_msssim.ssim(t32a, t32b, data_range=1.0, size_average=False), True),
                ("piq (downsample=False)", lambda: piq.ssim(t32a, t32b, data_range=1.0, downsample=False, reduction="none"), True),
                ("torchmetrics ≠", lambda: tm_ssim(t32a, t32b, data_range=1.0, reduction="none"), False),
            ]),
            ("ms-ssim", "numpy float64", lambda: iqa.ms_ssim(a64, b64, data_range=1.0), [
                ("pytorch-msssim (float64 tensors)", lambda: pytorch_msssim.ms_ssim(
                    t64a, t64b, data_range=1.0, size_average=False, win=win64), True),
            ]),
            ("ms-ssim", "torch float32", lambda: iqa.ms_ssim(t32a, t32b, data_range=1.0), [
                ("pytorch-msssim", lambda: pytorch_msssim.ms_ssim(t32a, t32b, data_range=1.0, size_average=False), True),
                ("piq", lambda: piq.multi_scale_ssim(t32a, t32b, data_range=1.0, reduction="none"), True),
                ("torchmetrics ≠", lambda: tm_ms_ssim(t32a, t32b, data_range=1.0, reduction="none"), False),
            ]),
        ]
        for metric, path, ours, peers in rows:
            if metric not in args.metrics.split(",") or (path.endswith("1/call") and batch == 1):
                continue
            with torch.no_grad():
                # Keyed by name: a row's peers have distinct names, none of them "iqa".
                times, outs = interleaved({"iqa": ours, **{name: fn for name, fn, _c in peers}}, args.rounds,
                                          target=0.05)
                t_ours = median(times["iqa"])
                for name, _fn, _comparable in peers:
                    t_peer = median(times[name])
                    diff = np.max(np.abs(as_array(outs["iqa"]) - as_array(outs[name])))
                    ratios[(metric, path, batch, name)] = (t_peer / t_ours, diff)
                    print(
                        f"{metric:8} {path:18} {batch:>3}  {name:34} {spread(times['iqa'], unit=''):>27} "
                        f"{spread(times[name], unit=''):>27} {t_peer / t_ours:6.2f}×  {diff:9.1e}",
                        flush=True,
                    )
    print("ratio = median peer time / median iqa time (higher is better for iqa); ≠ = different convention by design")
    # (metric, path, N, peer, minimum ratio, target ratio, |Δ| bound). The bounds are the
    # acceptance criteria of the speed work: float32 tensors filter the moments in float32
    # (5e-4); float64 NumPy differs from scikit-image by round-off only (measured ~1e-15), and
    # tests/metrics/test_ssim.py holds it to 1e-9.
    checks = [
        ("ssim", "torch float32", args.batch, "pytorch-msssim", 2.0, 5.0, 5e-4),
        ("ms-ssim", "torch float32", args.batch, "pytorch-msssim", 2.0, 5.0, 5e-4),
        ("psnr", "numpy uint8", 1, "scikit-image", 1.0, 10.0, 1e-12),
        ("psnr", "numpy uint8", 1, "cv2.PSNR", 0.5, 0.5, 1e-12),
        ("psnr", "numpy uint8 1/call", args.batch, "cv2.PSNR", 0.5, 0.5, 1e-12),
        ("psnr", "numpy float64", 1, "scikit-image", 1.0, 1.0, 1e-12),
        ("ssim", "numpy float64", 1, "scikit-image structural_similarity", 1.5, 3.0, 1e-6),
        ("ssim", "numpy float64", args.batch, "scikit-image structural_similarity", 1.5, 3.0, 1e-6),
    ]
    print("\nacceptance (ratio >= minimum, target; |Δ| within tolerance):")
    for metric, path, batch, peer, minimum, target, tol in checks:
        if (metric, path, batch, peer) not in ratios:
            continue
        ratio, diff = ratios[(metric, path, batch, peer)]
        verdict = "ok" if ratio >= minimum and diff <= tol else "FAIL"
        print(
            f"  {metric} {path} N={batch} vs {peer}: {ratio:.2f}× (minimum {minimum}×, target "
            f"{target}×), |Δ| {diff:.1e} <= {tol:.0e}: {verdict}"
        )


if __name__ == "__main__":
    main()
