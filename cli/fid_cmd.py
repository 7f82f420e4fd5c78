"""``iqa fid``, ``iqa kid`` and ``iqa stats``: the distribution metrics over folders.

Each input is a folder (recursive, sorted), a ``.txt`` list of image files (one a line,
relative to the list's folder) or an ``.npz`` of statistics. The value goes to
stdout (rank 0 only under ``torchrun``); progress, skipped files and warnings to stderr. Exit
codes: 0 success, 1 an error or at least one unreadable image (the value is still printed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from iqa import __version__

from .options import json_number

_MODES = ("pytorch-fid", "clean", "tf")
_LIST_LIMIT = 20


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class _Progress:
    """A one-line progress bar on stderr (only on a terminal, only on rank 0)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled and _is_main_rank()
        self.start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last, self._shown = now, True
        rate = done / max(now - self.start, 1e-9)
        width = 24
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'-' * (width - filled)}] {done}/{total} images  {rate:.1f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def extraction_options(f: Callable) -> Callable:
    """Options shared by the three commands: how images become Inception features."""
    options = [
        click.option("--mode", type=click.Choice(_MODES), default="pytorch-fid", show_default=True,
                     help="Preprocessing: pytorch-fid (bilinear, 2x-1), clean (clean-fid's PIL bicubic) "
                     "or tf (TF1 bilinear, torch-fidelity's)."),
        click.option("--dims", type=click.Choice(["64", "192", "768", "2048"]), default=None,
                     help="Feature dimension: 2048 is pool3 (FID); 64/192/768 are earlier blocks "
                     "[default: an .npz input's, else 2048]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Images decoded and accumulated together (on the CPU the network takes 4 at a time)."),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="Threads that decode images (and resize them in clean mode) while the network runs [default: min(4, CPUs)]."),
        click.option("--device", default=None, help="torch device, e.g. cpu or cuda:0 [default: cuda if available]."),
        click.option("--weights", type=click.Path(dir_okay=False), default=None,
                     help="Inception weights file in pytorch-fid's layout (overrides the registry's inception-fid)."),
        click.option("--alpha", type=click.Choice(["error", "drop"]), default="error", show_default=True,
                     help="Alpha channel: refuse transparency, or drop the channel."),
        click.option("--data-range", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Peak value of float TIFF files (8/16-bit files imply it)."),
        click.option("--strict", is_flag=True, help="Stop at the first unreadable image instead of skipping it."),
        click.option("--fast", is_flag=True,
                     help="Channels-last with batch norm folded into the convolutions: a further ~1.3x on "
                     "CPUs; features differ from pytorch-fid's by float32 round-off (up to ~1.5e-5 of the "
                     "largest) instead of being identical."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: when stderr is a terminal]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@contextmanager
def _warnings_to_stderr() -> Iterator[list]:
    """Show the library's warnings as one line each on stderr (rank 0), not as Python warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield caught
        finally:
            if _is_main_rank():
                seen = set()
                for w in caught:
                    msg = str(w.message)
                    # Skipped files are listed one by one by the command itself.
                    if msg not in seen and "unreadable image(s) skipped" not in msg:
                        seen.add(msg)
                        click.echo(f"iqa: warning: {msg}", err=True)


def _npz_dims(source: str) -> int | None:
    if not source.lower().endswith(".npz") or not os.path.isfile(source):
        return None
    import numpy as np

    try:
        with np.load(source, allow_pickle=False) as f:
            return int(f["dims"]) if "dims" in f.files else int(np.asarray(f["mu"]).size)
    except Exception:  # an unreadable file is reported with its reason when it is loaded
        return None


def _extractor(mode, dims, batch_size, workers, device, weights, fast, sources=()):
    from iqa.metrics.fid import InceptionFeatures

    if dims is None:
        found = [d for d in map(_npz_dims, sources) if d is not None]
        dims = found[0] if found else 2048
    return InceptionFeatures(
        dims=int(dims), mode=mode, weights=weights, device=device, batch_size=batch_size,
        workers=workers, fast=fast,
    )


def _statistics(ext, source, *, alpha, data_range, strict, keep_features, progress):
    bar = _Progress(os.path.basename(os.path.normpath(source)) or source,
                    sys.stderr.isatty() if progress is None else progress)
    try:
        return ext.statistics(source, data_range=data_range, alpha=alpha, strict=strict,
                              keep_features=keep_features, progress=bar)
    finally:
        bar.close()


def _report_skipped(stats_list) -> int:
    total = 0
    for stats in stats_list:
        real = [s for s in stats.skipped if s[0] != "(not recorded)"]
        total += len(real)
        if real and _is_main_rank():
            click.echo(f"iqa: {len(real)} unreadable image(s) skipped:", err=True)
            for path, reason in real[:_LIST_LIMIT]:
                click.echo(f"  {reason if reason.startswith(path) else f'{path}: {reason}'}", err=True)
            if len(real) > _LIST_LIMIT:
                click.echo(f"  ... and {len(real) - _LIST_LIMIT} more", err=True)
    return total


def _input_doc(source: str, stats) -> dict[str, Any]:
    return {"path": source, **stats.metadata()}


def _finish(ctx: click.Context, skipped: int) -> None:
    if skipped:
        ctx.exit(1)


@click.command("fid")
@click.argument("source1", type=click.Path(exists=True))
@click.argument("source2", type=click.Path(exists=True))
@extraction_options
@click.option("--route", type=click.Choice(["sqrtm", "eigh"]), default="sqrtm", show_default=True,
              help="Matrix square root: scipy sqrtm (pytorch-fid's) or symmetric eigendecompositions (faster).")
@click.option("--allow-mismatch", is_flag=True, help="Compare statistics made with different modes or weights.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: the number alone; json: the number with the settings that produced it.")
@click.pass_context
def fid_cmd(ctx, source1, source2, mode, dims, batch_size, workers, device, weights, alpha, data_range,
            strict, fast, progress, route, allow_mismatch, fmt):
    """Fréchet Inception Distance between two folders (or .txt file lists, or .npz statistics).

    Matches `python -m pytorch_fid SOURCE1 SOURCE2` with --mode pytorch-fid (the default).
    """
    from iqa.metrics.fid import distance

    ext = _extractor(mode, dims, batch_size, workers, device, weights, fast, (source1, source2))
    with _warnings_to_stderr():
        stats = [
            _statistics(ext, s, alpha=alpha, data_range=data_range, strict=strict, keep_features=False, progress=progress)
            for s in (source1, source2)
        ]
        value = distance(stats[0], stats[1], route=route, allow_mismatch=allow_mismatch)
    skipped = _report_skipped(stats)
    if _is_main_rank():
        if fmt == "text":
            click.echo(repr(value))
        else:
            doc = {
                "metric": "fid",
                "value": json_number(value),
                "route": route,
                "inputs": [_input_doc(s, st) for s, st in zip((source1, source2), stats)],
                "allow_mismatch": allow_mismatch,
                "iqa_version": __version__,
            }
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
    _finish(ctx, skipped)


@click.command("kid")
@click.argument("source1", type=click.Path(exists=True))
@click.argument("source2", type=click.Path(exists=True))
@extraction_options
@click.option("--subsets", type=click.IntRange(min=1), default=100, show_default=True, help="Number of random subsets.")
@click.option("--subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Images per subset (reduced, with a warning, to the smaller set's size).")
@click.option("--seed", type=int, default=2020, show_default=True, help="Seed of the subset draws (torch-fidelity's default).")
@click.option("--allow-mismatch", is_flag=True, help="Compare features made with different modes or weights.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: 'mean std' on one line; json: both with the settings that produced them.")
@click.pass_context
def kid_cmd(ctx, source1, source2, mode, dims, batch_size, workers, device, weights, alpha, data_range,
            strict, fast, progress, subsets, subset_size, seed, allow_mismatch, fmt):
    """Kernel Inception Distance (mean and std over subsets) between two folders.

    An .npz input must hold the features: make it with `iqa stats --features`.
    """
    from iqa.metrics.fid import check_compatible, kernel_distance

    ext = _extractor(mode, dims, batch_size, workers, device, weights, fast, (source1, source2))
    with _warnings_to_stderr():
        stats = [
            _statistics(ext, s, alpha=alpha, data_range=data_range, strict=strict, keep_features=True, progress=progress)
            for s in (source1, source2)
        ]
        check_compatible(stats[0], stats[1], allow_mismatch=allow_mismatch)
        result = kernel_distance(stats[0].features, stats[1].features, subsets=subsets,
                                 subset_size=subset_size, seed=seed)
    skipped = _report_skipped(stats)
    if _is_main_rank():
        if fmt == "text":
            click.echo(f"{result.mean!r} {result.std!r}")
        else:
            doc = {
                "metric": "kid",
                "mean": json_number(result.mean),
                "std": json_number(result.std),
                "subsets": result.subsets,
                "subset_size": result.subset_size,
                "subset_size_requested": subset_size,
                "seed": result.seed,
                "kernel": "polynomial (x.y/d + 1)^3",
                "notes": list(result.notes),
                "inputs": [_input_doc(s, st) for s, st in zip((source1, source2), stats)],
                "iqa_version": __version__,
            }
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
    _finish(ctx, skipped)


@click.command("stats")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The .npz file to write (readable by pytorch-fid: keys mu and sigma).")
@extraction_options
@click.option("--features", "keep_features", is_flag=True,
              help="Also store the features (key feats, as clean-fid) so that KID can use the file.")
@click.pass_context
def stats_cmd(ctx, source, output, mode, dims, batch_size, workers, device, weights, alpha, data_range,
              strict, fast, progress, keep_features):
    """Inception feature statistics of a folder (or .txt file list), saved as .npz for later `iqa fid`/`iqa kid`."""
    ext = _extractor(mode, dims, batch_size, workers, device, weights, fast)
    with _warnings_to_stderr():
        stats = _statistics(ext, source, alpha=alpha, data_range=data_range, strict=strict,
                            keep_features=keep_features, progress=progress)
    skipped = _report_skipped([stats])
    if _is_main_rank():
        path = stats.save(output)
        click.echo(
            f"iqa stats: wrote {path} ({stats.n} images, {stats.dims}-d, mode {stats.mode}"
            f"{', with features' if keep_features else ''})",
            err=True,
        )
    _finish(ctx, skipped)
