"""``iqa compare``: several methods against one reference folder, with confidence.

The scoring options are ``iqa score``'s own (:func:`.score_cmd.scoring_params`); each method
is scored into ``OUTDIR/scores/NAME.csv`` by the same file run as ``iqa score -o``. The
statistics are :func:`iqa.compare.run.compare`'s. :func:`finish` receives the finished
:class:`~iqa.compare.run.Comparison`: what the command does with it (print it) goes there.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import warnings
from typing import Any

import click

from iqa import registry
from iqa.options import Conventions, ImageOptions

from .options import field_values
from .progress import progress_bar
from .score_cmd import print_names, scoring_params, scoring_setup, terminate_as_interrupt

_PROG = "iqa compare"


class _Command(click.Command):
    """Keeps the arguments as given, to record the command line in the summary."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["iqa_compare_argv"] = list(args)
        return super().parse_args(ctx, args)


def _pair(value: str) -> tuple[str, str] | None:
    """``NAME=PATH`` → ``(NAME, PATH)``; ``None`` when the text is not of that form (a path)."""
    name, sep, path = value.partition("=")
    if not sep or not name or not path or "/" in name or os.sep in name:
        return None
    return name, path


def _inputs(inputs: tuple[str, ...]) -> tuple[str | None, list[tuple[str, str]]]:
    """``REF NAME=DIR ...`` → the reference folder and the methods, in order."""
    reference, methods = None, []
    for i, arg in enumerate(inputs):
        pair = None if (i == 0 and os.path.isdir(arg)) else _pair(arg)
        if pair is None:
            if i:
                raise click.BadParameter(f"{arg!r}: expected NAME=DIR (the reference folder comes first)",
                                         param_hint="METHODS")
            reference = arg
            if not os.path.isdir(arg):
                raise click.BadParameter(f"{arg}: no such folder", param_hint="REF")
            continue
        if not os.path.isdir(pair[1]):
            raise click.BadParameter(f"{arg}: {pair[1]} is not a folder (an existing score file goes with "
                                     "--scores NAME=FILE)", param_hint="METHODS")
        methods.append(pair)
    return reference, methods


