"""The exception and warning hierarchy of iqa.

Every error is also a builtin exception, so callers that already catch ``ValueError`` or
``OSError`` keep working. Messages say what was expected, what was received and how to fix
it, and name the file when there is one.

An error that names an option does so through a placeholder, so that the same error reads
in the caller's language: ``scales=2`` when raised to Python, ``--scales 2`` (or
``--ms-ssim-scales 2`` in ``iqa score``) when shown by the command line. The message's
``{name}`` placeholders are filled by :meth:`IQAError.render` from ``options``; ``str(error)``
is the Python rendering.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Any, Callable, Iterator, Mapping

__all__ = [
    "IQAError",
    "IQAWarning",
    "ImageLoadError",
    "OptionError",
    "OutputError",
    "RangeError",
    "RangeWarning",
    "RenamedOptionWarning",
    "ShapeError",
    "SkippedFilesWarning",
    "WeightsError",
    "NAME",
    "python_option",
]


class _Name:
    """Marks a placeholder that names an option without a value (``scales`` / ``--scales``)."""

    def __repr__(self) -> str:
        return "NAME"


#: The value of a placeholder that names an option without suggesting a value.
NAME: Any = _Name()

#: How an option is written: ``(metric, keyword, value) -> text``. ``metric`` is the
#: metric whose option it is (``None`` for the image layer's options).
OptionNamer = Callable[[Any, str, Any], str]

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def python_option(metric: str | None, keyword: str, value: Any) -> str:
    """An option as a Python caller writes it: ``scales`` or ``scales=2``."""
    return keyword if value is NAME else f"{keyword}={value!r}"


#: How the running program names options in messages that are kept as text (the files a set
#: metric skipped): Python keywords by default; the command line sets its own flags.
_TEXT_NAMER: contextvars.ContextVar[OptionNamer | None] = contextvars.ContextVar("iqa_text_namer", default=None)


@contextlib.contextmanager
def naming_options(namer: OptionNamer | None) -> Iterator[None]:
    """Within the block, :func:`as_text` writes options as ``namer`` does."""
    token = _TEXT_NAMER.set(namer)
    try:
        yield
    finally:
        _TEXT_NAMER.reset(token)


def as_text(exc: BaseException) -> str:
    """An exception's message, its options named as :func:`naming_options` says."""
    return exc.render(_TEXT_NAMER.get()) if isinstance(exc, IQAError) else str(exc)


class IQAError(Exception):
    """Base class of every error raised by iqa.

    Args:
        message: the text; ``{placeholder}`` marks where an option is named.
        options: placeholder → keyword (names the option), or → ``(keyword, value)``
            (suggests a value). A placeholder missing here stays as written.
        metric: the metric whose options the placeholders name, if any.
    """

    def __init__(
        self, message: str = "", *, options: Mapping[str, Any] | None = None, metric: str | None = None
    ) -> None:
        self.template = str(message)
        self.options = dict(options or {})
        self.metric = metric
        super().__init__(self.render())

    def render(self, namer: OptionNamer | None = None) -> str:
        """The message with every option written by ``namer`` (default: Python keywords)."""
        if not self.options:
            return self.template
        namer = namer or python_option

        def fill(m: re.Match) -> str:
            ref = self.options.get(m[1])
            if ref is None:
                return m[0]
            keyword, value = (ref, NAME) if isinstance(ref, str) else ref
            return namer(self.metric, keyword, value)

        return _PLACEHOLDER.sub(fill, self.template)


class OptionError(IQAError, ValueError):
    """An option value that is not allowed (an unknown choice, a value out of range)."""


class ShapeError(IQAError, ValueError):
    """Images whose sizes, channel counts or layouts cannot be compared."""


class RangeError(IQAError, ValueError):
    """A data range that is missing, invalid or inconsistent between two images."""


class ImageLoadError(IQAError, OSError):
    """A file that cannot be read as an image (missing, empty, truncated, unsupported)."""


class OutputError(IQAError, OSError):
    """An output file that cannot or may not be written (exists, not a regular file, an
    input of the run, a full or read-only disk); the message names the file and the cause."""


class WeightsError(IQAError, RuntimeError):
    """Pretrained weights that cannot be found, downloaded or verified."""


class IQAWarning(UserWarning):
    """Warnings issued by iqa (for example a covariance that is singular)."""


class RangeWarning(IQAWarning):
    """Float pixels clearly outside ``[0, data_range]``: the data range does not describe
    the data (``[0, 255]`` images with ``data_range=1``, ``[-1, 1]`` tensors)."""


class RenamedOptionWarning(IQAWarning, FutureWarning):
    """A keyword or command-line option was used under its former name."""


class SkippedFilesWarning(IQAWarning):
    """Unreadable files were skipped; ``skipped`` holds ``(file, reason)`` pairs.

    The command line lists the files itself, so it routes this category apart.
    """

    def __init__(self, message: str, skipped: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.skipped = list(skipped or [])
