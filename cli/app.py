"""The ``iqa`` Click group: global options, error handling, command registration.

The pair commands are generated from the metric registry; every command is built when it is
first needed (``iqa --help`` builds none that imports torch), and heavy imports (torch,
scipy, the networks) happen inside commands, so that ``iqa --help`` starts instantly.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

import click

from iqa import __version__, registry
from iqa.errors import IQAError

#: Exit codes: 0 success, 1 a file or pair failed, 2 usage error (Click's own).
EXIT_FAILURE = 1

#: Commands that are not one pair metric: name → (module, attribute).
_COMMANDS = {
    "score": ("score_cmd", "score_cmd"),
    "compare": ("compare_cmd", "compare_cmd"),
    "fid": ("sets_cmd", "fid_cmd"),
    "kid": ("sets_cmd", "kid_cmd"),
    "stats": ("sets_cmd", "stats_cmd"),
    "metrics": ("metrics_cmd", "metrics_cmd"),
    "report": ("report_cmd", "report_cmd"),
    "weights": ("weights_cmd", "weights_cmd"),
}


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
    """Builds commands on first use; turns an :class:`iqa.IQAError` into one line on stderr
    and exit code 1, naming options as the running command spells them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        pair = [s.name for s in registry.pair_metrics()]
        return sorted([*pair, *_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, attr = _COMMANDS[name]
            return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        spec = registry.METRICS.get(name.replace("-", "_"))
        if spec is None or spec.kind != "pair" or spec.name != name:
            return None
        from .pair_cmd import make_pair_command

        return make_pair_command(spec)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IQAError as exc:
            obj = ctx.obj or {}
            if obj.get("debug"):
                raise
            message = " ".join(exc.render(obj.get("namer")).split())
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
    1 a file or pair failed, 2 usage error. 'iqa metrics' lists every metric.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
