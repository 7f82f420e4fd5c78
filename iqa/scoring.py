"""Batch scoring: folders or pair lists into rows, result files and summaries.

The engine behind ``iqa score`` and the API for evaluation pipelines. Each pair is decoded
once (:func:`iqa.io.prepare_pair`) and every requested metric is computed on that one
prepared pair with the same ``compute_*`` functions the single-pair commands use, so a row
holds exactly the numbers ``iqa psnr`` / ``iqa ssim`` print for the same files.

Rows:
    ``reference``, ``distorted`` (paths relative to the two roots, POSIX separators), one
    column per metric named as in Python (``psnr``, ``ssim``, ``ms_ssim``, ``lpips``), then
    ``error``. A pair that cannot be read or compared has empty values and the reason in
    ``error``; a metric that does not apply to a pair (MS-SSIM under 176 px) leaves its cell
    empty and the reason in ``error`` as ``"ms_ssim: ..."``, the other cells still count.

Non-finite values:
    PSNR of identical images is ``+inf``. CSV writes ``inf``; JSON and JSONL, which have no
    infinity, write the string ``"inf"`` in that cell. ``float()`` (and pandas'
    ``to_numeric``) read both back as ``+inf``. An empty cell (``null`` in JSON) always means
    that the metric failed for that pair, with the reason in ``error``.

Files:
    Rows are appended and flushed as they complete, so an interrupted run loses nothing that
    was done; ``resume=True`` keeps complete rows, retries failed ones and refuses to resume
    when the settings differ; when the run ends the file is rewritten atomically in sorted
    pair order. The settings that change a number go to a sidecar ``<output>.meta.json`` (and
    into the ``metadata`` of JSON output) so that the CSV stays a plain table.

Testing hook:
    ``IQA_TEST_KILL_AFTER_ROWS=k`` makes the engine send SIGKILL to its own process after it
    has written ``k`` rows to a file; the test suite uses it to check resuming after a crash.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import sys
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from iqa.errors import IQAError
from iqa.io import ALPHA_POLICIES, Pair, iter_image_files, prepare_pair

__all__ = [
    "DEFAULT_METRICS",
    "FORMATS",
    "METRICS",
    "PairJob",
    "PairScore",
    "Pairing",
    "ScoreRun",
    "ScoreSettings",
    "ScoreStats",
    "Scorer",
    "check_device",
    "iter_scores",
    "metric_names",
    "pair_folders",
    "read_pairs_file",
    "score_folders",
    "score_to_file",
]

#: Every metric the engine can compute, in column order (Python names).
METRICS = ("psnr", "ssim", "ms_ssim", "lpips")

#: The metrics scored when none are named: nothing that needs downloaded weights.
DEFAULT_METRICS = ("psnr", "ssim", "ms_ssim")

#: Output formats of :func:`score_to_file`.
FORMATS = ("csv", "json", "jsonl")

#: How the PSNR summary averages: the mean of finite per-pair values, or the PSNR of the
#: mean of the per-pair normalised MSEs.
PSNR_MEANS = ("finite", "pooled")

KILL_ENV = "IQA_TEST_KILL_AFTER_ROWS"

#: Pixels (images × height × width) of prepared pairs held for one round of LPIPS batches:
#: with ``batch_size`` this bounds the memory of the buffer (float32, about 200 MB for RGB
#: at this size, reference and distorted together) whatever the image size.
LPIPS_BUFFER_PIXELS = 1 << 23

#: How JSON and JSONL write non-finite values (JSON has no infinity); ``float()`` reads them.
_NON_FINITE_TEXT = {math.inf: "inf", -math.inf: "-inf"}

_PAIR_COLUMNS = ("reference", "distorted")


def metric_names(names: Iterable[str]) -> tuple[str, ...]:
    """Normalise metric names (``ms-ssim`` → ``ms_ssim``, commas split), deduplicated and in
    :data:`METRICS` order.

    Raises:
        ValueError: an unknown metric name.
    """
    wanted = set()
    for item in names:
        for name in str(item).split(","):
            name = name.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in METRICS:
                raise ValueError(
                    f"unknown metric {name!r}: choose from {', '.join(m.replace('_', '-') for m in METRICS)}"
                )
            wanted.add(name)
    if not wanted:
        raise ValueError("no metric requested")
    return tuple(m for m in METRICS if m in wanted)


# --------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class PairJob:
    """One pair to score: the names written in the row and the files to open."""

    reference: str
    distorted: str
    reference_path: str = field(compare=False, default="")
    distorted_path: str = field(compare=False, default="")

    @property
    def key(self) -> tuple[str, str]:
        return (self.reference, self.distorted)


@dataclass
class Pairing:
    """The result of matching two folders.

    Attributes:
        pairs: matched pairs, sorted by (reference, distorted).
        unmatched_reference, unmatched_distorted: image files (relative paths) with no
            partner on the other side.
        ambiguous: messages for names that match several files (``match_stem`` with
            ``a.png`` and ``a.jpg`` side by side); those files are not scored.
        ignored_reference, ignored_distorted: files without an image extension.
    """

    pairs: list[PairJob]
    unmatched_reference: list[str] = field(default_factory=list)
    unmatched_distorted: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    ignored_reference: list[str] = field(default_factory=list)
    ignored_distorted: list[str] = field(default_factory=list)


def _non_images(root: Path) -> list[str]:
    from iqa.io import IMAGE_EXTENSIONS

    out = []
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def pair_folders(
    reference_dir: str | os.PathLike, distorted_dir: str | os.PathLike, *, match_stem: bool = False
) -> Pairing:
    """Match the image files of two folders by relative path (recursively).

    Args:
        reference_dir: the folder of pristine images.
        distorted_dir: the folder of images to score, mirroring ``reference_dir``'s layout.
        match_stem: match on the relative path without its extension, so ``a/b.png`` pairs
            with ``a/b.jpg``. A stem with several files on one side is ambiguous and skipped.

    Returns:
        A :class:`Pairing`.

    Raises:
        ImageLoadError: a folder does not exist or contains a symbolic link loop.

    Example:
        >>> p = pair_folders("data/samples/reference", "data/samples/blur")  # doctest: +SKIP
        >>> [(j.reference, j.distorted) for j in p.pairs][:1]  # doctest: +SKIP
        [('astronaut.png', 'astronaut.png')]
    """
    ref_root, dist_root = Path(reference_dir), Path(distorted_dir)
    refs = {p.relative_to(ref_root).as_posix(): p for p in iter_image_files(ref_root)}
    dists = {p.relative_to(dist_root).as_posix(): p for p in iter_image_files(dist_root)}
    ambiguous: list[str] = []

    def keyed(files: dict[str, Path], side: str) -> dict[str, str]:
        if not match_stem:
            return {k: k for k in files}
        groups: dict[str, list[str]] = {}
        for rel in files:
            stem = rel.rsplit(".", 1)[0]
            groups.setdefault(stem, []).append(rel)
        out = {}
        for stem, rels in groups.items():
            if len(rels) == 1:
                out[stem] = rels[0]
            else:
                ambiguous.append(f"{side} {stem}.*: several files match ({', '.join(sorted(rels))})")
        return out

    ref_keys, dist_keys = keyed(refs, "reference"), keyed(dists, "distorted")
    pairs = [
        PairJob(ref_keys[k], dist_keys[k], os.fspath(refs[ref_keys[k]]), os.fspath(dists[dist_keys[k]]))
        for k in ref_keys
        if k in dist_keys
    ]
    return Pairing(
        pairs=sorted(pairs),
        unmatched_reference=sorted(ref_keys[k] for k in ref_keys if k not in dist_keys),
        unmatched_distorted=sorted(dist_keys[k] for k in dist_keys if k not in ref_keys),
        ambiguous=sorted(ambiguous),
        ignored_reference=_non_images(ref_root),
        ignored_distorted=_non_images(dist_root),
    )


def read_pairs_file(
    path: str | os.PathLike,
    reference_dir: str | os.PathLike | None = None,
    distorted_dir: str | os.PathLike | None = None,
) -> list[PairJob]:
    """Read an explicit pair list: a CSV with a header holding ``reference`` and ``distorted``.

    Relative paths are resolved against ``reference_dir`` and ``distorted_dir`` (default: the
    CSV's folder); absolute paths are used as they are. Rows keep the names as written.
    Files that do not exist become rows with an error when scored, not a failure here.

    Raises:
        IQAError: the file is missing or not UTF-8 text, has no such columns, has a row with
            more cells than the header or an empty cell, or lists a pair twice.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise IQAError(f"{p}: cannot read the pair list ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        text_line = exc.object[: exc.start].count(b"\n") + 1
        raise IQAError(
            f"{p}:{text_line}: the pair list is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "save it as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "reference" not in fields or "distorted" not in fields:
        raise IQAError(
            f"{p}: expected a CSV header with columns 'reference' and 'distorted', got {fields}"
        )
    base = p.parent
    ref_root = Path(reference_dir) if reference_dir is not None else base
    dist_root = Path(distorted_dir) if distorted_dir is not None else base
    jobs, seen = [], set()
    for row in reader:
        line = reader.line_num  # the physical line where this row ends
        if None in row:
            extra = [v for v in row[None] if v.strip()]
            if extra:
                raise IQAError(
                    f"{p}:{line}: {len(fields) + len(row[None])} cells but the header has "
                    f"{len(fields)} ({', '.join(fields)}); quote paths that contain a comma"
                )
            del row[None]  # trailing empty cells (a trailing comma)
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        ref, dist = row.get("reference", ""), row.get("distorted", "")
        if not ref and not dist and not any(row.values()):
            continue  # blank line
        if not ref or not dist:
            raise IQAError(f"{p}:{line}: empty 'reference' or 'distorted' cell")
        if (ref, dist) in seen:
            raise IQAError(f"{p}:{line}: pair ({ref}, {dist}) is listed twice")
        seen.add((ref, dist))
        jobs.append(PairJob(ref, dist, os.fspath(ref_root / ref), os.fspath(dist_root / dist)))
    return sorted(jobs)


# --------------------------------------------------------------------------------------
# Settings and per-pair scoring
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSettings:
    """Every option that changes a number, plus where the network metrics run.

    Attributes:
        metrics: Python metric names (see :data:`METRICS`).
        data_range, bit_depth, alpha: the image layer's options (:func:`iqa.io.prepare_pair`).
        color, crop_border: the super-resolution conventions for PSNR, SSIM and MS-SSIM.
            LPIPS always sees the whole RGB image, as ``iqa lpips`` does.
        lpips_net, lpips_version, lpips_weights: the LPIPS network, its linear-layer version
            and an optional local file of backbone weights (torchvision format).
        device: where LPIPS runs (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``); checked
            at construction (see :func:`check_device`), so a missing GPU stops a run before
            its first pair rather than failing every row.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    data_range: float | None = None
    bit_depth: int | None = None
    alpha: str = "error"
    color: str = "rgb"
    crop_border: int = 0
    lpips_net: str = "alex"
    lpips_version: str = "0.1"
    lpips_weights: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", metric_names(self.metrics))
        if self.alpha not in ALPHA_POLICIES:
            raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {self.alpha!r}")
        from iqa.color import COLOR_SPACES

        if self.color not in COLOR_SPACES:
            raise ValueError(f"color must be one of {COLOR_SPACES}, got {self.color!r}")
        if self.crop_border < 0 or int(self.crop_border) != self.crop_border:
            raise ValueError(f"crop_border must be a non-negative integer, got {self.crop_border!r}")
        if self.lpips_weights is not None:
            object.__setattr__(self, "lpips_weights", os.fspath(self.lpips_weights))
        check_device(self.device, cuda="lpips" in self.metrics)

    def provenance(self) -> dict[str, Any]:
        """The settings that change a number, for metadata and for comparing runs.

        Includes the iqa version, the SSIM constants and, when LPIPS is requested, the
        network, version and the SHA-256 of the weights actually used.
        """
        from iqa import __version__

        out: dict[str, Any] = {
            "iqa_version": __version__,
            "metrics": list(self.metrics),
            # None: implied by each file's sample type (255 for 8-bit, 65535 for 16-bit).
            "data_range": self.data_range,
            "bit_depth": self.bit_depth,
            "alpha": self.alpha,
            "color": self.color,
            "crop_border": self.crop_border,
        }
        if "ssim" in self.metrics or "ms_ssim" in self.metrics:
            from iqa.metrics.ssim import MS_SSIM_WEIGHTS

            out["ssim"] = {"win_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "window": "gaussian"}
            if "ms_ssim" in self.metrics:
                out["ms_ssim"] = {"scales": len(MS_SSIM_WEIGHTS), "weights": list(MS_SSIM_WEIGHTS)}
        if "lpips" in self.metrics:
            out["lpips"] = _lpips_provenance(self)
        return out


def check_device(device: str, *, cuda: bool = True) -> None:
    """Check a ``device`` setting once, before any pair is scored.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cuda: also check that CUDA (and device ``N``) is there; this imports torch, so it
            is done only when a network metric will run.

    Raises:
        ValueError: a malformed device, or CUDA requested on a machine without it.
    """
    d = str(device)
    if d not in ("auto", "cpu") and not re.fullmatch(r"cuda(:[0-9]+)?", d):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if cuda and d.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {d!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
        index = int(d.split(":")[1]) if ":" in d else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {d!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )


def _lpips_provenance(settings: ScoreSettings) -> dict[str, Any]:
    from iqa.metrics import lpips as lpips_mod

    info: dict[str, Any] = {"net": settings.lpips_net, "version": settings.lpips_version}
    helper = getattr(lpips_mod, "lpips_provenance", None) or getattr(lpips_mod, "provenance", None)
    if helper is not None:
        info.update(
            helper(net=settings.lpips_net, version=settings.lpips_version, backbone_weights=settings.lpips_weights)
        )
    return info


@dataclass
class PairScore:
    """The scores of one pair (or one batch given as a single item).

    Attributes:
        reference, distorted: the names of the two images (relative paths for folders,
            ``"reference array"`` and the like for in-memory inputs, or the item's index).
        values: metric name → value: a float for files and single NumPy images, an array
            for a NumPy batch, a tensor for tensors; ``None`` when the metric failed.
        error: empty, or the reasons (``"ms_ssim: ..."``), ``"; "``-separated.
        notes: conventions the image layer applied (e.g. ``"alpha channel fully opaque:
            dropped"``); they change no number but are counted in the summary.
    """

    reference: str
    distorted: str
    values: dict[str, Any]
    error: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error

    def row(self) -> dict[str, Any]:
        """The row as a dict: reference, distorted, one key per metric, error."""
        return {"reference": self.reference, "distorted": self.distorted, **self.values, "error": self.error}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, IQAError):
        text = f"{type(exc).__name__}: {text}"
    return text


def _prepare(reference: Any, distorted: Any, settings: ScoreSettings) -> Pair:
    return prepare_pair(
        reference, distorted, data_range=settings.data_range, bit_depth=settings.bit_depth, alpha=settings.alpha
    )


def _classic(metric: str, pair: Pair, settings: ScoreSettings) -> Any:
    """One value per image of a classic metric (NumPy array or tensor)."""
    if metric == "psnr":
        from iqa.metrics.psnr import compute_psnr

        return compute_psnr(pair, color=settings.color, crop_border=settings.crop_border)
    if metric == "ssim":
        from iqa.metrics.ssim import compute_ssim

        return compute_ssim(pair, color=settings.color, crop_border=settings.crop_border)
    if metric == "ms_ssim":
        from iqa.metrics.ssim import compute_ms_ssim

        return compute_ms_ssim(pair, color=settings.color, crop_border=settings.crop_border)
    raise ValueError(f"not a classic metric: {metric!r}")


def _lpips(pair: Pair, settings: ScoreSettings, *, batch_size: int = 16, want_map: bool = False) -> Any:
    """LPIPS of a prepared pair (or a stacked batch of pairs), one value per image; with
    ``want_map`` the tuple (values, maps) from one forward pass.

    LPIPS sees the whole RGB image, as ``iqa lpips`` does: ``color`` and ``crop_border``
    are conventions of PSNR, SSIM and MS-SSIM.
    """
    from iqa.metrics.lpips import compute_lpips, compute_lpips_and_map

    kwargs = dict(
        net=settings.lpips_net,
        version=settings.lpips_version,
        backbone_weights=settings.lpips_weights,
        device=settings.device,
        batch_size=batch_size,
    )
    if want_map:
        return compute_lpips_and_map(pair, **kwargs)
    return compute_lpips(pair, **kwargs)


def _floats(values: Any) -> list[float]:
    """Per-image values (NumPy array, tensor, float) as Python floats."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return [float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64))]


# --------------------------------------------------------------------------------------
# Running statistics
# --------------------------------------------------------------------------------------


@dataclass
class _MetricStats:
    """n, mean and M2 (Welford/Chan, float64) of the finite values, plus counts."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    infinite: int = 0
    failed: int = 0
    nmse_sum: float = 0.0  # sum of 10**(-psnr/10) = MSE / R², for the pooled PSNR

    def add(self, value: float) -> None:
        if math.isinf(value) and value > 0:
            self.infinite += 1
            return
        if not math.isfinite(value):
            self.failed += 1
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.nmse_sum += 10.0 ** (-value / 10.0)

    def merge(self, other: "_MetricStats") -> None:
        n = self.n + other.n
        if other.n:
            delta = other.mean - self.mean
            self.m2 += other.m2 + delta * delta * self.n * other.n / n
            self.mean += delta * other.n / n
        self.n = n
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.infinite += other.infinite
        self.failed += other.failed
        self.nmse_sum += other.nmse_sum


class ScoreStats:
    """Running summary of scored pairs: n, mean, std, min, max and failures per metric.

    Constant memory, float64, mergeable (for shards). Standard deviations are sample
    standard deviations (``ddof=1``, as pandas' ``describe``); ``None`` for fewer than two
    values. PSNR's ``+inf`` (identical images) is counted under ``identical`` and left out
    of mean, std, min and max; ``psnr_mean="pooled"`` reports ``-10·log10(mean(MSE/R²))``
    over all scored pairs instead, identical ones included (each pair weighs the same).

    Example:
        >>> s = ScoreStats(["psnr"])
        >>> s.add({"psnr": 30.0}); s.add({"psnr": 40.0}); s.add({"psnr": float("inf")})
        >>> s.summary()["metrics"]["psnr"]["mean"], s.summary()["metrics"]["psnr"]["identical"]
        (35.0, 1)
    """

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS) -> None:
        self.metrics = metric_names(metrics)
        self.reset()

    def reset(self) -> None:
        self._stats = {m: _MetricStats() for m in self.metrics}
        self.pairs = 0
        self.pairs_with_errors = 0
        #: note → number of pairs it applied to (see :attr:`PairScore.notes`).
        self.notes: Counter[str] = Counter()

    def add(self, values: dict[str, Any], error: str = "", notes: Iterable[str] = ()) -> None:
        """Count one scored item: ``values`` maps metrics to values (``None`` = failed),
        ``notes`` the image layer's notes on the pair.

        A batch value (array or tensor) counts each of its images.
        """
        self.notes.update(set(notes))
        n_items = 1
        for m in self.metrics:
            v = values.get(m)
            if v is None:
                self._stats[m].failed += 1
                continue
            floats = _floats(v)
            n_items = max(n_items, len(floats))
            for f in floats:
                self._stats[m].add(f)
        self.pairs += n_items
        if error:
            self.pairs_with_errors += 1

    def merge(self, other: "ScoreStats") -> None:
        if other.metrics != self.metrics:
            raise ValueError(f"cannot merge statistics of {other.metrics} into {self.metrics}")
        for m in self.metrics:
            self._stats[m].merge(other._stats[m])
        self.pairs += other.pairs
        self.pairs_with_errors += other.pairs_with_errors
        self.notes.update(other.notes)

    def means(self, psnr_mean: str = "finite") -> dict[str, float | None]:
        """Metric → mean (``None`` when nothing was scored)."""
        return {m: d["mean"] for m, d in self.summary(psnr_mean)["metrics"].items()}

    def summary(self, psnr_mean: str = "finite") -> dict[str, Any]:
        """A JSON-ready summary (no inf or NaN: missing values are ``None``)."""
        if psnr_mean not in PSNR_MEANS:
            raise ValueError(f"psnr_mean must be one of {PSNR_MEANS}, got {psnr_mean!r}")

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        metrics = {}
        for m, s in self._stats.items():
            d: dict[str, Any] = {
                "n": s.n + s.infinite,
                "mean": num(s.mean) if s.n else None,
                "std": num(math.sqrt(s.m2 / (s.n - 1))) if s.n > 1 else None,
                "min": num(s.min) if s.n else None,
                "max": num(s.max) if s.n else None,
                "failed": s.failed,
            }
            if m == "psnr":
                d["identical"] = s.infinite
                d["mean_kind"] = "mean of finite per-pair PSNR"
                if psnr_mean == "pooled":
                    total = s.n + s.infinite
                    d["mean_kind"] = "pooled: -10*log10(mean(MSE/R^2)) over all scored pairs"
                    d["mean"] = (
                        num(-10.0 * math.log10(s.nmse_sum / total)) if total and s.nmse_sum > 0 else None
                    )
                    if total and s.nmse_sum == 0:
                        d["mean_note"] = "all pairs identical: pooled PSNR is +inf"
            metrics[m] = d
        return {
            "pairs": self.pairs,
            "pairs_with_errors": self.pairs_with_errors,
            "psnr_mean": psnr_mean,
            "metrics": metrics,
            "notes": dict(sorted(self.notes.items())),
        }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a small text table (for stderr)."""

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.6g}" if isinstance(x, float) else str(x)

    lines = [f"{'metric':<8} {'n':>6} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'failed':>7}"]
    for m, d in summary["metrics"].items():
        lines.append(
            f"{m:<8} {d['n']:>6} {f(d['mean']):>10} {f(d['std']):>10} {f(d['min']):>10} "
            f"{f(d['max']):>10} {d['failed']:>7}"
        )
    psnr = summary["metrics"].get("psnr")
    if psnr is not None:
        note = f"psnr mean: {psnr['mean_kind']}"
        if psnr["identical"]:
            note += f"; {psnr['identical']} identical pair(s) (inf) not in std/min/max"
            if summary["psnr_mean"] != "pooled":
                note += " or the mean"
        if psnr.get("mean_note"):
            note += f"; {psnr['mean_note']}"
        lines.append(note)
    for note, count in (summary.get("notes") or {}).items():
        lines.append(f"note: {note}: {count} pair(s)")
    lines.append(f"{summary['pairs']} pair(s), {summary['pairs_with_errors']} with errors")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The Python API for pipelines
# --------------------------------------------------------------------------------------


class Scorer:
    """Score pairs with a fixed set of metrics and settings, accumulating a summary.

    Works on paths, NumPy arrays and torch tensors (single images or batches): a training
    loop can score its output tensors directly, with no file in between. Values come back
    as the metric functions return them (a tensor stays a tensor, differentiable where the
    metric is); the running statistics take their float values.

    Args:
        metrics: metric names (``"psnr"``, ``"ssim"``, ``"ms_ssim"`` or ``"ms-ssim"``,
            ``"lpips"``).
        **settings: the fields of :class:`ScoreSettings` (``data_range``, ``color``, ...).

    Example:
        >>> import numpy as np
        >>> scorer = Scorer(["psnr", "ssim"])
        >>> a = np.full((32, 32), 100, np.uint8); b = a.copy(); b[0, 0] = 110
        >>> round(scorer(a, b)["psnr"], 3)
        58.234
        >>> sorted(scorer.means())
        ['psnr', 'ssim']
    """

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS, **settings: Any) -> None:
        self.settings = ScoreSettings(metrics=tuple(metrics), **settings)
        self.stats = ScoreStats(self.settings.metrics)

    def __call__(self, reference: Any, distorted: Any) -> dict[str, Any]:
        """Score one pair (or one batch) and add it to the statistics.

        Raises:
            ImageLoadError, ShapeError, RangeError: the pair cannot be prepared or a metric
                does not apply (use :meth:`iter_scores` to turn errors into rows instead).
        """
        pair = _prepare(reference, distorted, self.settings)
        values = {}
        for m in self.settings.metrics:
            raw = _lpips(pair, self.settings) if m == "lpips" else _classic(m, pair, self.settings)
            values[m] = pair.result(raw)
        self.stats.add(values, notes=pair.notes)
        return values

    def iter_scores(self, items: Iterable[Any], *, workers: int = 1) -> Iterator[PairScore]:
        """Score ``(reference, distorted)`` items (or :class:`PairJob`), one result each.

        Errors are captured per item (``PairScore.error``), never raised, and every item
        is added to the statistics. With ``workers > 1`` items are prepared and scored in
        threads (decoders and OpenCV release the GIL); results keep the input order.
        """
        for score, _pair in _iter_scored(items, self.settings, workers=workers, keep_pair=False):
            self.stats.add(score.values, score.error, score.notes)
            yield score

    def summary(self, psnr_mean: str = "finite") -> dict[str, Any]:
        return self.stats.summary(psnr_mean)

    def means(self, psnr_mean: str = "finite") -> dict[str, float | None]:
        return self.stats.means(psnr_mean)

    def reset(self) -> None:
        self.stats.reset()


def iter_scores(
    items: Iterable[Any], metrics: Sequence[str] = DEFAULT_METRICS, *, workers: int = 1, **settings: Any
) -> Iterator[PairScore]:
    """Score an iterable of ``(reference, distorted)`` items, yielding one :class:`PairScore`
    per item in order. Items may be paths, NumPy arrays, tensors or :class:`PairJob`.

    Args:
        items: the pairs.
        metrics: metric names.
        workers: threads preparing and scoring items in parallel.
        **settings: the fields of :class:`ScoreSettings`.

    Example:
        >>> for s in iter_scores([("ref/a.png", "dist/a.png")], ["psnr"]):  # doctest: +SKIP
        ...     print(s.values["psnr"], s.error)
    """
    return Scorer(metrics, **settings).iter_scores(items, workers=workers)


def score_folders(
    reference_dir: str | os.PathLike,
    distorted_dir: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    match_stem: bool = False,
    workers: int = 1,
    **settings: Any,
) -> Iterator[PairScore]:
    """Score every matched pair of two folders (see :func:`pair_folders`), in sorted order.

    Unmatched files are not scored; call :func:`pair_folders` to list them.
    """
    pairing = pair_folders(reference_dir, distorted_dir, match_stem=match_stem)
    return iter_scores(pairing.pairs, metrics, workers=workers, **settings)


def _item_names(item: Any, index: int) -> tuple[Any, Any, str, str]:
    if isinstance(item, PairJob):
        return item.reference_path or item.reference, item.distorted_path or item.distorted, item.reference, item.distorted
    ref, dist = item
    rn = os.fspath(ref) if isinstance(ref, (str, os.PathLike)) else f"item {index} reference"
    dn = os.fspath(dist) if isinstance(dist, (str, os.PathLike)) else f"item {index} distorted"
    return ref, dist, rn, dn


def _score_item(
    item: Any, index: int, settings: ScoreSettings, keep_pair: bool, maps: "_MapWriter | None" = None
) -> tuple[PairScore, Pair | None]:
    """Prepare one item and compute its classic metrics; never raises for bad data.

    LPIPS is left for the caller when ``keep_pair`` (the file engine batches it); otherwise
    it is computed here too. With ``maps``, the SSIM map is written here as well.
    """
    ref, dist, rn, dn = _item_names(item, index)
    values: dict[str, Any] = {m: None for m in settings.metrics}
    try:
        pair = _prepare(ref, dist, settings)
    except Exception as exc:  # one bad pair must never stop the others
        return PairScore(rn, dn, values, _one_line(exc)), None
    errors = []
    for m in settings.metrics:
        if m == "lpips" and keep_pair:
            continue
        try:
            raw = _lpips(pair, settings) if m == "lpips" else _classic(m, pair, settings)
            values[m] = pair.result(raw)
        except Exception as exc:
            if _is_fatal(exc):
                raise
            errors.append(f"{m}: {_one_line(exc)}")
    if maps is not None and "ssim" in settings.metrics and values["ssim"] is not None:
        try:
            maps.write_ssim(dn, pair)
        except Exception as exc:
            errors.append(f"ssim map: {_one_line(exc)}")
    score = PairScore(rn, dn, values, "; ".join(errors), pair.notes)
    if not keep_pair:
        return score, None
    if pair.backend == "numpy":
        # Held for LPIPS, which runs in float32: rounding here gives the very values the
        # network would see (half the memory of float64 while the pair waits for its batch).
        pair = pair.with_pixels(pair.reference.astype(np.float32), pair.distorted.astype(np.float32))
    return score, pair


def _is_fatal(exc: BaseException) -> bool:
    """Errors that would fail every pair the same way (missing weights, no such device)."""
    from iqa.errors import WeightsError

    return isinstance(exc, WeightsError)


def _iter_scored(
    items: Iterable[Any], settings: ScoreSettings, *, workers: int, keep_pair: bool, maps: "_MapWriter | None" = None
) -> Iterator[tuple[PairScore, Pair | None]]:
    indexed = ((i, item) for i, item in enumerate(items))

    def fn(entry: tuple[int, Any]) -> tuple[PairScore, Pair | None]:
        return _score_item(entry[1], entry[0], settings, keep_pair, maps)

    return _ordered_map(fn, indexed, workers)


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``workers`` threads, results in input order, a bounded number of
    items in flight (memory stays flat in the number of items)."""
    if workers <= 1:
        for x in items:
            yield fn(x)
        return
    pending: deque = deque()
    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iqa-score")
    try:
        for x in items:
            pending.append(ex.submit(fn, x))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        ex.shutdown(wait=True)


# --------------------------------------------------------------------------------------
# Row files: writers, readers, atomic rewrite
# --------------------------------------------------------------------------------------


def _columns(metrics: Sequence[str]) -> list[str]:
    return [*_PAIR_COLUMNS, *metrics, "error"]


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back to the same float: 'inf' for +inf
    return str(v)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        # JSON has no infinity: the cell says it in text that float() reads back.
        return _NON_FINITE_TEXT.get(v, "nan")
    return v


class _RowWriter:
    """Appends rows to an open text stream in one format, flushing after each row.

    JSON is written so that the stream is valid once closed and parseable line by line while
    open: a first line holding the metadata and ``"rows": [``, one row per line (each but
    the last ending with a comma), then ``]}``.
    """

    def __init__(
        self,
        stream: Any,
        fmt: str,
        columns: list[str],
        metadata: dict[str, Any] | None,
        *,
        header: bool = True,
        first: bool = True,
    ):
        self.stream, self.fmt, self.columns = stream, fmt, columns
        self._first = first  # no row in the stream yet (JSON puts commas between rows)
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if header:
            if fmt == "csv":
                self._csv.writerow(columns)
            elif fmt == "json":
                meta = json.dumps(metadata or {}, allow_nan=False)
                stream.write('{"metadata": ' + meta + ', "columns": ' + json.dumps(columns) + ', "rows": [')
            stream.flush()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow([_csv_cell(row.get(c)) for c in self.columns])
        else:
            text = json.dumps({c: _json_value(row.get(c)) for c in self.columns}, allow_nan=False)
            if self.fmt == "json":
                text = ("\n" if self._first else ",\n") + text
            else:
                text += "\n"
            self.stream.write(text)
        self._first = False
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]}\n")
        self.stream.flush()


def _parse_value(text: Any, fmt: str) -> Any:
    if fmt == "csv":
        return float(text) if text not in ("", None) else None
    if isinstance(text, bool):
        raise ValueError("not a number")
    return None if text is None else float(text)  # "inf" in JSON is +inf


def _normalise_row(raw: dict[str, Any], columns: list[str], fmt: str) -> dict[str, Any] | None:
    if any(c not in raw for c in columns):
        return None
    row: dict[str, Any] = {"reference": str(raw["reference"]), "distorted": str(raw["distorted"])}
    error = raw.get("error") or ""
    for c in columns[2:-1]:
        try:
            row[c] = _parse_value(raw[c], fmt)
        except (TypeError, ValueError):
            return None
        if row[c] is None and not error and fmt != "csv":
            row[c] = math.inf  # earlier files wrote +inf as null in a JSON row without an error
    row["error"] = error
    return row


def _read_rows(path: Path, fmt: str, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of an output file, tolerating a run that was killed mid-write: an unfinished
    last line is dropped, as is any line that does not parse as a full row."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    if fmt == "json":
        try:
            doc = json.loads(text)
            raw_rows = doc.get("rows", []) if isinstance(doc, dict) else []
        except json.JSONDecodeError:
            raw_rows = []
            # Unfinished: the first line holds the metadata, then one row per line (the
            # last one without its newline yet); a row cut by a crash does not parse.
            for line in text.split("\n")[1:]:
                line = line.strip().rstrip(",")
                if line.startswith("{"):
                    try:
                        raw_rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return [r for r in (_normalise_row(x, columns, fmt) for x in raw_rows if isinstance(x, dict)) if r]
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    if fmt == "jsonl":
        for line in text.splitlines():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(raw, dict) and (r := _normalise_row(raw, columns, fmt)):
                rows.append(r)
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != columns:
        raise IQAError(f"{path}: columns {header} do not match this run's {columns}; cannot resume")
    for fields in reader:
        if len(fields) == len(columns) and (r := _normalise_row(dict(zip(columns, fields)), columns, fmt)):
            rows.append(r)
    return rows


def _write_atomic(
    path: Path,
    fmt: str,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
    metadata: dict[str, Any] | None,
    *,
    finished: bool = True,
) -> None:
    """Write a file next to ``path`` and rename it over ``path`` (atomic on POSIX).

    ``finished=False`` leaves a JSON document open so that rows can be appended to it.
    """
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            w = _RowWriter(fh, fmt, columns, metadata)
            for row in rows:
                w.write(row)
            if finished:
                w.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from None


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = _tmp_path(path)
    try:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from None


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _write_error(path: Path, exc: OSError) -> IQAError:
    return IQAError(
        f"{path}: cannot write ({exc.strerror or exc}); choose a writable location with -o/--output"
    )


def _check_writable(path: Path) -> None:
    """Create and remove a file next to ``path``: the folder must take new files (the
    sidecar, temporary files, the final rename). An existing ``path`` must be writable too.

    Raises:
        IQAError: naming ``path`` and the system's reason.
    """
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8"):
            pass
        tmp.unlink()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IQAError(
            f"{path}: cannot create files in {path.parent} ({exc.strerror or exc}); choose a "
            "writable location with -o/--output"
        ) from None
    if path.exists():
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise _write_error(path, exc) from None


def meta_path(output: str | os.PathLike) -> Path:
    """The sidecar of an output file: ``<output>.meta.json``."""
    p = Path(output)
    return p.with_name(p.name + ".meta.json")


def _part_path(output: Path, rank: int) -> Path:
    return output.with_name(f"{output.name}.part{rank}")


# --------------------------------------------------------------------------------------
# The file engine
# --------------------------------------------------------------------------------------


@dataclass
class ScoreRun:
    """What :func:`score_to_file` did.

    Attributes:
        stats: the summary statistics of every row of the final file.
        rows: number of rows in the final file.
        scored: pairs scored by this run (all ranks together).
        resumed: complete rows kept from an earlier run.
        failed: rows with an error (a pair or a cell failed).
        dropped: rows of an earlier run whose pair is not in this run's list.
    """

    stats: ScoreStats
    rows: int = 0
    scored: int = 0
    resumed: int = 0
    failed: int = 0
    dropped: int = 0


def _row_of(score: PairScore) -> dict[str, Any]:
    row = score.row()
    for k, v in list(row.items()):
        if k not in ("reference", "distorted", "error") and v is not None:
            row[k] = _floats(v)[0]
    return row


def _check_resumable(meta_file: Path, metadata: dict[str, Any]) -> None:
    if not meta_file.exists():
        raise IQAError(
            f"{meta_file}: missing, so the settings of the earlier run are unknown; cannot "
            "resume: delete the output or pass --overwrite to start again"
        )
    try:
        old = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IQAError(f"{meta_file}: unreadable ({exc}); cannot resume") from None
    diffs = []
    for key in ("format", "columns", "settings", "reference_root", "distorted_root"):
        if old.get(key) != metadata.get(key):
            if key == "settings":
                a, b = old.get(key) or {}, metadata.get(key) or {}
                for k in sorted(set(a) | set(b)):
                    if a.get(k) != b.get(k):
                        diffs.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
            else:
                diffs.append(f"{key}: {old.get(key)!r} -> {metadata.get(key)!r}")
    if diffs:
        raise IQAError(
            f"{meta_file}: the earlier run used different settings ({'; '.join(diffs)}); "
            "rerun with the same settings to resume, or pass --overwrite to start again"
        )


def _kill_after() -> int | None:
    value = os.environ.get(KILL_ENV)
    return int(value) if value else None


def score_to_file(
    jobs: Sequence[PairJob],
    output: str | os.PathLike | None,
    settings: ScoreSettings,
    *,
    fmt: str = "csv",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    batch_size: int = 16,
    maps_dir: str | os.PathLike | None = None,
    roots: tuple[str, str] | None = None,
    on_row: Callable[[int, int], None] | None = None,
    stream: Any = None,
    ctx: Any = None,
) -> ScoreRun:
    """Score ``jobs`` into an output file (or a stream), as described in the module notes.

    Args:
        jobs: the pairs, e.g. ``pair_folders(...).pairs``.
        output: the result file; ``None`` writes to ``stream`` (no resume, no sidecar).
        settings: what to compute and how.
        fmt: ``"csv"``, ``"json"`` or ``"jsonl"``.
        resume: keep complete rows of an existing ``output``, retry failed ones, score the rest.
        overwrite: replace an existing ``output`` (otherwise an existing file is an error).
        workers: threads preparing and scoring pairs.
        batch_size: pairs per LPIPS batch.
        maps_dir: write per-pair SSIM (and LPIPS) maps there.
        roots: the reference and distorted roots, recorded in the sidecar.
        on_row: called as ``on_row(done, total)`` after each row this process writes.
        stream: where rows go when ``output`` is ``None``.
        ctx: a :class:`iqa.distributed.DistContext`; each rank scores a shard into its own
            part file and rank 0 merges them into ``output``.

    Returns:
        A :class:`ScoreRun` on every rank; its counts cover the merged file, its ``stats``
        too on rank 0 (empty on the other ranks).

    Raises:
        IQAError: the output exists without ``resume``/``overwrite``, cannot be written
            (checked before any pair is scored), or resuming with different settings;
            WeightsError when the LPIPS weights cannot be loaded.
    """
    from iqa.distributed import DistContext, shard

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if maps_dir is not None and not {"ssim", "lpips"} & set(settings.metrics):
        raise ValueError("maps are drawn for ssim and lpips: request one of them")
    ctx = ctx or DistContext()
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        # Before anything costly (weights, decoding): a run that cannot save must not start.
        if not out_path.parent.is_dir():
            raise IQAError(f"{out_path}: the folder {out_path.parent} does not exist; create it first")
        if out_path.is_dir():
            raise IQAError(f"{out_path}: is a folder; name a file with -o/--output")
        _check_writable(out_path)
    columns = _columns(settings.metrics)
    metadata = {
        "format": fmt,
        "columns": columns,
        "settings": settings.provenance(),
        "reference_root": os.path.abspath(roots[0]) if roots else None,
        "distorted_root": os.path.abspath(roots[1]) if roots else None,
        "non_finite": (
            "PSNR of identical images is +inf: inf in CSV, the string \"inf\" in JSON and JSONL "
            "(float() reads both); an empty cell or null means the metric failed, the reason is in error"
        ),
    }
    keys = {j.key for j in jobs}
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    dropped = 0
    if out_path is None:
        if resume:
            raise IQAError("resuming needs an output file (-o)")
        if ctx.active:
            raise IQAError("a distributed run needs an output file (-o) for the ranks to merge into")
    else:
        meta_file = meta_path(out_path)
        exists = out_path.exists()
        if exists and not (resume or overwrite):
            raise IQAError(
                f"{out_path}: already exists; pass --resume to continue that run or --overwrite to replace it"
            )
        if resume and exists:
            _check_resumable(meta_file, metadata)
            sources = [out_path, *sorted(out_path.parent.glob(out_path.name + ".part*"))]
            for src in sources:
                for row in _read_rows(src, fmt if src == out_path else "csv", columns):
                    if row["error"]:
                        continue  # failed rows are retried
                    if (row["reference"], row["distorted"]) in keys:
                        kept[(row["reference"], row["distorted"])] = row
                    else:
                        dropped += 1
    pending = [j for j in jobs if j.key not in kept]
    stats = ScoreStats(settings.metrics)

    ctx.barrier()  # every rank has read the earlier files before anything is rewritten
    if out_path is not None and ctx.is_main:
        _write_json_atomic(meta_path(out_path), {**metadata, "status": "running", "pairs": len(jobs)})
        # Kept rows go into the main file first, so that parts can be started afresh.
        _write_atomic(out_path, fmt, columns, sorted(kept.values(), key=_sort_key), metadata, finished=ctx.active)
        if not ctx.active:
            for stale in out_path.parent.glob(out_path.name + ".part*"):
                stale.unlink()
    ctx.barrier()

    mine = shard(pending, ctx) if len(pending) >= ctx.world_size else pending[ctx.rank :: ctx.world_size]
    if out_path is None:
        sink, target, header = stream if stream is not None else sys.stdout, None, True
    else:
        target = _part_path(out_path, ctx.rank) if ctx.active else out_path
        header = ctx.active
        try:
            sink = open(target, "w" if ctx.active else "a", encoding="utf-8", errors="surrogateescape", newline="")
        except OSError as exc:
            raise _write_error(target, exc) from None
    # Part files are CSV whatever the output format: it keeps inf and every digit.
    part_fmt = "csv" if ctx.active else fmt
    writer = _RowWriter(sink, part_fmt, columns, metadata, header=header, first=header or not kept)
    new_rows: list[dict[str, Any]] = []
    notes: Counter[str] = Counter()
    kill_after = _kill_after() if target is not None else None
    written = 0
    try:
        maps = _MapWriter(maps_dir, settings) if maps_dir is not None else None
        for score in _score_jobs(mine, settings, workers=workers, batch_size=batch_size, maps=maps):
            row = _row_of(score)
            try:
                writer.write(row)
            except OSError as exc:
                if target is None:
                    raise
                raise _write_error(target, exc) from None
            new_rows.append(row)
            notes.update(set(score.notes))
            written += 1
            if kill_after is not None and written >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if on_row is not None:
                on_row(written, len(mine))
        if out_path is None:
            writer.close()
    finally:
        if target is not None:
            sink.close()

    n_failed_here = sum(1 for r in new_rows if r["error"])
    if out_path is None:
        for r in new_rows:
            stats.add({m: r[m] for m in settings.metrics}, r["error"])
        stats.notes.update(notes)
        return ScoreRun(stats=stats, rows=len(new_rows), scored=len(new_rows), failed=n_failed_here)

    # Notes are not columns: count them over the pairs decoded by this run, on every rank.
    all_notes: Counter[str] = Counter()
    for d in ctx.gather(dict(notes)):
        all_notes.update(d)
    ctx.barrier()
    if ctx.is_main:
        rows = dict(kept)
        if ctx.active:
            for r in range(ctx.world_size):
                for row in _read_rows(_part_path(out_path, r), "csv", columns):
                    rows[(row["reference"], row["distorted"])] = row
        else:
            for row in new_rows:
                rows[(row["reference"], row["distorted"])] = row
        ordered = sorted(rows.values(), key=_sort_key)
        _write_atomic(out_path, fmt, columns, ordered, metadata)
        for stale in out_path.parent.glob(out_path.name + ".part*"):
            stale.unlink()
        for row in ordered:
            stats.add({m: row[m] for m in settings.metrics}, row["error"])
        stats.notes.update(all_notes)
        _write_json_atomic(
            meta_path(out_path),
            {
                **metadata,
                "status": "complete",
                "pairs": len(jobs),
                "rows": len(ordered),
                # note -> pairs it applied to, among the pairs decoded by this run (rows kept
                # by --resume are not decoded again).
                "notes": dict(sorted(all_notes.items())),
            },
        )
    # Every rank learns the merged totals (for its exit code) and how much each rank scored.
    shared = ctx.gather(
        {"scored": len(new_rows), "rows": stats.pairs, "failed": stats.pairs_with_errors}
    )
    run = ScoreRun(
        stats=stats,
        rows=shared[0]["rows"],
        scored=sum(d["scored"] for d in shared),
        resumed=len(kept),
        failed=shared[0]["failed"],
        dropped=dropped,
    )
    return run


def _sort_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row["reference"], row["distorted"])


def _score_jobs(
    jobs: Sequence[PairJob], settings: ScoreSettings, *, workers: int, batch_size: int, maps: "_MapWriter | None"
) -> Iterator[PairScore]:
    """Scores in job order: classic metrics (and SSIM maps) in worker threads, LPIPS here in
    batches of same-size pairs.

    The pairs waiting for LPIPS are held in float32 and flushed after ``batch_size`` pairs
    or :data:`LPIPS_BUFFER_PIXELS` pixels, whichever comes first, so memory stays bounded
    for large images too.
    """
    if "lpips" not in settings.metrics:
        for score, _pair in _iter_scored(jobs, settings, workers=workers, keep_pair=False, maps=maps):
            yield score
        return
    buffer: list[tuple[PairScore, Pair | None]] = []
    pixels = 0
    for item in _iter_scored(jobs, settings, workers=workers, keep_pair=True, maps=maps):
        buffer.append(item)
        if item[1] is not None:
            pixels += math.prod(item[1].reference.shape[:3])  # N×H×W (NumPy pairs)
        if len(buffer) >= batch_size or pixels >= LPIPS_BUFFER_PIXELS:
            yield from _flush_lpips(buffer, settings, batch_size, maps)
            buffer, pixels = [], 0
    if buffer:
        yield from _flush_lpips(buffer, settings, batch_size, maps)


def _flush_lpips(
    buffer: list[tuple[PairScore, Pair | None]], settings: ScoreSettings, batch_size: int, maps: "_MapWriter | None"
) -> Iterator[PairScore]:
    """Compute LPIPS for a buffer of prepared pairs, one network call per same-size group.

    A group that fails is retried pair by pair, so that the error lands on the right row.
    """
    want_map = maps is not None
    groups: dict[tuple, list[int]] = {}
    for i, (_score, pair) in enumerate(buffer):
        if pair is not None:
            key = (pair.reference.shape, pair.data_range, pair.backend)
            groups.setdefault(key, []).append(i)
    results: dict[int, tuple[float | None, Any, str]] = {}

    def run(pair: Pair) -> tuple[list[float], Any]:
        out = _lpips(pair, settings, batch_size=batch_size, want_map=want_map)
        return (_floats(out[0]), out[1]) if want_map else (_floats(out), None)

    for idx in groups.values():
        batch = None
        if len(idx) > 1:
            stacked, singles = _stack_pairs(buffer, idx)
            try:
                batch = run(stacked)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
            del stacked
        else:
            singles = [buffer[idx[0]][1]]
        for k, i in enumerate(idx):
            if batch is not None:
                results[i] = (batch[0][k], None if batch[1] is None else batch[1][k], "")
                continue
            try:
                values, m = run(singles[k])
                results[i] = (values[0], None if m is None else m[0], "")
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                results[i] = (None, None, f"lpips: {_one_line(exc)}")
    for i, (score, _pair) in enumerate(buffer):
        if i in results:
            value, lpips_map, err = results[i]
            score.values["lpips"] = value
            if maps is not None and lpips_map is not None:
                try:
                    maps.write_lpips(score.distorted, lpips_map)
                except Exception as exc:
                    err = f"lpips map: {_one_line(exc)}"
            if err:
                score.error = f"{score.error}; {err}" if score.error else err
        yield score


def _stack_pairs(buffer: list[tuple[PairScore, Pair | None]], idx: list[int]) -> tuple[Pair, list[Pair]]:
    """One float32 batch of the same-size pairs ``buffer[i]`` (``i`` in ``idx``), and each
    pair again as a view into it (for a retry pair by pair).

    Each pair is copied into a preallocated batch and released from ``buffer`` at once, so
    the pixels exist about once, not twice (``np.empty`` pages are touched as they fill).
    """
    first = buffer[idx[0]][1]
    n = len(idx)
    ref = np.empty((n, *first.reference.shape[1:]), dtype=np.float32)
    dist = np.empty_like(ref)
    template = first.with_pixels(None, None)
    del first
    names = []
    for k, i in enumerate(idx):
        score, pair = buffer[i]
        ref[k], dist[k] = pair.reference[0], pair.distorted[0]
        names.append(pair.names)
        buffer[i] = (score, None)
        del pair
    stacked = template.with_pixels(
        ref, dist, batched=True, names=(f"{names[0][0]} (+{n - 1} more)", f"{names[0][1]} (+{n - 1} more)")
    )
    singles = [template.with_pixels(ref[k : k + 1], dist[k : k + 1], names=names[k]) for k in range(n)]
    return stacked, singles


class _MapWriter:
    """Writes per-pair heat-maps as ``<folder>/<metric>/<distorted path>.png``.

    The distorted file's relative path is kept (its extension replaced by ``.png`` when it
    is ``.png`` already, appended otherwise, so ``a.png`` and ``a.jpg`` never collide);
    absolute paths and ``..`` lose their leading parts so that every map stays inside
    ``folder``. The pictures are drawn as ``iqa ssim --map`` and ``iqa lpips --map`` draw them.
    """

    def __init__(self, folder: str | os.PathLike, settings: ScoreSettings) -> None:
        self.folder = Path(folder)
        self.settings = settings

    def path(self, metric: str, distorted: str) -> Path:
        from pathlib import PurePosixPath

        parts = [p for p in PurePosixPath(distorted.replace("\\", "/")).parts if p not in ("/", "..", ".")]
        name = parts[-1] if parts else "image"
        if not name.lower().endswith(".png"):
            name += ".png"
        out = self.folder.joinpath(metric, *parts[:-1], name)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def write_ssim(self, distorted: str, pair: Pair) -> None:
        from iqa.maps import render_heatmap
        from iqa.metrics.ssim import compute_ssim

        _value, ssim_map = compute_ssim(
            pair, color=self.settings.color, crop_border=self.settings.crop_border, full=True
        )
        plane = np.asarray(ssim_map[0]).mean(axis=-1)  # valid region, channels averaged
        h, w = plane.shape
        render_heatmap(
            plane, self.path("ssim", distorted), vmin=min(0.0, float(plane.min())), vmax=1.0, reverse=True,
            title=f"SSIM map, valid region {w}x{h}: bright = different",
        )

    def write_lpips(self, distorted: str, lpips_map: Any) -> None:
        from iqa.maps import render_heatmap

        m = np.asarray(lpips_map, dtype=np.float64)
        h, w = m.shape
        render_heatmap(
            m, self.path("lpips", distorted), vmin=0.0,
            title=f"LPIPS distance ({self.settings.lpips_net}, v{self.settings.lpips_version}), {w}x{h}: "
            "bright = different",
        )
