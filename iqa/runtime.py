"""Where and how networks run: the device, local weight files, the batch size.

These change no number (except the weights, which every result records by SHA-256), so they
are not metric options; every command and function that runs a network takes them with the
same names and meanings:

- ``device``: ``"auto"`` (a tensor's own device; else CUDA when available, else the CPU),
  ``"cpu"``, ``"cuda"``, ``"cuda:N"``. :func:`resolve_device` is the one place that decides.
- ``weights``: local files instead of the registry's downloads, as ``{registry name: path}``
  (CLI ``--weights NAME=FILE``), or one path when exactly one network runs (``--weights FILE``).
- ``batch_size``: images per network call (a pair of images counts as two).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from iqa.errors import OptionError

__all__ = ["DEVICE_PATTERN", "Runtime", "check_device", "resolve_device", "weights_mapping"]

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device(device: str, *, cuda: bool = True) -> str:
    """Check a ``device`` setting once, before any work.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cuda: also check that CUDA (and device ``N``) is there; this imports torch, so it
            is done only when a network will run.

    Raises:
        OptionError: a malformed device, or CUDA requested on a machine without it.
    """
    d = str(device)
    if not DEVICE_PATTERN.fullmatch(d):
        raise OptionError(f"{{kw}} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}", options={"kw": "device"})
    if cuda and d.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OptionError(
                f"device {d!r} requested but CUDA is not available on this machine; use {{kw}}",
                options={"kw": ("device", "cpu")},
            )
        index = int(d.split(":")[1]) if ":" in d else 0
        if index >= torch.cuda.device_count():
            raise OptionError(
                f"device {d!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return d


def resolve_device(device: str | None = "auto", like: Any = None) -> Any:
    """The ``torch.device`` to run on: ``like``'s device (a tensor) for ``"auto"``, else
    CUDA when available, else the CPU; an explicit device is checked and used."""
    import torch

    d = check_device("auto" if device is None else device)
    if d != "auto":
        return torch.device(d)
    if like is not None and hasattr(like, "device"):
        return like.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: A placeholder value for "name each file": ``weights={'NAME': 'FILE'}`` in Python,
#: ``--weights NAME=FILE`` on the command line.
NAMED_FILES = {"NAME": "FILE"}


def weights_mapping(weights: Any, needed: tuple[str, ...] | None = None) -> dict[str, str]:
    """Normalise a ``weights`` argument to ``{registry name: path}``.

    Args:
        weights: None, one path, or a mapping of :mod:`iqa.weights` registry names to paths.
        needed: the registry names of the files the requested computation uses; a single
            path is allowed when exactly one is needed, and a mapping may name only these.
            ``None`` checks the names alone.

    Raises:
        OptionError: a single path where several (or no) networks run, an unknown name, or
            a name that nothing here uses (it would be ignored and the registry's file used).
    """
    if weights is None:
        return {}
    if isinstance(weights, (str, os.PathLike)):
        if needed is None or len(needed) != 1:
            count = "several" if needed is None else str(len(needed))
            raise OptionError(
                f"a single weights file is ambiguous here ({count} networks: "
                f"{', '.join(needed or ()) or 'none'}); name each file: {{kw}}",
                options={"kw": ("weights", NAMED_FILES)},
            )
        return {needed[0]: os.fspath(weights)}
    if not isinstance(weights, Mapping):
        raise OptionError(f"{{kw}} must be a path or a mapping of registry names to paths, got {type(weights).__name__}",
                          options={"kw": "weights"})
    from iqa.weights import REGISTRY

    out = {}
    for name, path in weights.items():
        if name not in REGISTRY:
            raise OptionError(
                f"unknown weights name {name!r} in {{kw}}; known: {', '.join(REGISTRY)}", options={"kw": "weights"}
            )
        if needed is not None and name not in needed:
            raise OptionError(
                f"{{kw}} names {name}, which nothing here uses (it uses: {', '.join(needed) or 'no network'})",
                options={"kw": "weights"},
            )
        out[str(name)] = os.fspath(path)
    return out


@dataclass(frozen=True)
class Runtime:
    """Where networks run; see the module notes.

    Attributes:
        device: see :func:`resolve_device`.
        weights: registry name → local file.
        batch_size: images per network call (a pair counts as two).
    """

    device: str = "auto"
    weights: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 32

    def __post_init__(self) -> None:
        from iqa.options import check_integer

        check_device(self.device, cuda=False)
        object.__setattr__(self, "batch_size", check_integer(None, "batch_size", self.batch_size, minimum=1))
        object.__setattr__(self, "weights", weights_mapping(dict(self.weights)))

    def weights_for(self, name: str) -> str | None:
        """The user's file for registry entry ``name``, or None (use the registry's)."""
        return self.weights.get(name)

    @property
    def pairs_per_batch(self) -> int:
        return max(1, self.batch_size // 2)
