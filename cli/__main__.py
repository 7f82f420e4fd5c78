"""``python -m iqa.cli`` (used, for example, as ``torchrun -m iqa.cli ...``)."""

from .app import run

run()
