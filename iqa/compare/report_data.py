"""What a report shows, read from ``iqa compare``'s folder or from one ``iqa score`` output.

No plotting and no HTML here: this module reads the files (``summary.json`` and each
method's score file, or one score file and its sidecar), joins the methods' rows by image,
computes what a single score file does not carry (its summary), and picks the gallery
images. The numbers are the files' own: a value in the page is the float the score file
holds, never recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iqa import registry
from iqa.errors import IQAError
from iqa.outfile import describe as describe_os_error, file_kind
from iqa.scoring.rowfile import meta_path, read_rows

__all__ = [
    "Method", "Metric", "Results", "differing", "json_value", "load_results", "paired_keys", "paired_values", "worst",
]

#: The ``format`` of the summary.json files this reader understands (the major version).
COMPARE_FORMAT = "iqa-compare/1"

_SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Metric:
    """One metric column.

    Attributes:
        key: the column (the Python name, ``ms_ssim``).
        label: the command-line name (``ms-ssim``).
        higher: whether higher values are better (``None``: unknown, nothing is marked best).
        unit: the unit, if any.
    """

    key: str
    label: str
    higher: bool | None
    unit: str | None = None

    @classmethod
    def from_registry(cls, column: str) -> "Metric":
        spec = registry.METRICS.get(column)
        if spec is None or spec.kind != "pair":
            return cls(column, column, None)
        return cls(spec.key, spec.name, spec.higher_is_better, spec.unit or None)


@dataclass
class Method:
    """One method's per-image rows.

    Attributes:
        name: the method's name.
        scores: its score file.
        reference_root, distorted_root: the folders its rows' paths are relative to (from
            the file's sidecar; ``None`` when unknown).
        rows: image key → row (``reference``, ``distorted``, one float or ``None`` per
            metric, ``error``), in the file's order.
        n_failed: rows with an error.
        missing: images scored by another method but not by this one (from the summary).
    """

    name: str
    scores: Path
    reference_root: Path | None
    distorted_root: Path | None
    rows: dict[str, dict[str, Any]]
    n_failed: int = 0
    missing: list[str] = field(default_factory=list)


@dataclass
class Results:
    """Everything a report shows.

    Attributes:
        kind: ``"compare"`` (a comparison's folder) or ``"score"`` (one score file).
        source: the folder or file read.
        metrics, methods: in the files' order.
        baseline: the method the others are compared with (``None`` for one score file).
        keys: every image key, sorted by code point.
        summary: method → metric → ``n``, ``n_inf``, ``mean``, ``median``, ``std``... (from
            summary.json, or computed from the single score file).
        paired: method → metric → the paired statistics against the baseline (summary.json's).
        statistics: summary.json's description of the statistics, if any.
        n_common: images every method scored, if known.
        settings: the scoring settings.
        command: the command line that produced the results, if recorded.
        created, iqa_version: when and by which iqa the results were written, if recorded.
        warnings: problems found while reading (shown on the page and warned).
    """

    kind: str
    source: Path
    metrics: list[Metric]
    methods: list[Method]
    baseline: str | None
    keys: list[str]
    summary: dict[str, Any]
    paired: dict[str, Any]
    statistics: dict[str, Any] | None
    n_common: int | None
    settings: dict[str, Any]
    command: list[str] | None
    created: str | None
    iqa_version: str | None
    warnings: list[str] = field(default_factory=list)

    def method(self, name: str) -> Method:
        return next(m for m in self.methods if m.name == name)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def load_results(path: str | os.PathLike) -> Results:
    """Read ``iqa compare``'s output folder (its ``summary.json`` and score files) or one
    ``iqa score`` output file (CSV, JSON or JSONL, with its ``.meta.json`` sidecar if any).

    Raises:
        IQAError: the path is neither, or a file cannot be read (naming the file and why).
    """
    p = Path(path)
    if p.is_dir():
        summary = p / "summary.json"
        if not summary.is_file():
            raise IQAError(
                f"{p}: a folder without summary.json; give iqa compare's output folder or one "
                "iqa score output file"
            )
        return _load_compare(p, summary)
    if p.is_file():
        return _load_score(p)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise IQAError(f"{p}: {describe_os_error(exc)}") from None
    raise IQAError(f"{p}: {file_kind(st.st_mode)}, not a score file or a comparison folder")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IQAError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IQAError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class _ScoreFile:
    columns: list[str]
    rows: list[dict[str, Any]]
    meta: dict[str, Any]


def _read_score_file(path: Path) -> _ScoreFile:
    """Rows and metadata of an ``iqa score`` output in any of its formats."""
    sidecar = meta_path(path)
    meta: dict[str, Any] = {}
    if sidecar.is_file():
        doc = _read_json(sidecar)
        meta = doc if isinstance(doc, dict) else {}
    fmt = meta.get("format") or _SUFFIX_FORMATS.get(path.suffix.lower(), "csv")
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise IQAError(f"{path}: cannot read ({exc.strerror or exc})") from None
    head = text[:4096]
    if "\x00" in head or any("\udc80" <= ch <= "\udcff" for ch in text.split("\n", 1)[0][:4096]):
        # Binary content (an image given by mistake): a score file's header is plain text.
        raise IQAError(f"{path}: not a CSV/JSON score file (binary content); give iqa compare's output folder "
                       "or one iqa score output file")
    columns = meta.get("columns")
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = {}
        if isinstance(doc, dict):
            columns = columns or doc.get("columns")
            if not meta and isinstance(doc.get("metadata"), dict):
                meta = doc["metadata"]
    elif fmt == "jsonl" and not columns:
        first = text.split("\n", 1)[0]
        try:
            columns = list(json.loads(first))
        except (json.JSONDecodeError, TypeError):
            columns = None
    elif fmt == "csv" and not columns:
        columns = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), None)
    if fmt not in ("csv", "json", "jsonl"):
        raise IQAError(f"{path}: unknown score file format {fmt!r} (in {sidecar.name})")
    if (
        not isinstance(columns, list)
        or len(columns) < 3
        or columns[:2] != ["reference", "distorted"]
        or columns[-1] != "error"
    ):
        raise IQAError(
            f"{path}: not an iqa score file (expected the columns reference, distorted, one per "
            f"metric, error; found {columns!r})"
        )
    return _ScoreFile([str(c) for c in columns], read_rows(path, fmt, columns), meta)


def _root(value: Any) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def _load_compare(folder: Path, summary_file: Path) -> Results:
    doc = _read_json(summary_file)
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if not isinstance(fmt, str) or fmt.split("/")[0] != COMPARE_FORMAT.split("/")[0]:
        raise IQAError(f"{summary_file}: not an iqa compare summary (format {fmt!r}, expected {COMPARE_FORMAT})")
    if fmt != COMPARE_FORMAT:
        raise IQAError(f"{summary_file}: written in format {fmt}; this iqa reads {COMPARE_FORMAT}: upgrade iqa")
    try:
        metrics = [
            Metric(
                str(m["column"]),
                str(m.get("name", m["column"])),
                {"higher": True, "lower": False}.get(m.get("direction")),
                m.get("unit") or None,
            )
            for m in doc["metrics"]
        ]
        entries = list(doc["methods"])
        names = [str(e["name"]) for e in entries]
    except (KeyError, TypeError) as exc:
        raise IQAError(f"{summary_file}: incomplete summary (missing {exc})") from None
    key_column = doc.get("keys") or "reference"
    warnings: list[str] = []
    methods = []
    default_ref = _root(doc.get("reference"))
    for entry in entries:
        differ = entry.get("settings_differ") or []
        if differ:
            warnings.append(f"method {entry['name']} was scored with other settings ({', '.join(map(str, differ))}); "
                            "its numbers are not comparable with the others'")
        scores = Path(str(entry.get("scores", "")))
        if not scores.is_absolute():
            scores = folder / scores
        source = _root(entry.get("source"))
        if not scores.is_file():
            warnings.append(f"{scores}: the scores of method {entry['name']} are missing; its images are not shown")
            methods.append(Method(str(entry["name"]), scores, default_ref, source, {}, 0, list(entry.get("missing") or [])))
            continue
        sf = _read_score_file(scores)
        rows: dict[str, dict[str, Any]] = {}
        duplicates = 0
        for row in sf.rows:
            key = str(row.get(key_column, row["reference"]))
            if key in rows:
                duplicates += 1
                continue
            rows[key] = row
        if duplicates:
            warnings.append(f"{scores}: {duplicates} row(s) repeat an image already listed; the first is shown")
        methods.append(
            Method(
                str(entry["name"]),
                scores,
                _root(sf.meta.get("reference_root")) or default_ref,
                _root(sf.meta.get("distorted_root")) or (source if source and source.is_dir() else None),
                rows,
                sum(1 for r in sf.rows if r["error"]),
                [str(x) for x in entry.get("missing") or []],
            )
        )
    baseline = doc.get("baseline") if doc.get("baseline") in names else (names[0] if names else None)
    keys = sorted({k for m in methods for k in m.rows})
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    return Results(
        kind="compare",
        source=folder,
        metrics=metrics,
        methods=methods,
        baseline=baseline,
        keys=keys,
        summary=doc.get("summary") or {},
        paired=doc.get("paired") or {},
        statistics=doc.get("statistics"),
        n_common=doc.get("n_common"),
        settings=settings,
        command=doc.get("command"),
        created=doc.get("created"),
        iqa_version=doc.get("iqa_version"),
        warnings=warnings,
    )


def _load_score(path: Path) -> Results:
    sf = _read_score_file(path)
    metrics = [Metric.from_registry(c) for c in sf.columns[2:-1]]
    warnings = []
    if not sf.meta:
        warnings.append(
            f"{path}: no sidecar {meta_path(path).name}: the settings are unknown and image paths "
            f"are taken as relative to {path.parent}"
        )
    # An image is named by its reference when each reference has one row (one method's
    # folder), else by its distorted file (a --pairs file listing several per reference).
    refs = [r["reference"] for r in sf.rows]
    dists = [r["distorted"] for r in sf.rows]
    if len(set(refs)) == len(refs):
        keys = refs
    elif len(set(dists)) == len(dists):
        keys = dists
    else:
        keys = [f"{r} | {d}" for r, d in zip(refs, dists)]
    rows = dict(zip(keys, sf.rows))
    name = path.name
    default_root = path.parent
    method = Method(
        name,
        path,
        _root(sf.meta.get("reference_root")) or default_root,
        _root(sf.meta.get("distorted_root")) or default_root,
        rows,
        sum(1 for r in sf.rows if r["error"]),
    )
    settings = sf.meta.get("settings") if isinstance(sf.meta.get("settings"), dict) else {}
    return Results(
        kind="score",
        source=path,
        metrics=metrics,
        methods=[method],
        baseline=None,
        keys=sorted(rows),
        summary={name: {m.key: describe([r[m.key] for r in sf.rows], [not r["distorted"] for r in sf.rows])
                        for m in metrics}},
        paired={},
        statistics=None,
        n_common=None,
        settings=settings,
        command=sf.meta.get("command"),
        created=None,
        iqa_version=settings.get("iqa_version"),
        warnings=warnings,
    )


def describe(values: list[float | None], missing: list[bool] | None = None) -> dict[str, Any]:
    """n, n_inf, failed, missing, mean, median, std (ddof=1), min and max of one metric's values.

    As everywhere in iqa, ``+inf`` (PSNR of identical images) is counted in ``n`` and
    ``n_inf`` and left out of the other statistics; ``None`` (a failed cell) in ``failed``,
    unless ``missing`` says that row is a reference without a distorted partner (counted in
    ``missing``, as ``iqa compare`` names it).
    """
    absent = list(missing) if missing is not None else [False] * len(values)
    n_missing = sum(1 for v, a in zip(values, absent) if a and v is None)
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    finite = np.array([v for v in numbers if math.isfinite(v)], dtype=np.float64)

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {
        "n": len(numbers),
        "n_inf": len(numbers) - finite.size,
        "failed": len(values) - len(numbers) - n_missing,
        "missing": n_missing,
        "mean": num(finite.mean()) if finite.size else None,
        "median": num(np.median(finite)) if finite.size else None,
        "std": num(finite.std(ddof=1)) if finite.size > 1 else None,
        "min": num(finite.min()) if finite.size else None,
        "max": num(finite.max()) if finite.size else None,
    }


# --------------------------------------------------------------------------------------
# What the plots and galleries show
# --------------------------------------------------------------------------------------


def _usable(v: Any) -> bool:
    return v is not None and not math.isnan(v)


def values_of(method: Method, metric: Metric) -> np.ndarray:
    """A method's finite values of a metric (failed cells and PSNR's inf left out)."""
    vals = [r[metric.key] for r in method.rows.values() if _usable(r.get(metric.key))]
    return np.array([v for v in vals if math.isfinite(v)], dtype=np.float64)


def _difference(a: float, b: float) -> float:
    """``b - a``, with inf - inf a tie (both identical to their references)."""
    if math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0):
        return 0.0
    return b - a


def paired_keys(results: Results, metric: Metric) -> list[str]:
    """The images every method scored for ``metric`` (a value, finite or not): the images
    ``iqa compare``'s paired statistics use (its ``n``)."""
    rows = [m.rows for m in results.methods]
    return [k for k in results.keys if all(k in r and _usable(r[k].get(metric.key)) for r in rows)]


def paired_values(results: Results, metric: Metric, method: str) -> tuple[np.ndarray, int, int | None]:
    """Per-image ``method - baseline`` over the images the paired statistics use (every
    method scored them, :func:`paired_keys`) where both values are finite (the images behind
    ``diff``); the number of those images left out because a value is infinite; and how many
    of these the method wins by the metric's direction (``None`` when it is unknown)."""
    base = results.method(results.baseline).rows
    other = results.method(method).rows
    diffs, infinite, won = [], 0, 0
    for key in paired_keys(results, metric):
        va, vb = base[key][metric.key], other[key][metric.key]
        if math.isfinite(va) and math.isfinite(vb):
            diffs.append(vb - va)
        else:
            infinite += 1
            won += (vb > va) if metric.higher else (vb < va)
    return np.array(diffs, dtype=np.float64), infinite, (won if metric.higher is not None else None)


def worst(method: Method, metric: Metric, k: int) -> list[tuple[str, float]]:
    """The ``k`` images on which ``method`` scores worst by ``metric``'s direction
    (failed cells left out; ties by image key)."""
    if metric.higher is None:
        return []
    items = [(key, r[metric.key]) for key, r in method.rows.items() if _usable(r.get(metric.key))]
    sign = 1.0 if metric.higher else -1.0
    items.sort(key=lambda kv: (sign * kv[1], kv[0]))
    return items[:k]


def differing(results: Results, metric: Metric, a: str, b: str, k: int) -> list[tuple[str, float, float, float]]:
    """The ``k`` images where methods ``a`` and ``b`` differ most by ``metric``:
    ``(key, value_a, value_b, value_b - value_a)``, largest ``|difference|`` first (an
    infinite difference, e.g. one PSNR inf, first of all; inf - inf is a tie)."""
    ra, rb = results.method(a).rows, results.method(b).rows
    items = []
    for key, row in rb.items():
        other = ra.get(key)
        if other is None or not (_usable(row.get(metric.key)) and _usable(other.get(metric.key))):
            continue
        va, vb = other[metric.key], row[metric.key]
        d = _difference(va, vb)
        if d != 0.0:
            items.append((key, va, vb, d))
    items.sort(key=lambda t: (-abs(t[3]), t[0]))
    return items[:k]


def json_value(v: Any) -> Any:
    """A value for the page's JSON: floats as they are, non-finite ones as the text that
    ``float()`` and the page read back (``"inf"``, ``"-inf"``, ``"nan"``), None as null."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
