"""``iqa score``: every distorted image against its reference, into a table."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click

from .options import image_options, sr_options

_METRIC_CHOICES = ("psnr", "ssim", "ms-ssim", "lpips")
_LIST_LIMIT = 50  # unmatched names printed per side before "... and N more"


def _split_metrics(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    names = [n.strip() for v in value for n in v.split(",") if n.strip()]
    for n in names:
        if n.lower().replace("_", "-") not in _METRIC_CHOICES:
            raise click.BadParameter(f"{n!r} is not one of {', '.join(_METRIC_CHOICES)}", ctx, param)
    return tuple(names)


class _Progress:
    """A one-line progress bar with rate and ETA, redrawn on stderr at most 10 times a second."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled and total > 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r[{bar}] {done}/{total} pairs  {rate:.1f} pairs/s  ETA {_clock(eta)}  elapsed {_clock(elapsed)}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _names(label: str, names: list[str]) -> None:
    if not names:
        return
    click.echo(f"iqa score: {len(names)} {label}:", err=True)
    for n in names[:_LIST_LIMIT]:
        click.echo(f"  {n}", err=True)
    if len(names) > _LIST_LIMIT:
        click.echo(f"  ... and {len(names) - _LIST_LIMIT} more", err=True)


_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cap_blas_threads(threads: int) -> None:
    """Cap the BLAS/OpenMP pools NumPy loads (a user's own setting wins).

    OpenBLAS reads these variables once, when NumPy is first imported, so this runs before
    any iqa module that imports NumPy. Its idle threads spin: left at one per core next to
    the decode workers, they burn the CPU the workers need.
    """
    if "numpy" in sys.modules:
        return  # already loaded (e.g. in a Python process that imported NumPy first)
    for var in _BLAS_THREAD_VARS:
        os.environ.setdefault(var, str(threads))


def _limit_threads(threads: int, torch_too: bool) -> None:
    """Cap OpenCV's (and torch's) own thread pools so decode workers do not oversubscribe."""
    import cv2

    cv2.setNumThreads(threads)
    if torch_too:
        import torch

        torch.set_num_threads(threads)