def _scores(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        pair = _pair(v)
        if pair is None:
            raise click.BadParameter(f"{v!r}: expected NAME=FILE", param_hint="--scores")
        if not os.path.isfile(pair[1]):
            raise click.BadParameter(f"{pair[1]}: no such file", param_hint="--scores")
        out.append(pair)
    return out


def _pairs(values: tuple[str, ...], folders: list[str]) -> Any:
    """``--pairs FILE`` (every folder method) and ``--pairs NAME=FILE`` (that method) → a
    mapping name → pair list, or ``None``."""
    if not values:
        return None
    common, own = None, {}
    for v in values:
        pair = _pair(v)
        if pair is not None and pair[0] in folders and not os.path.isfile(v):
            name, path = pair
            if name in own:
                raise click.BadParameter(f"two pair lists for {name}", param_hint="--pairs")
            own[name] = path
        else:
            if pair is not None and not os.path.isfile(v):
                raise click.BadParameter(f"{v!r}: {pair[0]} is not a method given as NAME=DIR "
                                         f"({', '.join(folders) or 'none'})", param_hint="--pairs")
            if common is not None:
                raise click.BadParameter("give one pair list for every method (FILE), or NAME=FILE per method",
                                         param_hint="--pairs")
            common = path = v
        if not os.path.isfile(path):
            raise click.BadParameter(f"{path}: no such file", param_hint="--pairs")
    return {n: own.get(n, common) for n in folders if own.get(n, common) is not None}


def _params() -> list[click.Parameter]:
    shared = scoring_params()
    metrics = shared[0]
    metrics.help = (f"{metrics.help} With score files only: the metrics every file has.")
    for opt in shared:
        if opt.name == "resume":
            opt.help = ("Continue an interrupted comparison: each method's score file keeps its complete rows "
                        "and retries failed ones; the summaries are written again.")
        elif opt.name == "overwrite":
            opt.help = "Replace the score files and summaries of an earlier comparison in OUTDIR."
    return [
        click.Argument(["inputs"], nargs=-1, metavar="[REF] [NAME=DIR]..."),
        metrics,
        click.Option(["-o", "--output"], type=click.Path(file_okay=False), required=True, metavar="OUTDIR",
                     help="Output folder: scores/NAME.csv per scored method, summary.json, summary.csv."),
        click.Option(["--scores", "scores"], multiple=True, metavar="NAME=FILE",
                     help="A method already scored: a result file of iqa score (CSV, JSON or JSONL), read as it "
                     "is. Repeatable."),
        click.Option(["--pairs", "pairs"], multiple=True, metavar="[NAME=]FILE",
                     help="CSV with columns reference,distorted (paths relative to REF and to each method's DIR) "
                     "instead of matching the folders: FILE for every method, NAME=FILE for one."),
        click.Option(["--baseline"], default=None, metavar="NAME",
                     help="The method the others are compared with [default: the first NAME=DIR, else the "
                     "first --scores]."),
        click.Option(["--seed"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of the bootstrap (each interval draws from its own generator seeded with it)."),
        click.Option(["--n-resamples"], type=click.IntRange(min=100), default=10_000, show_default=True,
                     help="Bootstrap resamples per interval."),
        click.Option(["--ci-method"], type=click.Choice(["bca", "percentile"]), default="bca", show_default=True,
                     help="Bootstrap interval: bias-corrected and accelerated, or percentile."),
        click.Option(["--format", "fmt"], type=click.Choice(["text", "json"]), default="text", show_default=True,
                     help="stdout: a table, or summary.json's object."),
        click.Option(["--report", "report_dir"], type=click.Path(file_okay=False), default=None, metavar="DIR",
                     help="Also write the HTML report (iqa report) into DIR; an earlier report there is "
                     "replaced with --overwrite or --resume."),
        *shared[1:],
    ]


def _scoring_given(kw: dict[str, Any]) -> list[str]:
    """Scoring options given on the command line (they need a method to score)."""
    given = [*field_values(ImageOptions, kw), *field_values(Conventions, kw)]
    for spec in registry.pair_metrics():
        given += [f"{spec.key}_{k}" for k in field_values(spec.options_class(), kw, prefix=spec.key)]
    if kw["weights"]:
        given.append("weights")
    return ["--" + g.replace("_", "-") for g in given]


def finish(comparison: Any, kw: dict[str, Any]) -> None:
    """Print the comparison on stdout (``--format``); extended by options that act on it."""
    if kw["fmt"] == "json":
        click.echo(json.dumps(comparison.to_dict(), indent=2, allow_nan=False))
    else:
        click.echo(comparison.format_table())
    if kw["report_dir"] is not None:
        from iqa.compare.report import report

        from .report_cmd import interrupt_exits
        from .sets_cmd import _warnings_to_stderr

        rerun = (f"the summaries are written in {kw['output']}: run iqa report {shlex.quote(kw['output'])} -o "
                 f"{shlex.quote(kw['report_dir'])}")
        if kw["overwrite"] or kw["resume"]:
            rerun += " --overwrite"
        with interrupt_exits(_PROG, rerun), _warnings_to_stderr():
            index = report(comparison, kw["report_dir"], overwrite=kw["overwrite"] or kw["resume"],
                           output_option="report")
        click.echo(f"{_PROG}: report: {index}", err=True)


def _check_report(kw: dict[str, Any]) -> None:
    """Before any scoring: ``--report`` needs matplotlib and a folder it may write."""
    if kw["report_dir"] is None:
        return
    from pathlib import Path

    from iqa.compare.report import check_output
    from iqa.compare.report_figures import require_matplotlib

    from .options import cli_namer

    click.get_current_context().ensure_object(dict).setdefault("namer", cli_namer())
    require_matplotlib()
    check_output(Path(kw["report_dir"]), kw["overwrite"] or kw["resume"], "report")


def _compare(**kw: Any) -> None:
    """Compare methods against a baseline, image by image."""
    reference, folders = _inputs(kw["inputs"])
    scored = _scores(kw["scores"])
    names = [n for n, _ in [*folders, *scored]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise click.UsageError(f"method name {twice[0]!r} is given twice")
    if not names:
        raise click.UsageError("no method to compare: give NAME=DIR after REF, or --scores NAME=FILE")
    if folders and reference is None:
        raise click.UsageError("give the reference folder first: iqa compare REF NAME=DIR ...")
    pairs = _pairs(kw["pairs"], [n for n, _ in folders])
    if kw["baseline"] is not None and kw["baseline"] not in names:
        raise click.BadParameter(f"{kw['baseline']!r} is not a method ({', '.join(names)})", param_hint="--baseline")
    if folders:
        workers, namer, settings = scoring_setup(kw)
        options: dict[str, Any] = {"settings": settings, "metrics": kw["metrics"] or None, "workers": workers,
                                   "namer": namer,
                                   "match_stem": kw["match_stem"], "resume": kw["resume"], "overwrite": kw["overwrite"]}
    else:
        unused = _scoring_given(kw) + (["--match-stem"] if kw["match_stem"] else [])
        if unused:
            raise click.UsageError(f"{', '.join(unused)} given, but every method is a score file (--scores): "
                                   "scoring options apply to NAME=DIR methods")
        if kw["resume"] and kw["overwrite"]:
            raise click.UsageError("--resume and --overwrite exclude each other")
        options = {"metrics": kw["metrics"] or None, "resume": kw["resume"], "overwrite": kw["overwrite"]}
    _check_report(kw)

    from iqa.compare.run import compare
    from iqa.errors import IQAWarning, OptionError

    bars: list[Any] = []
    show = kw["progress"]

    def progress(name: str, total: int) -> Any:
        click.echo(f"{_PROG}: scoring {name} ({total} pair(s))", err=True)
        bars.append(progress_bar(total, "pair", name, show))
        return bars[-1]

    def on_pairing(name: str, pairing: Any) -> None:
        prog = f"{_PROG}: {name}"
        print_names("reference file(s) without a distorted partner (error rows)", pairing.unmatched_reference,
                    prog)
        print_names("distorted file(s) without a reference partner", pairing.unmatched_distorted, prog)
        print_names("ambiguous name(s) not scored", pairing.ambiguous, prog)

    command = ["iqa", "compare", *click.get_current_context().meta.get("iqa_compare_argv", [])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IQAWarning)
        try:
            with terminate_as_interrupt():
                comparison = compare(
                    reference, dict([*folders, *scored]), output=kw["output"], pairs=pairs, baseline=kw["baseline"],
                    seed=kw["seed"], n_resamples=kw["n_resamples"], ci_method=kw["ci_method"], command=command,
                    progress=progress, on_pairing=on_pairing, **options,
                )
        except OptionError as exc:  # an option the files cannot satisfy: a usage error, as on the command line
            from .options import cli_namer

            raise click.UsageError(exc.render(cli_namer())) from None
        except KeyboardInterrupt as exc:
            if kw["overwrite"]:
                kept = "the method being scored keeps its earlier score file"
                again = "--overwrite"
            else:
                kept = f"the rows scored so far are in {os.path.join(kw['output'], 'scores')}"
                again = "--resume"
            click.echo(f"{_PROG}: interrupted; {kept}: run the same command with {again} to finish", err=True)
            click.get_current_context().exit(128 + getattr(exc, "signum", signal.SIGINT))
        finally:
            for bar in bars:
                bar.close()
            for w in caught:
                if issubclass(w.category, IQAWarning):
                    click.echo(f"{_PROG}: warning: {w.message}", err=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    finish(comparison, kw)
    failed = [m for m in comparison.metadata["methods"] if m["n_failed"]]
    for m in failed:
        where = os.path.join(kw["output"], m["scores"])  # joining an absolute path keeps it
        click.echo(f"{_PROG}: {m['name']}: {m['n_failed']} pair(s) with errors; see the error column of {where}",
                   err=True)
    sys.stdout.flush()
    if failed:
        click.get_current_context().exit(1)


compare_cmd = _Command(
    "compare", params=_params(), callback=_compare,
    short_help="Compare methods against a baseline: intervals, paired tests, wins.",
    help="""Compare methods against a baseline: intervals, paired tests, wins.

Each NAME=DIR is a method's outputs, scored against REF with iqa score's options into
OUTDIR/scores/NAME.csv (resumable with --resume); --scores NAME=FILE adds a method already
scored (any iqa score output). Methods are joined by reference image. OUTDIR gets
summary.json and summary.csv; stdout a table (or --format json).

Per method and metric: n, mean, median, std and a bootstrap interval of the mean
(--ci-method, --n-resamples, --seed). Against the baseline (--baseline, default the first
method), over the images every method scored: the mean difference with a paired-bootstrap
interval, the two-sided Wilcoxon signed-rank p-value (zero_method zsplit: identical methods
give p = 1), Holm-adjusted over methods x metrics, and the shares of images won, tied and
lost by each metric's direction. PSNR's inf (identical images) is counted as n_inf, left
out of means and intervals, and inf - inf is a tie. Images a method lacks are named.
Exit code 1 if any pair or metric failed or a reference has no partner in a method's
folder (an error row, as in iqa score), 2 for a usage error.

\b
Example:
  iqa compare data/samples/reference jpeg=data/samples/jpeg blur=data/samples/blur \\
      noise=data/samples/noise --match-stem -o comparison
""",
)
