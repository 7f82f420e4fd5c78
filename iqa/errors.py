"""The exception hierarchy of iqa.

Every error is also a builtin exception, so callers that already catch ``ValueError`` or
``OSError`` keep working. Messages say what was expected, what was received and how to fix
it, and name the file when there is one.
"""

from __future__ import annotations

__all__ = [
    "IQAError",
    "IQAWarning",
    "ImageLoadError",
    "RangeError",
    "ShapeError",
    "WeightsError",
]


class IQAError(Exception):
    """Base class of every error raised by iqa."""


class ShapeError(IQAError, ValueError):
    """Images whose sizes, channel counts or layouts cannot be compared."""


class RangeError(IQAError, ValueError):
    """A data range that is missing, invalid or inconsistent between two images."""


class ImageLoadError(IQAError, OSError):
    """A file that cannot be read as an image (missing, empty, truncated, unsupported)."""


class WeightsError(IQAError, RuntimeError):
    """Pretrained weights that cannot be found, downloaded or verified."""


class IQAWarning(UserWarning):
    """Warnings issued by iqa (for example a covariance that is singular)."""
