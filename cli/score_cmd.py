"""``iqa score``: every distorted image against its reference, into a table.

Its options are generated from the registry: the image layer's and the conventions' under
their own names, and every pair metric's options prefixed with the metric's name
(``--ms-ssim-scales``, ``--ssim-win-size``, ``--lpips-net``), so that every option a pair
command accepts is accepted here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import click

from iqa import registry
from iqa.options import Conventions, ImageOptions
from iqa.scoring.stats import DEFAULT_METRICS

from .options import (
    add_options,
    alias,
    cli_namer,
    default_workers,
    field_option,
    field_values,
    parse_weights,
    runtime_options,
    take_alias,
    workers_option,
)
from .progress import progress_bar

_LIST_LIMIT = 50  # unmatched names printed per side before "... and N more"
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class _Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) during a run: handled as Ctrl-C is, so the sidecar says so."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While scoring, SIGTERM and SIGHUP end the run as Ctrl-C does (exit 128 + signal)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise _Terminated(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def print_names(label: str, names: list[str], prog: str = "iqa score") -> None:
    """A list of file names on stderr, cut after a few dozen."""
    if not names:
        return
    click.echo(f"{prog}: {len(names)} {label}:", err=True)
    for n in names[:_LIST_LIMIT]:
        click.echo(f"  {n}", err=True)
    if len(names) > _LIST_LIMIT:
        click.echo(f"  ... and {len(names) - _LIST_LIMIT} more", err=True)


def _cap_blas_threads(threads: int) -> None:
    """Cap the BLAS/OpenMP pools NumPy loads (a user's own setting wins).

    OpenBLAS reads these variables once, when NumPy is first imported, so this runs before
    NumPy is used. Its idle threads spin: left at one per core next to the scoring workers,
    they burn the CPU the workers need.
    """
    if "numpy" in sys.modules and getattr(sys.modules["numpy"], "__config__", None) is not None:
        return  # already loaded (e.g. in a Python process that imported NumPy first)
    for var in _BLAS_THREAD_VARS:
        os.environ.setdefault(var, str(threads))


def _limit_threads(threads: int, torch_threads: int | None) -> None:
    """Cap OpenCV's own thread pool so the workers do not oversubscribe; set torch's (when a
    network runs) to ``torch_threads``."""
    import cv2

    cv2.setNumThreads(threads)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def _split_metrics(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from iqa.errors import OptionError

    names = [n for v in value for n in v.split(",") if n.strip()]
    try:
        return registry.metric_names(names) if names else ()
    except OptionError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def scoring_params() -> list[click.Parameter]:
    """The options that say what is scored and how: ``-m`` first, then matching, resuming,
    the image layer's and the conventions' options, every pair metric's options (prefixed),
    the runtime, workers, threads and the progress bar. ``iqa score`` and ``iqa compare``
    share them (and :func:`scoring_setup` reads them)."""
    metrics = registry.pair_metrics()
    params: list[click.Parameter] = [
        click.Option(
            ["-m", "--metrics", "metrics"], multiple=True, callback=_split_metrics, metavar="NAME[,NAME]",
            help=f"Metric to compute; repeat or separate with commas ({', '.join(s.name for s in metrics)}). "
            f"Default: {', '.join(registry.get(m).name for m in DEFAULT_METRICS)} (no downloaded weights needed).",
        ),
        click.Option(["--match-stem"], is_flag=True, help="Pair files by path without extension (a.png with a.jpg)."),
        click.Option(["--resume"], is_flag=True,
                     help="Continue an interrupted run: keep complete rows, retry failed ones."),
        click.Option(["--overwrite"], is_flag=True,
                     help="Replace an existing output (and maps, summary) once the new one is complete."),
    ]
    add_options(params, ImageOptions)
    start = len(params)
    add_options(params, Conventions)
    taking = ", ".join(s.name for s in metrics if s.conventions)
    for opt in params[start:]:
        opt.help = f"{opt.help} Applies to {taking}; the others see the whole image."
    for spec in metrics:
        for f in spec.options_class().cli_fields():
            params.append(field_option(f, prefix=spec.key))
    runtime_options(params, batch_size=32, pairs=True)
    alias(params, "--lpips-weights", "alias_lpips_weights", multiple=True)
    alias(params, "--backbone-weights", "alias_backbone_weights", multiple=True)
    workers_option(params, "decode and score pairs")
    params += [
        click.Option(["--threads"], type=click.IntRange(min=1), default=None,
                     help="Threads of OpenCV's, BLAS's and torch's own pools (default: cores / workers; "
                     "torch's: all cores, the network runs on the main thread)."),
        click.Option(["--progress/--no-progress"], default=None,
                     help="Progress bar on stderr (default: when stderr is a terminal)."),
    ]
    return params


def _params() -> list[click.Parameter]:
    metrics = registry.pair_metrics()
    shared = scoring_params()
    return [
        click.Argument(["reference"], type=click.Path(readable=False)),
        click.Argument(["distorted"], type=click.Path(readable=False)),
        shared[0],
        click.Option(["-o", "--output"], type=click.Path(), default=None,
                     help="Result file; '-' or none: stdout, each row as it completes (no sidecar, no resume)."),
        click.Option(["--format", "fmt"], type=click.Choice(["csv", "json", "jsonl"]), default=None,
                     help="Output format (default: from the output's extension, else csv)."),
        click.Option(["--pairs", "pairs_file"], type=click.Path(readable=False), default=None,
                     help="CSV with columns reference,distorted (paths relative to REFERENCE and DISTORTED) "
                     "instead of matching the folders."),
        *shared[1:-1],
        click.Option(["--drop-unlisted"], is_flag=True,
                     help="With --resume: remove the earlier complete rows whose pair is not in this run "
                     "(kept by default)."),
        click.Option(["--maps", "maps_dir"], type=click.Path(file_okay=False), default=None,
                     help=f"Write per-pair heat-maps ({', '.join(s.name for s in metrics if s.map_view)}) here."),
        click.Option(["--summary", "summary_file"], type=click.Path(dir_okay=False), default=None,
                     help="Also write the summary as JSON."),
        click.Option(["--psnr-mean"], type=click.Choice(["finite", "pooled"]), default="finite", show_default=True,
                     help="finite: mean of per-pair PSNR, identical pairs counted apart; pooled: PSNR of the mean MSE."),
        shared[-1],
    ]


def _settings(kw: dict[str, Any], namer: Any) -> Any:
    from iqa.errors import OptionError
    from iqa.scoring import DEFAULT_METRICS, ScoreSettings

    metrics = kw["metrics"] or DEFAULT_METRICS
    prefixed: dict[str, Any] = {}
    for spec in registry.pair_metrics():
        given = field_values(spec.options_class(), kw, prefix=spec.key)
        if given and spec.key not in metrics:
            flags = ", ".join(namer(spec.key, k, True) for k in given)
            raise click.UsageError(f"{flags} given but {spec.name} is not among the metrics (add -m {spec.name})")
        prefixed.update((f"{spec.key}_{k}", v) for k, v in given.items())
    try:
        weights = parse_weights(kw["weights"])
        # One call with every option: a bare --weights FILE goes to the network the metrics'
        # options select (--lpips-net squeeze: SqueezeNet), and a bad value is reported by
        # its options class, named as this command spells it (--ms-ssim-scales).
        return ScoreSettings.build(
            metrics, **field_values(ImageOptions, kw), **field_values(Conventions, kw), **prefixed,
            device=kw["device"], batch_size=kw["batch_size"], **({"weights": weights} if weights else {}),
        )
    except OptionError as exc:
        raise click.UsageError(exc.render(namer)) from None


def scoring_setup(kw: dict[str, Any]) -> tuple[int, Any, Any]:
    """Read :func:`scoring_params`: ``(workers, namer, ScoreSettings)``, with the thread pools
    capped (before NumPy loads) and the error namer installed for the command."""
    for dest in ("alias_lpips_weights", "alias_backbone_weights"):
        take_alias(kw, dest, "--" + dest[len("alias_"):].replace("_", "-"), "--weights", "weights")
    workers = default_workers() if kw["workers"] is None else kw["workers"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)
    threads = kw["threads"] or max(1, cores // max(workers, 1))
    _cap_blas_threads(threads)
    namer = cli_namer([s.key for s in registry.pair_metrics()])
    click.get_current_context().ensure_object(dict)["namer"] = namer
    if kw["resume"] and kw["overwrite"]:
        raise click.UsageError("--resume and --overwrite exclude each other")
    settings = _settings(kw, namer)
    # The network runs on the main thread, batch after batch, while the workers decode and
    # score the next pairs: one torch thread per worker share left it on one core (LPIPS-alex
    # on 512² pairs took 140 ms a pair instead of 75 ms with both cores); GNU OpenMP's capped
    # spinning (cli/app.py) keeps the overlap with the workers cheap.
    networks = any(s.networks for s in settings.specs)
    _limit_threads(threads, (kw["threads"] or cores) if networks else None)
    return workers, namer, settings


def _score(**kw: Any) -> None:
    """Score every distorted image against its reference, one row per pair."""
    output, fmt = kw["output"], kw["fmt"]
    if output == "-":
        output = None  # standard output
    if kw["resume"] and kw["overwrite"]:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if kw["resume"] and output is None:
        raise click.UsageError("--resume needs an output file (-o FILE); rows written to stdout cannot be resumed")
    if kw["drop_unlisted"] and not kw["resume"]:
        raise click.UsageError("--drop-unlisted applies to --resume")
    workers, namer, settings = scoring_setup(kw)

    from iqa import scoring
    from iqa.distributed import init
    from iqa.errors import IQAError
    from iqa.io import RANGE_NOTE

    if fmt is None:
        suffix = Path(output).suffix.lower() if output else ""
        fmt = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "csv")
    if kw["maps_dir"] is not None and not any(s.map_view for s in settings.specs):
        have = [s.name for s in registry.pair_metrics() if s.map_view]
        raise click.UsageError(f"--maps draws the maps of {', '.join(have)}: add one of them with -m")

    ctx = init()
    say = ctx.is_main
    reference, distorted = kw["reference"], kw["distorted"]
    if kw["pairs_file"] is not None:
        jobs = scoring.read_pairs_file(kw["pairs_file"], reference, distorted)
    else:
        pairing = scoring.pair_folders(reference, distorted, match_stem=kw["match_stem"])
        jobs = pairing.jobs  # a reference without a partner is an error row (exit code 1)
        if say:
            print_names("reference file(s) without a distorted partner (error rows)", pairing.unmatched_reference)
            print_names("distorted file(s) without a reference partner", pairing.unmatched_distorted)
            print_names("ambiguous name(s) not scored", pairing.ambiguous)
            ignored = len(pairing.ignored_reference) + len(pairing.ignored_distorted)
            if ignored:
                click.echo(f"iqa score: ignored {ignored} file(s) without an image extension", err=True)
    if not any(not j.missing for j in jobs):
        raise IQAError(
            f"no pairs to score between {reference} and {distorted}"
            + ("" if kw["match_stem"] or kw["pairs_file"] else "; if the extensions differ, pass --match-stem")
        )

    summary_file = kw["summary_file"]
    if summary_file is not None and output is not None:
        from iqa.scoring import meta_path

        if os.path.abspath(summary_file) in (os.path.abspath(output), os.path.abspath(meta_path(output))):
            raise click.UsageError("--summary names the output file or its sidecar; choose another file")
    if summary_file is not None and say:
        from iqa.outfile import check_output

        check_output(summary_file, overwrite=kw["overwrite"] or kw["resume"], what="summary",
                     inputs=scoring.run.input_paths(jobs))
        scoring.rowfile.check_writable(Path(summary_file))  # a read-only folder: found before the run
    if kw["maps_dir"] is not None and say:
        _check_maps_folder(Path(kw["maps_dir"]))
    bar = progress_bar(len(jobs), "pair", None, kw["progress"] and say if kw["progress"] is not None else None)
    try:
        with terminate_as_interrupt():
            run = scoring.score_to_file(
                jobs, output, settings, fmt=fmt, resume=kw["resume"], overwrite=kw["overwrite"],
                drop_unlisted=kw["drop_unlisted"], workers=workers, maps_dir=kw["maps_dir"],
                roots=(reference, distorted), on_row=bar, stream=sys.stdout, ctx=ctx, namer=namer,
            )
    except KeyboardInterrupt as exc:
        bar.close()
        if output is not None:
            again = "--overwrite" if kw["overwrite"] else "--resume"
            kept = "the earlier output is unchanged" if kw["overwrite"] else f"the rows written so far are in {output}"
            click.echo(f"iqa score: interrupted; {kept}: run the same command with {again} to finish", err=True)
        click.get_current_context().exit(128 + getattr(exc, "signum", signal.SIGINT))
    finally:
        bar.close()

    out_of_range = run.stats.notes.get(RANGE_NOTE, 0)
    if out_of_range:  # once per run; the summary's notes count them too
        click.echo(f"iqa: warning: {out_of_range} pair(s) have float values outside [0, data range] by more "
                   "than 1%: check --data-range ('iqa psnr REFERENCE DISTORTED' shows the values of one pair)", err=True)
    if say:
        summary = run.stats.summary(kw["psnr_mean"])
        if run.resumed:
            click.echo(f"iqa score: resumed: {run.resumed} complete row(s) kept, {run.scored} pair(s) scored", err=True)
        if run.unlisted:
            click.echo(f"iqa score: kept {run.unlisted} complete row(s) of an earlier run whose pair is not in this "
                       "run (its files are gone or not listed); --drop-unlisted removes them", err=True)
        if run.dropped:
            click.echo(f"iqa score: dropped {run.dropped} complete row(s) whose pair is not in this run "
                       "(--drop-unlisted)", err=True)
        if run.failed_dropped:
            click.echo(f"iqa score: removed {run.failed_dropped} failed row(s) of an earlier run whose pair is "
                       "not in this run", err=True)
        click.echo(scoring.format_summary(summary), err=True)
        if summary_file is not None:
            from iqa.scoring.rowfile import write_json_atomic

            doc: dict[str, Any] = {**summary, "output": output, "settings": settings.provenance()}
            write_json_atomic(Path(summary_file), doc, "summary")
    if run.failed:
        if say:
            where = f"; see the error column of {output}" if output else ""
            click.echo(f"iqa score: {run.failed} pair(s) with errors{where}", err=True)
        click.get_current_context().exit(1)


score_cmd = click.Command(
    "score", params=_params(), callback=_score, short_help="Score every distorted image against its reference, one row per pair.",
    help="""Score every distorted image against its reference, one row per pair.

Files are paired by path relative to REFERENCE and DISTORTED (recursively), or listed
with --pairs. Columns: reference, distorted, one per metric (named as in Python: ms_ssim),
error. A pair or metric that fails leaves its cells empty with the reason in `error`;
the others are still scored; a reference without a distorted partner is an error row.
Rows are flushed as they complete (--resume continues an interrupted run, keeping every
complete row); at the end the file is rewritten in sorted pair order and the settings and
status go to OUTPUT.meta.json. Without -o (or with -o -) rows stream to stdout.
Identical images' PSNR is `inf` in CSV and the string "inf" in
JSON/JSONL (float() reads both); an empty cell (null) always means failed. A summary goes
to stderr. Exit code 1 if any pair or metric failed.

Each metric's options carry its name: --ssim-win-size 7, --ms-ssim-scales 3, --lpips-net vgg.
Under torchrun each rank scores its own share and rank 0 merges the results.

\b
Example:
  iqa score data/samples/reference data/samples --pairs data/samples/pairs.csv -o scores.csv
""",
)


def _check_maps_folder(folder: Path) -> None:
    """Before any pair is scored: the maps folder exists (made if needed) and takes new files."""
    from iqa.errors import OutputError
    from iqa.outfile import describe

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".iqa-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the maps there: {describe(exc)}") from None
