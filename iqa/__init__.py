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

__version__ = "0.2.0"

# Public name -> module that defines it. Modules are imported on first attribute access.
_EXPORTS = {
    "Conventions": "iqa.options",
    "FIDOptions": "iqa.set_metrics",
    "FIDStatistics": "iqa.distribution.statistics",
    "IQAError": "iqa.errors",
    "IQAWarning": "iqa.errors",
    "ImageLoadError": "iqa.errors",
    "ImageOptions": "iqa.options",
    "KIDOptions": "iqa.set_metrics",
    "LPIPS": "iqa.metrics.lpips_net",
    "LPIPSOptions": "iqa.metrics.lpips",
    "MSSSIMOptions": "iqa.metrics.ms_ssim",
    "OptionError": "iqa.errors",
    "PSNROptions": "iqa.metrics.psnr",
    "PairScore": "iqa.scoring",
    "RangeError": "iqa.errors",
    "SSIMOptions": "iqa.metrics.ssim",
    "ScoreStats": "iqa.scoring",
    "Scorer": "iqa.scoring",
    "ShapeError": "iqa.errors",
    "WeightsError": "iqa.errors",
    "compute_statistics": "iqa.set_metrics",
    "fid": "iqa.set_metrics",
    "frechet_distance": "iqa.distribution.frechet",
    "iter_scores": "iqa.scoring",
    "kid": "iqa.set_metrics",
    "lpips": "iqa.metrics.lpips",
    "ms_ssim": "iqa.metrics.ms_ssim",
    "pair_folders": "iqa.scoring",
    "psnr": "iqa.metrics.psnr",
    "read_image": "iqa.decode",
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
