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


def weights_mapping(weights: Any, needed: tuple[str, ...] = ()) -> dict[str, str]:
    """Normalise a ``weights`` argument to ``{registry name: path}``.

    A single path is allowed when exactly one file is ``needed``.

    Raises:
        OptionError: a single path where several (or no) networks run, or an unknown name.
    """
    if weights is None:
        return {}
    if isinstance(weights, (str, os.PathLike)):
        if len(needed) != 1:
            raise OptionError(
                f"a single weights file is ambiguous here ({len(needed)} networks: "
                f"{', '.join(needed) or 'none'}); name it as {{kw}}",
                options={"kw": ("weights", "NAME=FILE")},
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
