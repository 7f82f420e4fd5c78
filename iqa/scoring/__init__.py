"""Batch scoring: folders or pair lists into rows, result files and summaries.

The engine behind ``iqa score`` and the API for evaluation pipelines.

Modules:
    :mod:`~iqa.scoring.pairing`: which files go together (folders, pair lists).
    :mod:`~iqa.scoring.settings`: what is computed (metrics, options, runtime).
    :mod:`~iqa.scoring.engine`: the per-pair engine, :class:`Scorer`, :func:`iter_scores`.
    :mod:`~iqa.scoring.stats`: running statistics and the summary table.
    :mod:`~iqa.scoring.rowfile`: CSV/JSON/JSONL rows, atomic rewrites, sidecars.
    :mod:`~iqa.scoring.run`: the file run (open, resume, score, merge).
    :mod:`~iqa.scoring.sidecar`: the sidecar's status and owner (live runs, dead ones).
    :mod:`~iqa.scoring.maps`: per-pair heat-maps.

Rows:
    ``reference``, ``distorted`` (paths relative to the two roots, POSIX separators), one
    column per metric named as in Python (``psnr``, ``ssim``, ``ms_ssim``, ``lpips``), then
    ``error``. A pair that cannot be read or compared has empty values and the reason in
    ``error``; a metric that does not apply to a pair (MS-SSIM under 176 px) leaves its cell
    empty and the reason in ``error`` as ``"ms_ssim: ..."``, the other cells still count.
"""

from iqa.scoring.engine import PairScore, Scorer, iter_scores, score_folders
from iqa.scoring.pairing import PairJob, Pairing, pair_folders, read_pairs_file
from iqa.scoring.rowfile import FORMATS, meta_path
from iqa.scoring.run import ScoreRun, score_to_file
from iqa.scoring.settings import ScoreSettings
from iqa.scoring.stats import DEFAULT_METRICS, PSNR_MEANS, ScoreStats, format_summary

__all__ = [
    "DEFAULT_METRICS",
    "FORMATS",
    "PSNR_MEANS",
    "PairJob",
    "PairScore",
    "Pairing",
    "ScoreRun",
    "ScoreSettings",
    "ScoreStats",
    "Scorer",
    "format_summary",
    "iter_scores",
    "meta_path",
    "pair_folders",
    "read_pairs_file",
    "score_folders",
    "score_to_file",
]
