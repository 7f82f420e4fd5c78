"""``iqa report``: a static HTML report of ``iqa compare``'s folder or one ``iqa score`` output."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import click

from .options import cli_namer
from .sets_cmd import _warnings_to_stderr


@click.command("report")
@click.argument("results", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="The report's folder (index.html, plots, previews); created.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report folder (never another folder).")
@click.option("--gallery-size", type=click.IntRange(min=0), default=6, show_default=True,
              help="Images per gallery: the worst per metric and method, the most different per pair of methods.")
@click.option("--thumbnail-size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Longest side of a preview, in pixels.")
@click.option("--title", default=None, help="The page's title (default: the results' name).")
@click.option("--lpips-maps/--no-lpips-maps", default=True, show_default=True,
              help="Draw LPIPS heat maps when LPIPS was scored and its weights are on this machine (never downloads).")
def report_cmd(results: str, output: str, overwrite: bool, gallery_size: int, thumbnail_size: int,
               title: str | None, lpips_maps: bool) -> None:
    """Write an HTML report of RESULTS: iqa compare's output folder or one iqa score output
    file. It opens from disk in any browser, offline; images are linked, not copied.

    Prints the path of the report's index.html. Missing images become placeholders and
    warnings on stderr; an existing folder is replaced only with --overwrite.
    """
    from iqa.compare.report import report
    from iqa.compare.report_figures import require_matplotlib

    click.get_current_context().ensure_object(dict)["namer"] = cli_namer()
    require_matplotlib()
    with interrupt_exits("iqa report", f"{output} is unchanged; run the command again to write the report"):
        with _warnings_to_stderr():
            index = report(results, output, overwrite=overwrite, gallery_size=gallery_size,
                           thumbnail_size=thumbnail_size, title=title, lpips_maps=lpips_maps)
    click.echo(str(index))


@contextlib.contextmanager
def interrupt_exits(prog: str, what: str) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP while a report is written: the folder being built is
    removed, one line says what stands, and the exit code is 128 + the signal (130 for
    Ctrl-C), never 1 (a failed pair)."""
    from .score_cmd import terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            yield
    except KeyboardInterrupt as exc:
        click.echo(f"{prog}: interrupted while writing the report; {what}", err=True)
        click.get_current_context().exit(128 + getattr(exc, "signum", signal.SIGINT))
