"""The file run behind ``iqa score``: open, resume, score, merge.

Rows are appended and flushed as they complete, so an interrupted run loses nothing that
was done; ``resume=True`` keeps complete rows, retries failed ones and refuses to resume
when the settings differ; when the run ends the file is rewritten atomically in sorted pair
order. The settings that change a number go to a sidecar ``<output>.meta.json`` (and into
the ``metadata`` of JSON output) so that the CSV stays a plain table. Under ``torchrun``
each rank scores its shard into a part file and rank 0 merges them.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from iqa import registry
from iqa.errors import IQAError, OptionError, OptionNamer
from iqa.scoring.engine import PairScore, score_jobs
from iqa.scoring.maps import MapWriter
from iqa.scoring.pairing import PairJob
from iqa.scoring.rowfile import (
    FORMATS,
    RowWriter,
    check_writable,
    columns_for,
    meta_path,
    part_path,
    read_rows,
    write_atomic,
    write_error,
    write_json_atomic,
)
from iqa.scoring.settings import ScoreSettings
from iqa.scoring.stats import ScoreStats, as_floats

__all__ = ["ScoreRun", "score_to_file"]

#: How run errors name the options of :func:`score_to_file` (``--resume`` / ``resume=True``).
_RUN_OPTIONS = {"resume": ("resume", True), "overwrite": ("overwrite", True), "output": "output"}

_NON_FINITE_NOTE = (
    "PSNR of identical images is +inf: inf in CSV, the string \"inf\" in JSON and JSONL "
    "(float() reads both); an empty cell or null means the metric failed, the reason is in error"
)


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
            row[k] = as_floats(v)[0]
    return row


def _sort_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row["reference"], row["distorted"])


def _check_resumable(meta_file: Path, metadata: dict[str, Any]) -> None:
    if not meta_file.exists():
        raise IQAError(
            f"{meta_file}: missing, so the settings of the earlier run are unknown; cannot "
            "resume: delete the output or pass {overwrite} to start again",
            options=_RUN_OPTIONS,
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
            "rerun with the same settings to resume, or pass {overwrite} to start again",
            options=_RUN_OPTIONS,
        )


def _metadata(settings: ScoreSettings, fmt: str, roots: tuple[str, str] | None) -> dict[str, Any]:
    """What the sidecar (and a JSON output's ``metadata``) records about a run."""
    return {
        "format": fmt,
        "columns": columns_for(settings.metrics),
        "settings": settings.provenance(),
        "reference_root": os.path.abspath(roots[0]) if roots else None,
        "distorted_root": os.path.abspath(roots[1]) if roots else None,
        "non_finite": _NON_FINITE_NOTE,
    }


class _FileRun:
    """One run into one output, in four steps: :meth:`open`, :meth:`resume`,
    :meth:`score`, :meth:`merge`."""

    def __init__(self, jobs: Sequence[PairJob], output: Path, settings: ScoreSettings, fmt: str,
                 roots: tuple[str, str] | None, ctx: Any) -> None:
        self.jobs, self.out, self.settings, self.fmt, self.ctx = jobs, output, settings, fmt, ctx
        self.columns = columns_for(settings.metrics)
        self.metadata = _metadata(settings, fmt, roots)
        self.kept: dict[tuple[str, str], dict[str, Any]] = {}
        self.dropped = 0
        self.new_rows: list[dict[str, Any]] = []
        self.notes: Counter[str] = Counter()

    def open(self, resume: bool, overwrite: bool) -> None:
        """Refuse an existing output without ``resume``/``overwrite``."""
        if self.out.exists() and not (resume or overwrite):
            raise IQAError(
                f"{self.out}: already exists; pass {{resume}} to continue that run or {{overwrite}} to replace it",
                options=_RUN_OPTIONS,
            )

    def resume(self) -> None:
        """Keep the complete rows of an earlier run (and its part files) whose pair is listed."""
        if not self.out.exists():
            return
        _check_resumable(meta_path(self.out), self.metadata)
        keys = {j.key for j in self.jobs}
        sources = [self.out, *sorted(self.out.parent.glob(self.out.name + ".part*"))]
        for src in sources:
            for row in read_rows(src, self.fmt if src == self.out else "csv", self.columns):
                if row["error"]:
                    continue  # failed rows are retried
                if _sort_key(row) in keys:
                    self.kept[_sort_key(row)] = row
                else:
                    self.dropped += 1

    def start(self) -> None:
        """Write the sidecar (``running``) and the kept rows; clear stale part files."""
        ctx = self.ctx
        ctx.barrier()  # every rank has read the earlier files before anything is rewritten
        if ctx.is_main:
            write_json_atomic(meta_path(self.out), {**self.metadata, "status": "running", "pairs": len(self.jobs)})
            # Kept rows go into the main file first, so that parts can be started afresh.
            write_atomic(self.out, self.fmt, self.columns, sorted(self.kept.values(), key=_sort_key), self.metadata,
                         finished=ctx.active)
            if not ctx.active:
                for stale in self.out.parent.glob(self.out.name + ".part*"):
                    stale.unlink()
        ctx.barrier()

    def score(self, workers: int, maps: Any, on_row: Any, namer: Any) -> None:
        """Score this rank's share of the pending pairs, appending each row as it completes."""
        from iqa.distributed import shard

        ctx = self.ctx
        pending = [j for j in self.jobs if j.key not in self.kept]
        mine = shard(pending, ctx) if len(pending) >= ctx.world_size else pending[ctx.rank :: ctx.world_size]
        target = part_path(self.out, ctx.rank) if ctx.active else self.out
        try:
            sink = open(target, "w" if ctx.active else "a", encoding="utf-8", errors="surrogateescape", newline="")
        except OSError as exc:
            raise write_error(target, exc) from None
        # Part files are CSV whatever the output format: it keeps inf and every digit.
        writer = RowWriter(sink, "csv" if ctx.active else self.fmt, self.columns, self.metadata,
                           header=ctx.active, first=ctx.active or not self.kept)
        with sink:
            for done, score in enumerate(score_jobs(mine, self.settings, workers=workers, maps=maps, namer=namer), 1):
                row = _row_of(score)
                try:
                    writer.write(row)
                except OSError as exc:
                    raise write_error(target, exc) from None
                self.new_rows.append(row)
                self.notes.update(set(score.notes))
                if on_row is not None:
                    on_row(done, len(mine))

    def merge(self) -> ScoreRun:
        """Rank 0 rewrites the output in sorted order and marks the sidecar complete."""
        ctx = self.ctx
        stats = ScoreStats(self.settings.metrics)
        # Notes are not columns: count them over the pairs decoded by this run, on every rank.
        all_notes: Counter[str] = Counter()
        for d in ctx.gather(dict(self.notes)):
            all_notes.update(d)
        ctx.barrier()
        if ctx.is_main:
            rows = dict(self.kept)
            if ctx.active:
                for r in range(ctx.world_size):
                    for row in read_rows(part_path(self.out, r), "csv", self.columns):
                        rows[_sort_key(row)] = row
            else:
                rows.update((_sort_key(row), row) for row in self.new_rows)
            ordered = sorted(rows.values(), key=_sort_key)
            write_atomic(self.out, self.fmt, self.columns, ordered, self.metadata)
            for stale in self.out.parent.glob(self.out.name + ".part*"):
                stale.unlink()
            for row in ordered:
                stats.add({m: row[m] for m in self.settings.metrics}, row["error"])
            stats.notes.update(all_notes)
            write_json_atomic(
                meta_path(self.out),
                {
                    **self.metadata,
                    "status": "complete",
                    "pairs": len(self.jobs),
                    "rows": len(ordered),
                    # note -> pairs it applied to, among the pairs decoded by this run (rows
                    # kept by --resume are not decoded again).
                    "notes": dict(sorted(all_notes.items())),
                },
            )
        # Every rank learns the merged totals (for its exit code) and how much each rank scored.
        shared = ctx.gather({"scored": len(self.new_rows), "rows": stats.pairs, "failed": stats.pairs_with_errors})
        return ScoreRun(
            stats=stats,
            rows=shared[0]["rows"],
            scored=sum(d["scored"] for d in shared),
            resumed=len(self.kept),
            failed=shared[0]["failed"],
            dropped=self.dropped,
        )


def _to_stream(jobs: Sequence[PairJob], settings: ScoreSettings, fmt: str, stream: Any, workers: int,
               maps: Any, on_row: Any, namer: Any, roots: tuple[str, str] | None) -> ScoreRun:
    columns = columns_for(settings.metrics)
    writer = RowWriter(stream, fmt, columns, _metadata(settings, fmt, roots))
    stats = ScoreStats(settings.metrics)
    rows = failed = 0
    for rows, score in enumerate(score_jobs(jobs, settings, workers=workers, maps=maps, namer=namer), 1):
        row = _row_of(score)
        writer.write(row)
        stats.add({m: row[m] for m in settings.metrics}, row["error"], score.notes)
        failed += bool(row["error"])
        if on_row is not None:
            on_row(rows, len(jobs))
    writer.close()
    return ScoreRun(stats=stats, rows=rows, scored=rows, failed=failed)


def score_to_file(
    jobs: Sequence[PairJob],
    output: str | os.PathLike | None,
    settings: ScoreSettings,
    *,
    fmt: str = "csv",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 0,
    maps_dir: str | os.PathLike | None = None,
    roots: tuple[str, str] | None = None,
    on_row: Callable[[int, int], None] | None = None,
    stream: Any = None,
    ctx: Any = None,
    namer: OptionNamer | None = None,
) -> ScoreRun:
    """Score ``jobs`` into an output file (or a stream), as described in the module notes.

    Args:
        jobs: the pairs, e.g. ``pair_folders(...).pairs``.
        output: the result file; ``None`` writes to ``stream`` (no resume, no sidecar).
        settings: what to compute and how.
        fmt: ``"csv"``, ``"json"`` or ``"jsonl"``.
        resume: keep complete rows of an existing ``output``, retry failed ones, score the rest.
        overwrite: replace an existing ``output`` (otherwise an existing file is an error).
        workers: threads preparing and scoring pairs beside the main one (0: none).
        maps_dir: write per-pair heat-maps there, for every metric that has one.
        roots: the reference and distorted roots, recorded in the sidecar.
        on_row: called as ``on_row(done, total)`` after each row this process writes.
        stream: where rows go when ``output`` is ``None`` (default: standard output).
        ctx: a :class:`iqa.distributed.DistContext`; each rank scores a shard into its own
            part file and rank 0 merges them into ``output``.
        namer: how per-pair error messages name options (default: Python keywords).

    Returns:
        A :class:`ScoreRun` on every rank; its counts cover the merged file, its ``stats``
        too on rank 0 (empty on the other ranks).

    Raises:
        IQAError: the output exists without ``resume``/``overwrite``, cannot be written
            (checked before any pair is scored), or resuming with different settings;
            WeightsError when a network's weights cannot be loaded.
    """
    from iqa.distributed import DistContext

    if fmt not in FORMATS:
        raise OptionError(f"{{kw}} must be one of {', '.join(FORMATS)}, got {fmt!r}", options={"kw": "fmt"})
    if maps_dir is not None and not any(s.map_view for s in settings.specs):
        have = ", ".join(s.name for s in registry.pair_metrics() if s.map_view)
        raise OptionError(f"maps are drawn for the metrics that have one ({have}): request one of them")
    maps = MapWriter(maps_dir) if maps_dir is not None else None
    ctx = ctx or DistContext()
    if output is None:
        if resume:
            raise IQAError("resuming needs an output file ({output})", options=_RUN_OPTIONS)
        if ctx.active:
            raise IQAError("a distributed run needs an output file ({output}) for the ranks to merge into",
                           options=_RUN_OPTIONS)
        return _to_stream(jobs, settings, fmt, stream if stream is not None else sys.stdout, workers, maps, on_row,
                          namer, roots)
    out = Path(output)
    # Before anything costly (weights, decoding): a run that cannot save must not start.
    if not out.parent.is_dir():
        raise IQAError(f"{out}: the folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise IQAError(f"{out}: is a folder; name a file with {{output}}", options=_RUN_OPTIONS)
    check_writable(out)
    run = _FileRun(jobs, out, settings, fmt, roots, ctx)
    run.open(resume, overwrite)
    if resume:
        run.resume()
    run.start()
    run.score(workers, maps, on_row, namer)
    return run.merge()