@click.command("score")
@click.argument("reference", type=click.Path(exists=True, file_okay=False))
@click.argument("distorted", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-m",
    "--metrics",
    "metrics",
    multiple=True,
    callback=_split_metrics,
    metavar="NAME[,NAME]",
    help="Metric to compute; repeat or separate with commas (psnr, ssim, ms-ssim, lpips). "
    "Default: psnr, ssim, ms-ssim (no downloaded weights needed).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Result file (default: stdout).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl"]),
    default=None,
    help="Output format (default: from the output's extension, else csv).",
)
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CSV with columns reference,distorted (paths relative to REFERENCE and DISTORTED) "
    "instead of matching the folders.",
)
@click.option("--match-stem", is_flag=True, help="Pair files by path without extension (a.png with a.jpg).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run: keep complete rows, retry failed ones.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@image_options
@sr_options
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default="alex", show_default=True, help="LPIPS backbone.")
@click.option("--lpips-version", type=click.Choice(["0.1", "0.0"]), default="0.1", show_default=True, help="LPIPS linear-layer version.")
@click.option(
    "--lpips-weights",
    "--backbone-weights",
    "lpips_weights",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Local torchvision state dict of the LPIPS backbone (instead of the registry's "
    "verified download), as for iqa lpips --backbone-weights.",
)
@click.option("--device", default="auto", show_default=True, help="Where LPIPS runs: auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Pairs per LPIPS batch (fewer for large images: at most about 8 megapixels are held at once).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads decoding and scoring pairs (default: the number of cores, at most 4).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads of OpenCV's, BLAS's and torch's own pools (default: cores / workers).",
)
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False), default=None, help="Write per-pair SSIM/LPIPS heat-maps here.")
@click.option("--summary", "summary_file", type=click.Path(dir_okay=False), default=None, help="Also write the summary as JSON.")
@click.option(
    "--psnr-mean",
    type=click.Choice(["finite", "pooled"]),
    default="finite",
    show_default=True,
    help="finite: mean of per-pair PSNR, identical pairs counted apart; pooled: PSNR of the mean MSE.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
def score_cmd(
    reference: str,
    distorted: str,
    metrics: tuple[str, ...],
    output: str | None,
    fmt: str | None,
    pairs_file: str | None,
    match_stem: bool,
    resume: bool,
    overwrite: bool,
    data_range: float | None,
    bit_depth: int | None,
    alpha: str,
    color: str,
    crop_border: int,
    lpips_net: str,
    lpips_version: str,
    lpips_weights: str | None,
    device: str,
    batch_size: int,
    workers: int | None,
    threads: int | None,
    maps_dir: str | None,
    summary_file: str | None,
    psnr_mean: str,
    progress: bool | None,
) -> None:
    """Score every distorted image against its reference, one row per pair.

    Files are paired by path relative to REFERENCE and DISTORTED (recursively), or listed
    with --pairs. Columns: reference, distorted, one per metric (psnr, ssim, ms_ssim, lpips),
    error. A pair or metric that fails leaves its cells empty with the reason in `error`;
    the others are still scored. Rows are flushed as they complete (--resume continues an
    interrupted run); at the end the file is rewritten in sorted pair order and the settings
    go to OUTPUT.meta.json. Identical images' PSNR is `inf` in CSV and the string "inf" in
    JSON/JSONL (float() reads both); an empty cell (null) always means failed. A summary goes
    to stderr. Exit code 1 if any pair or metric failed.

    Under torchrun each rank scores its own share and rank 0 merges the results.

    \b
    Example:
      iqa score data/samples/reference data/samples --pairs data/samples/pairs.csv -o scores.csv
    """
    # Under torchrun the ranks of one machine share its cores.
    cores = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    workers = workers or min(cores, 4)
    threads = threads or max(1, cores // workers)
    _cap_blas_threads(threads)

    from iqa import scoring
    from iqa.distributed import init
    from iqa.errors import IQAError

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if (resume or overwrite) and output is None:
        raise click.UsageError("--resume and --overwrite need an output file (-o)")
    if fmt is None:
        suffix = Path(output).suffix.lower() if output else ""
        fmt = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "csv")
    wanted = scoring.metric_names(metrics or scoring.DEFAULT_METRICS)
    try:
        scoring.check_device(device, cuda="lpips" in wanted)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    settings = scoring.ScoreSettings(
        metrics=metrics or scoring.DEFAULT_METRICS,
        data_range=data_range,
        bit_depth=bit_depth,
        alpha=alpha,
        color=color,
        crop_border=crop_border,
        lpips_net=lpips_net,
        lpips_version=lpips_version,
        lpips_weights=lpips_weights,
        device=device,
    )
    if maps_dir is not None and not {"ssim", "lpips"} & set(settings.metrics):
        raise click.UsageError("--maps draws SSIM and LPIPS maps: add -m ssim or -m lpips")
    _limit_threads(threads, "lpips" in settings.metrics)

    ctx = init()
    say = ctx.is_main
    if pairs_file is not None:
        jobs = scoring.read_pairs_file(pairs_file, reference, distorted)
    else:
        pairing = scoring.pair_folders(reference, distorted, match_stem=match_stem)
        jobs = pairing.pairs
        if say:
            _names("reference file(s) without a distorted partner", pairing.unmatched_reference)
            _names("distorted file(s) without a reference partner", pairing.unmatched_distorted)
            _names("ambiguous name(s) not scored", pairing.ambiguous)
            ignored = len(pairing.ignored_reference) + len(pairing.ignored_distorted)
            if ignored:
                click.echo(f"iqa score: ignored {ignored} file(s) without an image extension", err=True)
    if not jobs:
        raise IQAError(
            f"no pairs to score between {reference} and {distorted}"
            + ("" if match_stem or pairs_file else "; if the extensions differ, pass --match-stem")
        )

    err = sys.stderr
    show = say and (progress if progress is not None else err.isatty())
    bar = _Progress(len(jobs), err, bool(show))
    try:
        run = scoring.score_to_file(
            jobs,
            output,
            settings,
            fmt=fmt,
            resume=resume,
            overwrite=overwrite,
            workers=workers,
            batch_size=batch_size,
            maps_dir=maps_dir,
            roots=(reference, distorted),
            on_row=bar.update,
            stream=sys.stdout,
            ctx=ctx,
        )
    except KeyboardInterrupt:
        bar.close()
        if output is not None:
            click.echo(
                f"iqa score: interrupted; the rows written so far are in {output}: run the same "
                "command with --resume to finish",
                err=True,
            )
        click.get_current_context().exit(130)
    finally:
        bar.close()

    if say:
        summary = run.stats.summary(psnr_mean)
        if run.resumed:
            click.echo(f"iqa score: resumed: {run.resumed} complete row(s) kept, {run.scored} pair(s) scored", err=True)
        click.echo(scoring.format_summary(summary), err=True)
        if summary_file is not None:
            doc: dict[str, Any] = {**summary, "output": output, "settings": settings.provenance()}
            try:
                Path(summary_file).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            except OSError as exc:
                raise IQAError(f"{summary_file}: cannot write the summary ({exc.strerror or exc})") from None
    if run.failed:
        if say:
            where = f"; see the error column of {output}" if output else ""
            click.echo(f"iqa score: {run.failed} pair(s) with errors{where}", err=True)
        click.get_current_context().exit(1)
