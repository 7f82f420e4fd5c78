"""``iqa weights list|download|verify``: the pretrained files iqa can use."""

from __future__ import annotations

import sys

import click


@click.group("weights")
def weights_cmd() -> None:
    """Pretrained files: where they are, download them, verify them.

    Files are kept in $IQA_CACHE_DIR/weights (default: the user cache directory, e.g.
    ~/.cache/iqa/weights); a matching file in torch's hub cache is used in place.
    IQA_OFFLINE=1 turns downloads off.
    """


def _names(names: tuple[str, ...]) -> list[str]:
    from iqa.weights import REGISTRY

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise click.BadParameter(
            f"unknown name(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}", param_hint="NAME"
        )
    return list(names) or list(REGISTRY)


@weights_cmd.command("list")
def list_cmd() -> None:
    """Name, status (present/missing, not hashed), path, digest and licence of every file.

    The digest column is 'pinned' (published, checked on every load) or 'unpinned' (none is
    published: the first download's SHA-256 is recorded and later loads are checked
    against it; shown once recorded).
    """
    from iqa.weights import REGISTRY, recorded_sha256, status

    for name, entry in REGISTRY.items():
        st = status(name)
        where = f" ({st.source})" if st.source == "torch-hub" else ""
        recorded = None if entry.pinned else recorded_sha256(name)
        pin = "pinned" if entry.pinned else f"unpinned{f' (recorded {recorded})' if recorded else ''}"
        click.echo(f"{name}\t{st.state}{where}\t{st.path}\t{pin}\t{entry.licence}")


@weights_cmd.command("download")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--force", is_flag=True, help="Download again even if the cached file verifies.")
def download_cmd(names: tuple[str, ...], force: bool) -> None:
    """Download registered files (all of them without NAME) into iqa's cache.

    Prints 'NAME PATH' for each file on stdout; progress goes to stderr.
    """
    from iqa.errors import IQAError
    from iqa.weights import REGISTRY, download

    failed = 0
    for name in _names(names):
        shown = []

        def progress(done: int, total: int | None, name: str = name, shown: list = shown) -> None:
            shown.append(True)
            of = f" of {total / 2**20:.1f}" if total else ""
            click.echo(f"\r{name}: {done / 2**20:.1f}{of} MiB", nl=False, err=True)

        click.echo(f"{name}: {REGISTRY[name].url}", err=True)
        try:
            path = download(name, force=force, progress=progress)
        except IQAError as exc:
            if shown:
                click.echo("", err=True)
            click.echo(f"iqa: error: {exc}", err=True)
            failed += 1
            continue
        if shown:
            click.echo("", err=True)
        click.echo(f"{name}\t{path}")
    if failed:
        sys.exit(1)


@weights_cmd.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME...]")
def verify_cmd(names: tuple[str, ...]) -> None:
    """Hash the files found (all registered ones without NAME) against the registry.

    Prints 'NAME STATE PATH' (ok, corrupt or missing); exits with 1 if a file is corrupt.
    """
    from iqa.weights import status

    corrupt = 0
    for name in _names(names):
        st = status(name, verify=True)
        click.echo(f"{name}\t{st.state}\t{st.path}")
        corrupt += st.state == "corrupt"
    if corrupt:
        sys.exit(1)
