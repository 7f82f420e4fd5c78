"""The ``iqa`` command line (installed as the subpackage ``iqa.cli``)."""

from .app import main, run

__all__ = ["main", "run"]
