"""The ``iqa`` Click group: global options, error handling, command registration.

Commands live in their own modules and are registered below. Heavy imports (torch, scipy,
the networks) happen inside commands so that ``iqa --help`` starts instantly.
"""

from __future__ import annotations

import sys
from importlib import metadata

import click

from iqa import __version__
from iqa.errors import IQAError

from .classic import ms_ssim_cmd, psnr_cmd, ssim_cmd
from .fid_cmd import fid_cmd, kid_cmd, stats_cmd
from .lpips_cmd import lpips_cmd
from .score_cmd import score_cmd
from .weights_cmd import weights_cmd

#: Exit codes: 0 success, 1 a file or pair failed, 2 usage error (Click's own).
EXIT_FAILURE = 1


def _version_line() -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"iqa {__version__} (torch {v('torch')}, numpy {v('numpy')}, scipy {v('scipy')}, "
        f"Python {sys.version.split()[0]})"
    )


class IQAGroup(click.Group):
    """Turns an :class:`iqa.IQAError` into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IQAError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            message = " ".join(str(exc).split("\n"))
            click.echo(f"iqa: error: {message}", err=True)
            ctx.exit(EXIT_FAILURE)


@click.group(cls=IQAGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=_version_line())
@click.option(
    "--debug",
    is_flag=True,
    envvar="IQA_DEBUG",
    help="Show the full traceback of an error instead of a one-line message.",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Image quality metrics that match the reference implementations.

    Scores go to stdout; progress, summaries and warnings to stderr. Exit codes: 0 success,
    1 a file or pair failed, 2 usage error.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


main.add_command(psnr_cmd)
main.add_command(ssim_cmd)
main.add_command(ms_ssim_cmd)
main.add_command(lpips_cmd)
main.add_command(score_cmd)
main.add_command(weights_cmd)
main.add_command(fid_cmd)
main.add_command(kid_cmd)
main.add_command(stats_cmd)
