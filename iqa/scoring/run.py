"""The file run behind ``iqa score``: open, resume, score, merge.

Rows are appended and flushed as they complete, so an interrupted run loses nothing that
was done; ``resume=True`` keeps complete rows, retries failed ones and refuses to resume
when the settings differ; when the run ends the file is rewritten atomically in sorted pair
order. The settings that change a number go to a sidecar ``<output>.meta.json`` (and into
the ``metadata`` of JSON output) so that the CSV stays a plain table; the sidecar also says
whether the run is ``running`` (and which process runs it), ``done``, ``failed`` or
``interrupted`` (see :mod:`iqa.scoring.sidecar`). Under ``torchrun`` each rank scores its
shard into a part file and rank 0 merges them.

What is promised (docs/guarantees.md):

- nothing is written before every check passed: the output (and the maps) may be written,
  no other live run writes it, the earlier run's settings match (``resume``);
- ``resume`` never removes a complete row: rows of pairs that are not in this run's list
  are kept unless ``drop_unlisted=True`` (which counts them); failed rows of such pairs are
  removed (they hold no number) and counted;
- ``overwrite`` writes the new rows beside the output and replaces it only when the run is
  complete; a run that fails or is interrupted leaves the earlier output and sidecar as
  they were;
- a fresh run that fails before writing a row (bad weights) leaves nothing behind.
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
from iqa.errors import IQAError, OptionError, OptionNamer, OutputError
from iqa.outfile import InputFiles, check_output, temp_path
from iqa.scoring import sidecar
from iqa.scoring.engine import PairScore, one_line, score_jobs
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
_RUN_OPTIONS = {"resume": ("resume", True), "overwrite": ("overwrite", True), "output": "output",
                "drop_unlisted": ("drop_unlisted", True)}

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
        resumed: complete rows kept from an earlier run (pairs of this run's list).
        failed: rows with an error (a pair or a cell failed).
        unlisted: complete rows of an earlier run whose pair is not in this run's list,
            kept in the output (``drop_unlisted=False``).
        dropped: such rows removed because ``drop_unlisted=True``.
        failed_dropped: failed rows of an earlier run whose pair is not in this run's list
            (removed: they hold no number, and the pair is not retried).
    """

    stats: ScoreStats
    rows: int = 0
    scored: int = 0
    resumed: int = 0
    failed: int = 0
    unlisted: int = 0
    dropped: int = 0
    failed_dropped: int = 0


def _row_of(score: PairScore) -> dict[str, Any]:
    row = score.row()
    for k, v in list(row.items()):
        if k not in ("reference", "distorted", "error") and v is not None:
            row[k] = as_floats(v)[0]
    return row


def _sort_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row["reference"], row["distorted"])


def _check_resumable(meta_file: Path, old: dict[str, Any] | None, metadata: dict[str, Any]) -> None:
    if old is None:
        raise IQAError(
            f"{meta_file}: missing, so the settings of the earlier run are unknown; cannot "
            "resume: delete the output or pass {overwrite} to start again",
            options=_RUN_OPTIONS,
        )
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


def input_paths(jobs: Sequence[PairJob]) -> list[str]:
    """Every file a run reads (for the check that no output is one of them)."""
    return [p for j in jobs for p in (j.reference_path, j.distorted_path) if p]


