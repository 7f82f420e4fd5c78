"""iqa: image quality metrics that match the reference implementations.

PSNR, SSIM, MS-SSIM, LPIPS, FID and KID behind one image layer. ``import iqa`` is light:
metrics, torch and scipy load on first use (PEP 562).

Example:
    >>> import iqa
    >>> iqa.psnr("reference.png", "distorted.png")  # doctest: +SKIP
    31.42...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it. Modules are imported on first attribute access.
_EXPORTS = {
    "IQAError": "iqa.errors",
    "IQAWarning": "iqa.errors",
    "FIDStatistics": "iqa.metrics.fid",
    "ImageLoadError": "iqa.errors",
    "LPIPS": "iqa.metrics.lpips",
    "RangeError": "iqa.errors",
    "ShapeError": "iqa.errors",
    "WeightsError": "iqa.errors",
    "PairScore": "iqa.scoring",
    "ScoreStats": "iqa.scoring",
    "Scorer": "iqa.scoring",
    "compute_statistics": "iqa.metrics.fid",
    "fid": "iqa.metrics.fid",
    "frechet_distance": "iqa.metrics.fid",
    "iter_scores": "iqa.scoring",
    "kid": "iqa.metrics.fid",
    "lpips": "iqa.metrics.lpips",
    "ms_ssim": "iqa.metrics.ssim",
    "psnr": "iqa.metrics.psnr",
    "pair_folders": "iqa.scoring",
    "read_image": "iqa.io",
    "score_folders": "iqa.scoring",
    "ssim": "iqa.metrics.ssim",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'iqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
