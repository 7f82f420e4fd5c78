"""``python -m iqa``: the ``iqa`` command line."""

from iqa.cli.app import main

main(prog_name="iqa")
