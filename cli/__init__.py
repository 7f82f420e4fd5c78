"""The ``iqa`` command line (installed as the subpackage ``iqa.cli``)."""

from .app import main

__all__ = ["main"]
