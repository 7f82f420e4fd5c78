"""Comparing methods: each method's per-image scores (scored here with the scoring engine,
or read from an existing score file), joined by reference image, summarised per method and
compared with a baseline; the result as :class:`Comparison`, ``summary.json`` and
``summary.csv``.

Layout of an output folder ``OUTDIR``:

- ``scores/NAME.csv`` (and ``scores/NAME.csv.meta.json``): a scored method's rows, written by
  the same file run as ``iqa score REF DIR -o scores/NAME.csv`` (resumable the same way);
- ``summary.json``: :meth:`Comparison.to_dict` (the format ``iqa-compare/1``);
- ``summary.csv``: :meth:`Comparison.to_rows`, one row per method and metric.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from iqa import registry
from iqa.compare.stats import Bootstrap, holm, paired_statistics, summary_statistics
from iqa.errors import IQAError, IQAWarning, OptionError, OptionNamer

__all__ = ["FORMAT", "SUMMARY_COLUMNS", "Comparison", "compare", "read_score_file"]

#: The ``format`` of ``summary.json``.
FORMAT = "iqa-compare/1"

#: Columns of ``summary.csv`` (one row per method and metric; the paired columns are empty
#: for the baseline).
SUMMARY_COLUMNS = (
    "method", "metric", "n", "n_inf", "mean", "median", "std", "ci_low", "ci_high",
    "diff", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "win_rate", "tie_rate", "loss_rate", "n_paired",
    "ci_method", "n_diff", "diff_ci_method", "significant", "direction", "wins", "ties", "losses",
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")

_INF_NOTE = (
    "infinite values (PSNR of identical images) are counted in n_inf and left out of mean, median, "
    "std and intervals; paired differences and their interval use the images where both values are "
    "finite, while wins/ties/losses and the Wilcoxon test use every paired image, inf - inf being a "
    "tie and an infinite value beating any finite one in the metric's direction"
)

_RUN_OPTIONS = {"resume": ("resume", True), "overwrite": ("overwrite", True), "output": "output"}


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        summary: method → metric → ``{"n", "n_inf", "mean", "median", "std", "ci_low",
            "ci_high", "ci_method"}`` over that method's scored images.
        paired: method (every one but the baseline) → metric → ``{"n", "n_diff", "n_inf",
            "diff", "ci_low", "ci_high", "ci_method", "p_value", "p_holm", "significant", "direction",
            "win_rate", "tie_rate", "loss_rate", "wins", "ties", "losses"}`` against the
            baseline, over the images every method scored for that metric.
        metadata: everything else ``summary.json`` holds: format, versions, command,
            reference, baseline, metrics (direction, unit, range), methods (source, score
            file, rows, failures, missing images), ``n_common``, the statistics' conventions
            and the scoring settings.
        outdir: the folder the comparison was saved to (the base of relative paths), if any.

    Numbers are Python floats or ``None`` (undefined: no value, one value, an interval of
    nothing); never NaN or infinity.
    """

    summary: dict[str, dict[str, dict[str, Any]]]
    paired: dict[str, dict[str, dict[str, Any]]]
    metadata: dict[str, Any]
    outdir: str | None = field(default=None, compare=False)

    @property
    def baseline(self) -> str:
        return self.metadata["baseline"]

    @property
    def methods(self) -> list[str]:
        return [m["name"] for m in self.metadata["methods"]]

    @property
    def metrics(self) -> list[str]:
        return [m["column"] for m in self.metadata["metrics"]]

    def to_dict(self) -> dict[str, Any]:
        """The object ``summary.json`` holds (JSON-ready)."""
        return _jsonable({**self.metadata, "summary": self.summary, "paired": self.paired})

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per method and metric, keyed by :data:`SUMMARY_COLUMNS` (``summary.csv``)."""
        rows = []
        for method in self.methods:
            for metric in self.metrics:
                s = self.summary[method][metric]
                p = self.paired.get(method, {}).get(metric)
                row = {"method": method, "metric": metric, **{k: s[k] for k in SUMMARY_COLUMNS[2:9]}}
                row["ci_method"] = s.get("ci_method")
                p = p or {}
                row.update({
                    "diff": p.get("diff"), "diff_ci_low": p.get("ci_low"), "diff_ci_high": p.get("ci_high"),
                    "p_value": p.get("p_value"), "p_holm": p.get("p_holm"), "win_rate": p.get("win_rate"),
                    "tie_rate": p.get("tie_rate"), "loss_rate": p.get("loss_rate"), "n_paired": p.get("n"),
                    "n_diff": p.get("n_diff"), "diff_ci_method": p.get("ci_method"),
                    "significant": p.get("significant"), "direction": p.get("direction"),
                    "wins": p.get("wins"), "ties": p.get("ties"), "losses": p.get("losses"),
                })
                rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """:meth:`to_rows` as a ``pandas.DataFrame`` (pandas is optional: not installed by iqa).

        Raises:
            ImportError: pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Comparison.to_pandas() needs pandas, which iqa does not install: pip install pandas "
                "(or use Comparison.to_rows() / to_dict())"
            ) from None
        return pd.DataFrame(self.to_rows(), columns=list(SUMMARY_COLUMNS))

    def save(self, outdir: str | os.PathLike) -> "Comparison":
        """Write ``summary.json`` and ``summary.csv`` into ``outdir`` (created if needed).

        Score files named relative to the folder the comparison came from are renamed by
        their absolute path when saving elsewhere. Returns the comparison as saved.
        """
        out = Path(outdir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IQAError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
        result = self
        if self.outdir is not None and Path(self.outdir).resolve() != out.resolve():
            methods = []
            for m in self.metadata["methods"]:
                if not os.path.isabs(m["scores"]):
                    m = {**m, "scores": os.path.abspath(os.path.join(self.outdir, m["scores"]))}
                methods.append(m)
            result = Comparison(self.summary, self.paired, {**self.metadata, "methods": methods}, os.fspath(out))
        elif self.outdir is None:
            result = Comparison(self.summary, self.paired, self.metadata, os.fspath(out))
        from iqa.scoring.rowfile import write_json_atomic, write_text_atomic

        write_json_atomic(out / "summary.json", result.to_dict())
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        for row in result.to_rows():
            writer.writerow([_cell(row[c]) for c in SUMMARY_COLUMNS])
        write_text_atomic(out / "summary.csv", buf.getvalue())
        return result

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Comparison":
        """Read a saved comparison: ``summary.json`` or the folder holding it.

        Raises:
            IQAError: the file is missing, not JSON, or not an ``iqa-compare/1`` summary.
        """
        p = Path(path)
        if p.is_dir():
            p = p / "summary.json"
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise IQAError(f"{p}: cannot read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IQAError(f"{p}: not a JSON file ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise IQAError(f"{p}: not a comparison summary (format {got!r}, expected {FORMAT!r})")
        summary, paired = doc.pop("summary"), doc.pop("paired")
        return cls(summary, paired, doc, os.fspath(p.parent))

    def format_table(self) -> str:
        """A readable text table: each method's statistics, then each method against the baseline."""
        return format_table(self)


# --------------------------------------------------------------------------------------
# Reading score files
# --------------------------------------------------------------------------------------


def _score_format(path: Path) -> str:
    return {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower(), "csv")


def _number(value: Any, where: str, column: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise IQAError(f"{where}: {column} is {value!r}, not a number")
    try:
        x = float(value)
    except ValueError:
        raise IQAError(f"{where}: {column} is {value!r}, not a number") from None
    if math.isnan(x):
        raise IQAError(f"{where}: {column} is NaN; a failed cell is left empty (null) in iqa's score files")
    return x


def read_score_file(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str], dict[str, Any] | None]:
    """Rows of a score file in any of ``iqa score``'s formats (by extension: ``.json``,
    ``.jsonl``/``.ndjson``, otherwise CSV).

    Returns:
        ``(rows, metric columns, metadata)``: rows with ``reference``, ``distorted``,
        ``error`` and a float or ``None`` per metric column; the columns that are metrics of
        the registry, in the file's order; the sidecar's (or a JSON file's) metadata, if any.

    Raises:
        IQAError: unreadable, no ``reference`` column, a value that is not a number, or the
            sidecar says the run that writes the file has not finished.
    """
    p = Path(path)
    fmt = _score_format(p)
    try:
        text = p.read_text(encoding="utf-8-sig", errors="strict")
    except OSError as exc:
        raise IQAError(f"{p}: cannot read the score file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise IQAError(f"{p}: not a UTF-8 text file; expected a score file of iqa score (CSV, JSON or JSONL)") from None
    metadata: dict[str, Any] | None = None
    raw: list[tuple[str, dict[str, Any]]] = []  # (where, row)
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IQAError(f"{p}: not a complete JSON document ({exc.msg} at line {exc.lineno}); an "
                           "unfinished run is completed with iqa score --resume") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise IQAError(f"{p}: expected iqa score's JSON ({{\"metadata\": ..., \"rows\": [...]}})")
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else None
        raw = [(f"{p}: row {i + 1}", r) for i, r in enumerate(doc["rows"])]
        header = list(doc.get("columns") or (raw[0][1] if raw else []))
    elif fmt == "jsonl":
        header = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw.append((f"{p}:{i}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise IQAError(f"{p}:{i}: not a JSON row ({exc.msg})") from None
            if not header and isinstance(raw[-1][1], dict):
                header = list(raw[-1][1])
    else:
        reader = csv.reader(io.StringIO(text))
        header = [h.strip() for h in next(reader, [])]
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            where = f"{p}:{reader.line_num}"
            if len(fields) != len(header):
                raise IQAError(f"{where}: {len(fields)} cells but the header has {len(header)}")
            raw.append((where, dict(zip(header, fields))))
    if "reference" not in header:
        raise IQAError(f"{p}: no 'reference' column (columns: {', '.join(map(str, header)) or 'none'}); "
                       "expected a score file of iqa score")
    sidecar = p.with_name(p.name + ".meta.json")
    if sidecar.is_file():
        try:
            side = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IQAError(f"{sidecar}: unreadable ({exc})") from None
        if isinstance(side, dict):
            if side.get("status") == "running":
                raise IQAError(f"{p}: its run has not finished ({sidecar.name} says running); finish it with "
                               "iqa score ... --resume, then compare")
            metadata = side
    metrics = [c for c in header if c in registry.METRICS and registry.METRICS[c].kind == "pair"]
    rows = []
    for where, r in raw:
        if not isinstance(r, dict):
            raise IQAError(f"{where}: not a row object")
        ref = r.get("reference")
        if ref in (None, ""):
            raise IQAError(f"{where}: empty 'reference' cell")
        row = {"reference": str(ref), "distorted": str(r.get("distorted") or ""), "error": str(r.get("error") or "")}
        for c in metrics:
            row[c] = _number(r.get(c), where, c)
        rows.append(row)
    return rows, metrics, metadata


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------


@dataclass
class _Method:
    name: str
    given: str
    kind: str  # "folder" or "scores"
    pairs: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    scores: str = ""
    by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)


def _check_names(names: Sequence[str]) -> None:
    seen = set()
    for n in names:
        if not isinstance(n, str) or not _NAME.match(n):
            raise OptionError(
                f"method name {n!r}: use letters, digits and . _ + - (starting with a letter or digit); it names "
                "the method's score file"
            )
        if n in seen:
            raise OptionError(f"method name {n!r} is given twice")
        seen.add(n)


def _index_rows(m: _Method) -> None:
    for row in m.rows:
        ref = row["reference"]
        if ref in m.by_ref:
            raise IQAError(
                f"{m.scores}: reference {ref} has two rows ({m.by_ref[ref]['distorted']} and {row['distorted']}); "
                "methods are compared image by image, so give one distorted image per reference"
            )
        m.by_ref[ref] = row


def _settings_diff(a: dict[str, Any] | None, b: dict[str, Any] | None, metrics: Sequence[str]) -> list[str] | None:
    """Keys of the scoring settings that differ and change the compared metrics' numbers."""
    if a is None or b is None:
        return None
    skip = {"iqa_version", "metrics", "conventions_apply_to"}
    keys = [k for k in sorted(set(a) | set(b)) if k not in skip and (k not in registry.METRICS or k in metrics)]
    return [k for k in keys if a.get(k) != b.get(k)]


def _metric_info(key: str) -> dict[str, Any]:
    spec = registry.METRICS[key]
    return {
        "name": spec.name,
        "column": key,
        "direction": "higher" if spec.higher_is_better else "lower",
        "unit": spec.unit or None,
        "value_range": [v if math.isfinite(v) else None for v in spec.value_range],
    }


def _statistics(methods: list[_Method], metrics: Sequence[str], baseline: str, boot: Bootstrap,
                alpha: float) -> tuple[dict, dict, list[str], int]:
    union = sorted({ref for m in methods for ref in m.by_ref})
    summary: dict[str, dict[str, Any]] = {}
    for m in methods:
        summary[m.name] = {}
        for metric in metrics:
            values = [m.by_ref[r][metric] for r in union if r in m.by_ref and m.by_ref[r][metric] is not None]
            summary[m.name][metric] = summary_statistics(values, boot, f"mean/{m.name}/{metric}")
    base = next(m for m in methods if m.name == baseline)
    paired: dict[str, dict[str, Any]] = {m.name: {} for m in methods if m.name != baseline}
    for metric in metrics:
        refs = [r for r in union if all(r in m.by_ref and m.by_ref[r][metric] is not None for m in methods)]
        b = [base.by_ref[r][metric] for r in refs]
        higher = registry.METRICS[metric].higher_is_better
        for m in methods:
            if m.name != baseline:
                a = [m.by_ref[r][metric] for r in refs]
                paired[m.name][metric] = paired_statistics(a, b, higher, boot, f"diff/{m.name}/{metric}")
    cells = [paired[name][metric] for name in paired for metric in metrics]
    for cell, p in zip(cells, holm([c["p_value"] for c in cells])):
        cell["p_holm"] = p
        cell["significant"] = p is not None and p <= alpha
    n_common = sum(
        all(r in m.by_ref and all(m.by_ref[r][k] is not None for k in metrics) for m in methods) for r in union
    )
    return summary, paired, union, n_common


def _pairs_for(pairs: Any, folders: Sequence[str]) -> dict[str, str | None]:
    if pairs is None or isinstance(pairs, (str, os.PathLike)):
        return {n: (None if pairs is None else os.fspath(pairs)) for n in folders}
    out = {n: None for n in folders}
    for name, path in dict(pairs).items():
        if name not in out:
            raise OptionError(
                f"a pair list is given for {name!r}, which is not a method scored from a folder "
                f"({', '.join(folders) or 'none'})"
            )
        out[name] = os.fspath(path)
    return out


def compare(
    reference: str | os.PathLike | None,
    methods: Mapping[str, str | os.PathLike],
    *,
    output: str | os.PathLike | None = None,
    pairs: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    metrics: Sequence[str] | str | None = None,
    baseline: str | None = None,
    seed: int = 0,
    n_resamples: int = 10_000,
    ci_method: str = "bca",
    confidence: float = 0.95,
    alpha: float = 0.05,
    match_stem: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 0,
    command: Sequence[str] | None = None,
    progress: Callable[[str, int], Callable[[int, int], None] | None] | None = None,
    on_pairing: Callable[[str, Any], None] | None = None,
    namer: OptionNamer | None = None,
    **settings: Any,
) -> Comparison:
    """Compare methods image by image against a baseline.

    Each method is a folder of outputs, scored against ``reference`` by the scoring engine
    into ``output/scores/NAME.csv`` (the file ``iqa score -o`` writes, resumable), or an
    existing score file of ``iqa score`` (CSV, JSON or JSONL), read as it is. Methods are
    joined by the ``reference`` column. Per method and metric: n, the number of infinite
    values, mean, median, std and a bootstrap interval of the mean; per method against the
    baseline and metric, over the images every method scored: the mean difference with a
    paired-bootstrap interval, the two-sided Wilcoxon signed-rank p-value (zero_method
    ``zsplit``), Holm-adjusted over methods × metrics, and the shares of images the method
    wins, ties and loses by the metric's direction. Conventions: ``docs/conventions.md``,
    "Comparing methods".

    Args:
        reference: the folder of reference images (``None`` when every method is a score file).
        methods: name → folder (to score) or score file, in order; names label files and
            columns (letters, digits, ``. _ + -``).
        output: the output folder: score files of the scored methods, ``summary.json``,
            ``summary.csv``. Needed when a method is a folder; otherwise nothing is written
            unless given.
        pairs: a pair list (CSV with ``reference,distorted``) used for every folder method,
            its distorted paths relative to each method's folder; or name → pair list. Without
            it, folders are matched by relative path (``match_stem``: without extension).
        metrics: metric names (default: those of ``iqa score``, or, with score files only,
            the metrics every file has).
        baseline: the method the others are compared with (default: the first).
        seed, n_resamples, ci_method, confidence: the bootstrap (``"bca"`` or
            ``"percentile"``); every interval has its own generator seeded from ``seed``.
        alpha: the family-wise error rate for ``significant`` (Holm-adjusted p ≤ alpha).
        match_stem, resume, overwrite, workers: as in ``iqa score``; ``resume`` and
            ``overwrite`` apply to every score file and to the summaries.
        command: the command line to record (the CLI passes its own).
        progress: ``progress(name, pairs)`` returns an ``on_row(done, total)`` callback for
            scoring that method, or ``None``.
        on_pairing: called with ``(name, Pairing)`` after matching a method's folder.
        namer: how per-pair error messages name options.
        **settings: scoring settings, as :meth:`iqa.scoring.ScoreSettings.build` takes them
            (``data_range``, ``color``, ``crop_border``, ``ssim_win_size``, ``device``...), or
            ``settings=`` a built :class:`~iqa.scoring.ScoreSettings`.

    Returns:
        A :class:`Comparison` (saved into ``output`` when given).

    Raises:
        OptionError: a bad name, option or combination.
        IQAError: unreadable inputs, outputs that exist without ``resume``/``overwrite``,
            nothing to pair, score files without the compared metrics.

    Example:
        >>> c = iqa.compare("data/samples/reference", {"blur": "data/samples/blur",
        ...                 "noise": "data/samples/noise"}, output="cmp")  # doctest: +SKIP
        >>> c.paired["noise"]["psnr"]["diff"], c.paired["noise"]["psnr"]["p_value"]  # doctest: +SKIP
    """
    from iqa.scoring import DEFAULT_METRICS, ScoreSettings, score_to_file
    from iqa.scoring.rowfile import columns_for, read_rows

    boot = Bootstrap(method=ci_method, n_resamples=n_resamples, seed=seed, confidence=confidence)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise OptionError(f"{{alpha}} must be a number in (0, 1), got {alpha!r}", options={"alpha": "alpha"})
    if resume and overwrite:
        raise OptionError("{resume} and {overwrite} exclude each other", options=_RUN_OPTIONS)
    methods = dict(methods)
    if not methods:
        raise OptionError("no method to compare: give at least one")
    _check_names(list(methods))
    if baseline is None:
        baseline = next(iter(methods))
    elif baseline not in methods:
        raise OptionError(f"{{baseline}} {baseline!r} is not a method ({', '.join(methods)})",
                          options={"baseline": "baseline"})
    entries = []
    for name, src in methods.items():
        path = Path(src)
        if path.is_dir():
            entries.append(_Method(name, os.fspath(src), "folder"))
        elif path.is_file():
            entries.append(_Method(name, os.fspath(src), "scores", scores=os.path.abspath(src)))
        else:
            raise IQAError(f"{src}: method {name}: no such folder or score file")
    folders = [m for m in entries if m.kind == "folder"]
    for m, p in zip(folders, _pairs_for(pairs, [m.name for m in folders]).values()):
        m.pairs = p
    given_settings = settings.pop("settings", None)
    if folders:
        if reference is None:
            raise OptionError(f"methods {', '.join(m.name for m in folders)} are folders to score: give the "
                              "reference folder")
        if not Path(reference).is_dir():
            raise IQAError(f"{reference}: the reference folder does not exist")
        if output is None:
            raise OptionError("{output} is needed to score folders (the score files go there)",
                              options={"output": "output"})
        score_settings = given_settings or ScoreSettings.build(metrics or DEFAULT_METRICS, **settings)
        keys = list(score_settings.metrics)
    else:
        if given_settings is not None or settings:
            unused = ", ".join(sorted(settings)) or "settings"
            raise OptionError(f"scoring settings ({unused}) given, but every method is a score file")
        score_settings = None
        keys = []

    # Score files first: a bad one stops the run before any scoring.
    for m in entries:
        if m.kind == "scores":
            m.rows, m.columns, m.metadata = read_score_file(m.scores)
    keys = _choose_metrics(entries, keys or (list(registry.metric_names(metrics)) if metrics else []),
                           given=bool(metrics))
    # Pair every folder first: a method with nothing to score stops the run before any
    # output is made or any name is listed.
    pairings: dict[str, Any] = {}
    jobs = _jobs(folders, reference, match_stem, pairings)
    out = _prepare_output(output, folders, resume, overwrite)
    if on_pairing is not None:
        for name, pairing in pairings.items():
            on_pairing(name, pairing)
    for m in folders:
        target = Path(output) / "scores" / f"{m.name}.csv"
        on_row = progress(m.name, len(jobs[m.name])) if progress is not None else None
        score_to_file(jobs[m.name], target, score_settings, fmt="csv", resume=resume, overwrite=overwrite,
                      workers=workers, roots=(os.fspath(reference), m.given), on_row=on_row, namer=namer)
        m.rows = read_rows(target, "csv", columns_for(score_settings.metrics))
        m.columns = list(score_settings.metrics)
        m.metadata = {"settings": score_settings.provenance()}
        m.scores = f"scores/{m.name}.csv"
    for m in entries:
        _index_rows(m)

    run_settings = score_settings.provenance() if score_settings is not None else next(
        (m.metadata["settings"] for m in entries if m.metadata and isinstance(m.metadata.get("settings"), dict)), None)
    ref_abs = os.path.abspath(reference) if reference is not None else None
    summary, paired, union, n_common = _statistics(entries, keys, baseline, boot, alpha)
    metadata = {
        "format": FORMAT,
        "iqa_version": _version(),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": list(command) if command is not None else None,
        "reference": ref_abs,
        "reference_given": os.fspath(reference) if reference is not None else None,
        "baseline": baseline,
        "metrics": [_metric_info(k) for k in keys],
        "methods": [_method_info(m, union, keys, run_settings, ref_abs) for m in entries],
        "keys": "reference",
        "n_images": len(union),
        "n_common": n_common,
        "statistics": _conventions(boot, alpha),
        "settings": run_settings,
    }
    result = Comparison(summary, paired, metadata, os.fspath(out) if out is not None else None)
    return result.save(out) if out is not None else result


def _choose_metrics(entries: list[_Method], keys: list[str], given: bool = True) -> list[str]:
    """The compared metrics: ``keys`` (every score file must have them), else the metric
    columns every score file has. Default metrics (``given`` false) that a score file lacks
    are an option error naming the metrics the score files share."""
    if keys:
        for m in entries:
            lacking = [k for k in keys if m.kind == "scores" and k not in m.columns]
            if lacking and not given:
                files = [e for e in entries if e.kind == "scores"]
                shared = [k for k in registry.METRICS if all(k in e.columns for e in files)]
                hint = (f"the score files share {', '.join(shared)}: pass {{metrics}} {','.join(shared)}" if shared
                        else "the score files share no metric")
                raise OptionError(f"{m.given}: method {m.name} has no column {', '.join(lacking)} (it has "
                                  f"{', '.join(m.columns) or 'no metric'}); {hint}",
                                  options={"metrics": "metrics"})
            if lacking:
                raise IQAError(f"{m.given}: method {m.name} has no column {', '.join(lacking)} "
                               f"(it has {', '.join(m.columns) or 'no metric'}); compare fewer metrics with -m")
        return keys
    common = [k for k in registry.METRICS if all(k in m.columns for m in entries)]
    if not common:
        raise IQAError("the score files have no metric column in common: "
                       + "; ".join(f"{m.name}: {', '.join(m.columns) or 'none'}" for m in entries))
    return common


def _prepare_output(output: Any, folders: list[_Method], resume: bool, overwrite: bool) -> Path | None:
    """Refuse to replace earlier results without ``resume``/``overwrite``; create the folders."""
    if output is None:
        return None
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise IQAError(f"{out}: exists and is not a folder; {{output}} names a folder", options={"output": "output"})
    existing = [out / "scores" / f"{m.name}.csv" for m in folders]
    existing = [p for p in [*existing, out / "summary.json", out / "summary.csv"] if p.exists()]
    if existing and not (resume or overwrite):
        raise IQAError(
            f"{existing[0]}: already exists; pass {{resume}} to continue that comparison or {{overwrite}} to replace it",
            options=_RUN_OPTIONS,
        )
    from iqa.outfile import check_output

    try:
        (out / "scores" if folders else out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IQAError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    for name in ("summary.json", "summary.csv"):  # a folder or a FIFO there is refused before any scoring
        check_output(out / name, overwrite=True, what="comparison summary")
    return out


def _jobs(folders: list[_Method], reference: Any, match_stem: bool, pairings: dict[str, Any]) -> dict[str, list[Any]]:
    """Every folder method's pairs, before any scoring: a method with nothing to score, or
    with a reference paired twice, stops the run early. Folder pairings go into
    ``pairings`` (name → pairing), to be reported once every method has pairs."""
    from iqa.scoring import pair_folders, read_pairs_file

    jobs = {}
    for m in folders:
        if m.pairs is not None:
            jobs[m.name] = read_pairs_file(m.pairs, reference, m.given)
        else:
            pairing = pair_folders(reference, m.given, match_stem=match_stem)
            pairings[m.name] = pairing
            jobs[m.name] = pairing.jobs  # as iqa score: a reference without a partner is an error row
        if all(j.missing for j in jobs[m.name]):
            hint = "" if match_stem or m.pairs else "; if the extensions differ, pass {match_stem}"
            raise IQAError(f"no pairs to score between {reference} and {m.given} (method {m.name}){hint}",
                           options={"match_stem": ("match_stem", True)})
        seen: dict[str, str] = {}
        for job in jobs[m.name]:
            if job.reference in seen and not job.missing:
                raise IQAError(
                    f"{m.pairs}: reference {job.reference} is paired twice ({seen[job.reference]} and "
                    f"{job.distorted}) for method {m.name}; methods are compared image by image, so give one "
                    "distorted image per reference"
                )
            seen[job.reference] = job.distorted
    return jobs


def _method_info(m: _Method, union: list[str], keys: list[str], run_settings: Any, ref_abs: str | None) -> dict:
    """A method's entry in the metadata; warns when its score file's settings or reference
    folder differ from the comparison's."""
    differ = _settings_diff(m.metadata.get("settings") if m.metadata else None, run_settings, keys)
    if differ:
        warnings.warn(f"{m.given}: method {m.name} was scored with other settings ({', '.join(differ)}); its "
                      "numbers are not comparable with the others'", IQAWarning, stacklevel=3)
    root = (m.metadata or {}).get("reference_root")
    if m.kind == "scores" and root and ref_abs and os.path.abspath(root) != ref_abs:
        warnings.warn(f"{m.given}: method {m.name} was scored against {root}, not {ref_abs}", IQAWarning,
                      stacklevel=3)
    return {
        "name": m.name,
        "kind": m.kind,
        "source": os.path.abspath(m.given),
        "source_given": m.given,
        "pairs": os.path.abspath(m.pairs) if m.pairs else None,
        "scores": m.scores,
        "n_rows": len(m.rows),
        "n_failed": sum(bool(r["error"]) for r in m.rows),
        # No row, or iqa score's error row of a reference without a distorted partner.
        "missing": [r for r in union if r not in m.by_ref or not m.by_ref[r]["distorted"]],
        "failed": [r for r in union if r in m.by_ref and m.by_ref[r]["distorted"]
                   and any(m.by_ref[r][k] is None for k in keys)],
        "settings_differ": differ,
    }


def _conventions(boot: Bootstrap, alpha: float) -> dict[str, Any]:
    """The ``statistics`` block: every convention behind the numbers."""
    return {
        "confidence": boot.confidence,
        "bootstrap": {
            "method": boot.scipy_method,
            "n_resamples": boot.n_resamples,
            "seed": boot.seed,
            "generator": "numpy.random.default_rng([seed, zlib.crc32(label)]), label 'mean/METHOD/metric' "
                         "or 'diff/METHOD/metric'",
            "statistic": "mean over images (scipy.stats.bootstrap); paired: mean of method - baseline",
        },
        "std": "sample standard deviation (ddof=1) of the finite values",
        "test": "wilcoxon signed-rank, two-sided, zero_method=zsplit",
        "direction": "better or worse by the sign of the signed-rank sum R+ - R- of the differences the test "
                     "used (inf beating finite included), in the metric's direction; null when it is zero",
        "adjustment": "holm over methods x metrics",
        "alpha": alpha,
        "ties": "equal values (inf and inf included) are ties: neither a win nor a loss",
        "paired_images": "per metric, the images every method scored for that metric",
        "inf": _INF_NOTE,
    }


def _version() -> str:
    from iqa import __version__

    return __version__


# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.5g}"


def format_table(c: Comparison) -> str:
    """The comparison as text: a table per method and metric, then the paired table."""
    boot = c.metadata["statistics"]["bootstrap"]
    conf = round(100 * c.metadata["statistics"]["confidence"])
    info = {m["column"]: m for m in c.metadata["metrics"]}
    width = max(6, *(len(n) for n in c.methods))
    lines = [
        f"Per method: mean over images with its {conf}% {boot['method']} bootstrap interval "
        f"({boot['n_resamples']} resamples, seed {boot['seed']})",
        f"{'method':<{width}}  {'metric':<8} {'n':>6} {'n_inf':>5} {'mean':>10} {'ci_low':>10} {'ci_high':>10} "
        f"{'median':>10} {'std':>10}",
    ]
    for metric in c.metrics:
        for name in c.methods:
            s = c.summary[name][metric]
            lines.append(
                f"{name:<{width}}  {metric:<8} {s['n']:>6} {s['n_inf']:>5} {_f(s['mean']):>10} {_f(s['ci_low']):>10} "
                f"{_f(s['ci_high']):>10} {_f(s['median']):>10} {_f(s['std']):>10}"
            )
    if c.paired:
        alpha = c.metadata["statistics"]["alpha"]
        tests = sum(p["p_value"] is not None for v in c.paired.values() for p in v.values())
        lines += [
            "",
            f"Against {c.baseline}: diff = mean of method - {c.baseline} over n_diff images (of the n every method "
            "scored, those with both values finite);",
            f"p: Wilcoxon signed-rank over the n images; p_holm: Holm over {tests} test(s); result: better/worse (the "
            f"test's direction) where p_holm <= {alpha}, else n.s.",
            f"{'method':<{width}}  {'metric':<8} {'n':>6} {'n_diff':>6} {'diff':>10} {'ci_low':>10} {'ci_high':>10} "
            f"{'p':>10} {'p_holm':>10}  {'result':<6} {'win/tie/loss':>14}",
        ]
        for metric in c.metrics:
            for name in c.methods:
                if name not in c.paired:
                    continue
                p = c.paired[name][metric]
                result = (p.get("direction") or "-") if p["significant"] else "n.s."
                lines.append(
                    f"{name:<{width}}  {metric:<8} {p['n']:>6} {p.get('n_diff', p['n']):>6} {_f(p['diff']):>10} "
                    f"{_f(p['ci_low']):>10} {_f(p['ci_high']):>10} {_f(p['p_value']):>10} {_f(p['p_holm']):>10}  "
                    f"{result:<6} {p['wins']:>4}/{p['ties']}/{p['losses']}"
                )
        lines.append("metrics: " + ", ".join(f"{k} {'higher' if info[k]['direction'] == 'higher' else 'lower'} is "
                                             "better" for k in c.metrics)
                     + "; diff '-' with n_diff 0: no image where both values are finite")
    lines.append("")
    lines.append(f"{c.metadata['n_images']} image(s); {c.metadata['n_common']} scored by every method for every metric")
    for m in c.metadata["methods"]:
        if m["missing"]:
            lines.append(f"{m['name']}: {len(m['missing'])} image(s) missing: {_list(m['missing'])}")
        if m["failed"]:
            lines.append(f"{m['name']}: {len(m['failed'])} image(s) with a failed metric: {_list(m['failed'])}")
    if any(s["n_inf"] for v in c.summary.values() for s in v.values()):
        lines.append("n_inf: infinite values (identical images), left out of mean, median, std and intervals; "
                     "paired, inf - inf is a tie")
    return "\n".join(lines)


def _list(names: list[str], limit: int = 10) -> str:
    text = ", ".join(names[:limit])
    return text + (f", ... and {len(names) - limit} more" if len(names) > limit else "")
