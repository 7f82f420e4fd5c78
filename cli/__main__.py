"""``python -m iqa.cli`` (used, for example, as ``torchrun -m iqa.cli ...``)."""

from .app import main

main(prog_name="iqa")