class _FileRun:
    """One run into one output: :meth:`prepare`, :meth:`resume`, :meth:`start`, :meth:`score`,
    :meth:`merge`; :meth:`abort` when anything after :meth:`start` fails."""

    def __init__(self, jobs: Sequence[PairJob], output: Path, settings: ScoreSettings, fmt: str,
                 roots: tuple[str, str] | None, ctx: Any) -> None:
        self.jobs, self.out, self.settings, self.fmt, self.ctx = jobs, output, settings, fmt, ctx
        self.meta = meta_path(output)
        self.columns = columns_for(settings.metrics)
        self.metadata = _metadata(settings, fmt, roots)
        self.kept: dict[tuple[str, str], dict[str, Any]] = {}
        self.unlisted: dict[tuple[str, str], dict[str, Any]] = {}
        self.dropped = self.failed_dropped = 0
        self.new_rows: list[dict[str, Any]] = []
        self.notes: Counter[str] = Counter()
        self.existed = self.replacing = self.started = False
        self.old: dict[str, Any] | None = None  # the earlier sidecar
        self.target = output  # where this rank appends its rows

    def prepare(self, resume: bool, overwrite: bool, inputs: InputFiles) -> None:
        """Every check that can refuse the run, before anything is written: the output and
        its sidecar are regular files (or absent) and not inputs; no live run owns them; an
        existing output is resumed or replaced only when asked; the folder takes new files."""
        self.existed = check_output(self.out, overwrite=True, inputs=inputs)
        check_output(self.meta, overwrite=True, what="sidecar")
        try:
            self.old = sidecar.read(self.meta)
        except OutputError as exc:
            if not overwrite:
                raise OutputError(f"{exc.render()}; pass {{overwrite}} to replace it", options=_RUN_OPTIONS) from None
            self.old = None
        if self.old is not None and self.old.get("status") == "running":
            state = sidecar.owner_state(self.old, self.out)
            if state != "dead":
                raise sidecar.busy_error(self.out, self.old, state)
            if self.ctx.is_main:
                self.old = sidecar.recover(self.out, self.meta, self.old)
        if self.existed and not (resume or overwrite):
            raise IQAError(
                f"{self.out}: already exists; pass {{resume}} to continue that run or {{overwrite}} to replace it",
                options=_RUN_OPTIONS,
            )
        check_writable(self.out)
        self.replacing = self.existed and overwrite
        if self.ctx.active:
            self.target = part_path(self.out, self.ctx.rank)
        elif self.replacing:
            self.target = temp_path(self.out, "new")

    def resume(self, drop_unlisted: bool) -> None:
        """Keep the complete rows of an earlier run (and its part files); see the module notes
        for rows whose pair is not listed."""
        if not self.existed:
            return
        _check_resumable(self.meta, self.old, self.metadata)
        keys = {j.key for j in self.jobs}
        sources = [self.out, *sorted(self.out.parent.glob(self.out.name + ".part*"))]
        for src in sources:
            for row in read_rows(src, self.fmt if src == self.out else "csv", self.columns):
                key = _sort_key(row)
                if key in keys:
                    if not row["error"]:
                        self.kept[key] = row  # failed rows are retried
                elif row["error"]:
                    self.failed_dropped += 1
                elif drop_unlisted:
                    self.dropped += 1
                else:
                    self.unlisted[key] = row

    def _earlier_rows(self) -> list[dict[str, Any]]:
        return [*self.kept.values(), *self.unlisted.values()]

    def start(self) -> None:
        """Write the sidecar (``running``, with this process as its owner) and the kept rows;
        clear stale part files."""
        ctx = self.ctx
        ctx.barrier()  # every rank has read the earlier files before anything is rewritten
        if ctx.is_main:
            doc = {**self.metadata, "status": "running", "pairs": len(self.jobs), "owner": sidecar.owner()}
            if self.replacing:
                doc.update(replacing=True, previous=self.old)
            self.started = True
            sidecar.live_here.add(os.fspath(self.out.resolve()))
            write_json_atomic(self.meta, doc, "sidecar")
            if not self.replacing:
                # Kept rows go into the main file first, so that parts can be started afresh.
                write_atomic(self.out, self.fmt, self.columns, sorted(self._earlier_rows(), key=_sort_key),
                             self.metadata, finished=ctx.active)
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
        fresh = ctx.active or self.replacing  # a file of its own, started here with a header
        target = self.target
        try:
            sink = open(target, "w" if fresh else "a", encoding="utf-8", errors="surrogateescape", newline="")
        except OSError as exc:
            raise write_error(target, exc) from None
        try:
            # Part files are CSV whatever the output format: it keeps inf and every digit.
            writer = RowWriter(sink, "csv" if ctx.active else self.fmt, self.columns, self.metadata,
                               header=fresh, first=fresh or not self._earlier_rows())
            for done, score in enumerate(score_jobs(mine, self.settings, workers=workers, maps=maps, namer=namer),
                                         1):
                row = _row_of(score)
                writer.write(row)
                self.new_rows.append(row)
                self.notes.update(set(score.notes))
                if on_row is not None:
                    on_row(done, len(mine))
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise write_error(target, exc) from None
        finally:
            try:
                sink.close()
            except OSError:
                pass  # the write that failed already said why; what reached the disk is kept

    def merge(self) -> ScoreRun:
        """Rank 0 rewrites the output in sorted order and marks the sidecar ``done``."""
        ctx = self.ctx
        stats = ScoreStats(self.settings.metrics)
        # Notes are not columns: count them over the pairs decoded by this run, on every rank.
        all_notes: Counter[str] = Counter()
        for d in ctx.gather(dict(self.notes)):
            all_notes.update(d)
        ctx.barrier()
        if ctx.is_main:
            rows = {_sort_key(r): r for r in self._earlier_rows()}
            if ctx.active:
                for r in range(ctx.world_size):
                    for row in read_rows(part_path(self.out, r), "csv", self.columns):
                        rows[_sort_key(row)] = row
            else:
                rows.update((_sort_key(row), row) for row in self.new_rows)
            ordered = sorted(rows.values(), key=_sort_key)
            write_atomic(self.out, self.fmt, self.columns, ordered, self.metadata)
            if self.target != self.out:
                self.target.unlink(missing_ok=True)
            for stale in self.out.parent.glob(self.out.name + ".part*"):
                stale.unlink()
            for row in ordered:
                stats.add({m: row[m] for m in self.settings.metrics}, row["error"])
            stats.notes.update(all_notes)
            write_json_atomic(
                self.meta,
                {
                    **self.metadata,
                    "status": "done",
                    "pairs": len(self.jobs),
                    "rows": len(ordered),
                    # note -> pairs it applied to, among the pairs decoded by this run (rows
                    # kept by --resume are not decoded again).
                    "notes": dict(sorted(all_notes.items())),
                },
                "sidecar",
            )
            self.started = False
            sidecar.live_here.discard(os.fspath(self.out.resolve()))
        # Every rank learns the merged totals (for its exit code) and how much each rank scored.
        shared = ctx.gather({"scored": len(self.new_rows), "rows": stats.pairs, "failed": stats.pairs_with_errors})
        return ScoreRun(
            stats=stats,
            rows=shared[0]["rows"],
            scored=sum(d["scored"] for d in shared),
            resumed=len(self.kept),
            failed=shared[0]["failed"],
            unlisted=len(self.unlisted),
            dropped=self.dropped,
            failed_dropped=self.failed_dropped,
        )

    def abort(self, exc: BaseException) -> None:
        """After a failure or an interruption: say so in the sidecar, truthfully.

        Replacing: the earlier output was not touched; its sidecar is put back. A fresh run
        that wrote no row leaves nothing. Otherwise the rows written stay (resumable) and the
        sidecar says ``interrupted`` or ``failed`` with the reason.
        """
        if not (self.ctx.is_main and self.started):
            return
        self.started = False
        sidecar.live_here.discard(os.fspath(self.out.resolve()))
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        try:
            if self.target != self.out and not self.ctx.active:
                self.target.unlink(missing_ok=True)
            if self.replacing:
                if self.old is None:
                    self.meta.unlink(missing_ok=True)
                else:
                    write_json_atomic(self.meta, self.old, "sidecar")
            elif not self.existed and not self.new_rows and not self.ctx.active:
                self.out.unlink(missing_ok=True)
                self.meta.unlink(missing_ok=True)
            else:
                doc = {**self.metadata, "status": "interrupted" if interrupted else "failed",
                       "pairs": len(self.jobs)}
                if not interrupted:
                    doc["error"] = one_line(exc)
                write_json_atomic(self.meta, doc, "sidecar")
        except OSError:
            pass  # (a full disk): the sidecar still names this process, which is ending: it reads as interrupted


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
    drop_unlisted: bool = False,
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
        jobs: the pairs, e.g. ``pair_folders(...).jobs``.
        output: the result file; ``None`` or ``"-"`` writes to ``stream`` as rows complete
            (no resume, no sidecar).
        settings: what to compute and how.
        fmt: ``"csv"``, ``"json"`` or ``"jsonl"``.
        resume: keep complete rows of an existing ``output``, retry failed ones, score the rest.
        overwrite: replace an existing ``output`` (and existing maps) once the run is complete
            (otherwise an existing file is an error); with a stream, it applies to the maps.
        drop_unlisted: with ``resume``, remove the complete rows whose pair is not in ``jobs``
            (counted in :attr:`ScoreRun.dropped`); by default they are kept.
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
        OutputError: the output (or a map) exists without ``resume``/``overwrite``, is not a
            regular file, is an input, is being written by another live run, or cannot be
            written (checked before any pair is scored; a write failing later, e.g. a full
            disk, leaves the rows written so far resumable);
        IQAError: resuming with different settings;
        WeightsError: a network's weights cannot be loaded.
    """
    from iqa.distributed import DistContext

    if fmt not in FORMATS:
        raise OptionError(f"{{kw}} must be one of {', '.join(FORMATS)}, got {fmt!r}", options={"kw": "fmt"})
    if maps_dir is not None and not any(s.map_view for s in settings.specs):
        have = ", ".join(s.name for s in registry.pair_metrics() if s.map_view)
        raise OptionError(f"maps are drawn for the metrics that have one ({have}): request one of them")
    if resume and overwrite:
        raise OptionError("{resume} and {overwrite} exclude each other", options=_RUN_OPTIONS)
    if drop_unlisted and not resume:
        raise OptionError("{drop_unlisted} applies to {resume}", options=_RUN_OPTIONS)
    ctx = ctx or DistContext()
    to_stream = output is None or os.fspath(output) == "-"
    if to_stream and resume:
        raise OptionError("{resume} needs an output file ({output})", options=_RUN_OPTIONS)
    if to_stream and ctx.active:
        raise IQAError("a distributed run needs an output file ({output}) for the ranks to merge into",
                       options=_RUN_OPTIONS)
    inputs = InputFiles(input_paths(jobs))
    maps = None
    if maps_dir is not None:
        maps = MapWriter(maps_dir, jobs, [s.key for s in settings.specs if s.map_view])
        maps.check(overwrite=overwrite or resume, inputs=inputs)
    if to_stream:
        return _to_stream(jobs, settings, fmt, stream if stream is not None else sys.stdout, workers, maps, on_row,
                          namer, roots)
    # Before anything costly (weights, decoding): a run that cannot save must not start.
    run = _FileRun(jobs, Path(output), settings, fmt, roots, ctx)
    run.prepare(resume, overwrite, inputs)
    if resume:
        run.resume(drop_unlisted)
    try:
        run.start()
        run.score(workers, maps, on_row, namer)
        return run.merge()
    except BaseException as exc:
        run.abort(exc)
        raise
