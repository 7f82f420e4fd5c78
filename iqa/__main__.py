"""``python -m iqa``: the ``iqa`` command line."""

from iqa.cli.app import run

run()
