"""iqa: image quality metrics that match the reference implementations.

PSNR, SSIM, MS-SSIM, LPIPS, FID, KID, FD-DINOv2, precision/recall/density/coverage, IS behind
one image layer. ``import iqa`` is light:
metrics, torch and scipy load on first use (PEP 562).

Example:
    >>> import iqa
    >>> iqa.psnr("reference.png", "distorted.png")  # doctest: +SKIP
    31.42...
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# OpenCV reads its pixel limit (default 2^30) once, when cv2 is first imported; every cv2
# import in iqa comes after this line. iqa checks each header against Pillow's
# MAX_IMAGE_PIXELS before decoding, and this keeps OpenCV's own limit at the same default.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "89478485")

__version__ = "0.2.0"

# Public name -> module that defines it. Modules are imported on first attribute access.
_EXPORTS = {
    "Comparison": "iqa.compare.run",
    "Conventions": "iqa.options",
    "DISTSOptions": "iqa.metrics.dists",
    "EvaluationResult": "iqa.evaluation",
    "Evaluator": "iqa.evaluation",
    "FDDINOv2Options": "iqa.set_metrics",
    "FDOptions": "iqa.set_metrics",
    "FIDOptions": "iqa.set_metrics",
    "FIDStatistics": "iqa.distribution.statistics",
    "FSIMOptions": "iqa.metrics.fsim",
    "FSIMcOptions": "iqa.metrics.fsim",
    "GMSDOptions": "iqa.metrics.gmsd",
    "HaarPSIOptions": "iqa.metrics.haarpsi",
    "IQAError": "iqa.errors",
    "ISOptions": "iqa.set_metrics",
    "IQAWarning": "iqa.errors",
    "ImageLoadError": "iqa.errors",
    "OutputError": "iqa.errors",
    "ImageOptions": "iqa.options",
    "KIDOptions": "iqa.set_metrics",
    "LPIPS": "iqa.metrics.lpips_net",
    "LPIPSOptions": "iqa.metrics.lpips",
    "MSGMSDOptions": "iqa.metrics.ms_gmsd",
    "MSSSIMOptions": "iqa.metrics.ms_ssim",
    "OptionError": "iqa.errors",
    "PRDCOptions": "iqa.set_metrics",
    "PRDCResult": "iqa.distribution.prdc",
    "PSNROptions": "iqa.metrics.psnr",
    "PairScore": "iqa.scoring",
    "RangeWarning": "iqa.errors",
    "RangeError": "iqa.errors",
    "SSIMOptions": "iqa.metrics.ssim",
    "ScoreStats": "iqa.scoring",
    "Scorer": "iqa.scoring",
    "ShapeError": "iqa.errors",
    "VIFpOptions": "iqa.metrics.vifp",
    "WeightsError": "iqa.errors",
    "CMMDOptions": "iqa.set_metrics",
    "cmmd": "iqa.set_metrics",
    "cmmd_features": "iqa.distribution.cmmd",
    "compare": "iqa.compare.run",
    "compute_statistics": "iqa.set_metrics",
    "dists": "iqa.metrics.dists",
    "evaluate": "iqa.evaluation",
    "fd": "iqa.set_metrics",
    "fd_dinov2": "iqa.set_metrics",
    "fd_features": "iqa.distribution.frechet",
    "fid": "iqa.set_metrics",
    "frechet_distance": "iqa.distribution.frechet",
    "fsim": "iqa.metrics.fsim",
    "fsimc": "iqa.metrics.fsim",
    "gmsd": "iqa.metrics.gmsd",
    "haarpsi": "iqa.metrics.haarpsi",
    "inception_score": "iqa.set_metrics",
    "inception_score_features": "iqa.distribution.inception_score",
    "iter_scores": "iqa.scoring",
    "kid": "iqa.set_metrics",
    "kid_features": "iqa.distribution.kid",
    "lpips": "iqa.metrics.lpips",
    "ms_gmsd": "iqa.metrics.ms_gmsd",
    "ms_ssim": "iqa.metrics.ms_ssim",
    "pair_folders": "iqa.scoring",
    "prdc": "iqa.set_metrics",
    "prdc_features": "iqa.distribution.prdc",
    "psnr": "iqa.metrics.psnr",
    "read_image": "iqa.decode",
    "report": "iqa.compare.report",
    "score_folders": "iqa.scoring",
    "ssim": "iqa.metrics.ssim",
    "vifp": "iqa.metrics.vifp",
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
