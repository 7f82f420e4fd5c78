"""``iqa metrics``: every metric the registry knows, with its options and conventions."""

from __future__ import annotations

import json

import click


def markdown_table() -> str:
    """The README's metric table, generated from the registry."""
    from iqa import registry

    lines = [
        "| metric | kind | better | range | options (defaults) | matches |",
        "|---|---|---|---|---|---|",
    ]
    for spec in registry.METRICS.values():
        d = spec.describe()
        lo, hi = d["range"]
        opts = ", ".join(f"`{k}={v['default']}`" for k, v in d["options"].items()) or "-"
        lines.append(
            f"| `{spec.name}` | {spec.kind} | {'higher' if spec.higher_is_better else 'lower'} | "
            f"[{lo}, {hi}]{' ' + spec.unit if spec.unit else ''} | {opts} | {spec.matches} |"
        )
    return "\n".join(lines)


@click.command("metrics")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="text: one block per metric; json: the registry as one object; markdown: the README's table.")
def metrics_cmd(fmt: str) -> None:
    """Every metric: kind, direction, range, options with defaults, and the implementation
    it matches."""
    from iqa import registry

    if fmt == "json":
        doc = {spec.name: spec.describe() for spec in registry.METRICS.values()}
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
    if fmt == "markdown":
        click.echo(markdown_table())
        return
    for spec in registry.METRICS.values():
        d = spec.describe()
        lo, hi = d["range"]
        click.echo(f"{spec.name} ({spec.kind}, {d['direction']}, range [{lo}, {hi}]{' ' + spec.unit if spec.unit else ''})")
        click.echo(f"  {spec.summary}")
        for name, o in d["options"].items():
            choices = f" {{{', '.join(map(str, o['choices']))}}}" if o["choices"] else ""
            click.echo(f"  {name} = {o['default']}{choices}: {o['help']}")
        if d["constants"]:
            click.echo("  constants: " + ", ".join(f"{k}={v}" for k, v in d["constants"].items()))
        click.echo(f"  matches: {spec.matches}")
        click.echo(f"  reference: {spec.reference}")
