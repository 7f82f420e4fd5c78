"""The ``iqa`` Click group: global options, error handling, command registration.

The pair commands are generated from the metric registry; every command is built when it is
first needed (``iqa --help`` builds none that imports torch), and heavy imports (torch,
scipy, the networks) happen inside commands, so that ``iqa --help`` starts instantly.
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import io
import os
import sys
from importlib import metadata
from typing import Any

import click

from iqa import __version__, registry
from iqa.errors import IQAError

def _spin_briefly() -> None:
    """Cap how long idle OpenMP threads spin, before torch loads libgomp.

    PyTorch's Linux builds use GNU OpenMP, whose idle threads spin 300,000 times at every
    barrier before sleeping. A network fed a few images per call (the feature extractors,
    LPIPS) crosses thousands of barriers; when anything else wants the cores (the decoding
    threads, another process) the spinning threads take their time slices, and on 2 cores a
    busy neighbour made the Inception pass 8× slower. 10,000 spins keep the idle speed and
    drop that loss (docs/performance.md). A user's ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``
    is kept (libgomp lets the first override the second, so neither is set then); a process
    that has already loaded torch is not affected.
    """
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def _skip_final_collection() -> None:
    """Spare the ``iqa`` process the interpreter's garbage collections at exit.

    At exit CPython collects garbage across every object still alive; once torch is imported
    that is ~0.2 s of the ~0.35 s that ``python -c "import torch"`` takes to exit, to free
    memory the operating system takes back anyway. ``gc.freeze()`` in an exit handler moves
    every object to the permanent generation, which those collections skip. Objects are
    still freed when their last reference goes, as modules are torn down; only garbage in
    reference cycles is left to the operating system, and iqa relies on no finalizer of
    such garbage: every file it writes is closed (and synced) by the command itself. Only
    :func:`run` (a process that is iqa's own) asks for it: a script or a test runner that
    calls :data:`main` may rely on its own garbage's finalizers at exit.
    """
    atexit.register(gc.freeze)


#: Exit codes: 0 success, 1 a file or pair failed, 2 usage error (Click's own).
EXIT_FAILURE = 1

#: Commands that are not one pair metric: name → (module, attribute).
_COMMANDS = {
    "score": ("score_cmd", "score_cmd"),
    "compare": ("compare_cmd", "compare_cmd"),
    "fid": ("sets_cmd", "fid_cmd"),
    "kid": ("sets_cmd", "kid_cmd"),
    "cmmd": ("sets_cmd", "cmmd_cmd"),
    "stats": ("sets_cmd", "stats_cmd"),
    "evaluate": ("sets_cmd", "evaluate_cmd"),
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
            return super().get_command(ctx, name)  # one added with add_command, if any
        from .pair_cmd import make_pair_command

        return make_pair_command(spec)

    def invoke(self, ctx: click.Context):
        _spin_briefly()
        if sys.stdout is None:
            # Started with standard output closed (``iqa psnr a b >&-``): Click would drop
            # every number without a word; a write now fails and is reported (a command that
            # writes only to -o files still runs).
            sys.stdout = _ClosedStream()
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors (exit 2) and exits: Click's own rendering
        except BrokenPipeError:
            # The reader of stdout went away (``iqa score ... | head``): nothing more to say
            # to it; stop quietly without Python's "Exception ignored" message at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_FAILURE)
        except Exception as exc:
            obj = ctx.obj or {}
            if obj.get("debug"):
                raise
            click.echo(f"iqa: error: {_one_line(exc, obj.get('namer'))}", err=True)
            ctx.exit(EXIT_FAILURE)


class _ClosedStream(io.TextIOBase):
    """Standard output when the process started without one: writing fails with EBADF."""

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "closed when iqa started")


def _one_line(exc: Exception, namer: Any) -> str:
    """An error as the one line a user sees: iqa's own message; an OS error with its file
    and cause in words; anything else as unexpected, with the way to see more."""
    if isinstance(exc, IQAError):
        from .options import cli_namer

        text = exc.render(namer or cli_namer())
    elif isinstance(exc, OSError) and exc.errno is not None:
        from iqa.outfile import describe

        # No file name: the failed write was to standard output (``> /dev/full``, ``>&-``).
        where = f"{exc.filename}: " if exc.filename is not None else "standard output: "
        text = f"{where}{describe(exc)}"
    else:
        detail = " ".join(str(exc).split())
        text = f"unexpected {type(exc).__name__}{': ' + detail if detail else ''}; run with --debug for details"
    return " ".join(text.split())


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


def run() -> None:
    """The ``iqa`` command as a process of its own (the console script, ``python -m iqa.cli``,
    ``python -m iqa``): :data:`main`, with the last garbage collections skipped at exit
    (:func:`_skip_final_collection`). Scripts and tests call ``main`` itself."""
    _skip_final_collection()
    main(prog_name="iqa")
