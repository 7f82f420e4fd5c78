"""Writing output files safely: results, sidecars, heat maps, statistics.

Every file iqa writes goes through here, so that the same promises hold for all of them:

- an existing file is replaced only when the caller says so (``overwrite``), never one of
  the run's inputs, and never anything but a regular file (a FIFO, a device, a folder or a
  socket is refused before any work starts, without being opened: opening a FIFO blocks);
- a file is written beside its destination and renamed over it once complete, so that a
  crash, a full disk or a fatal error leaves the old file as it was;
- a failure becomes one :class:`~iqa.errors.OutputError` naming the file and the cause in
  words with the system's code: ``no space left on device (ENOSPC)``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from iqa.errors import OutputError

__all__ = ["InputFiles", "atomic_open", "check_output", "describe", "file_kind", "temp_path", "write_error"]

#: The causes users meet most, in words (``strerror`` is used for the others).
_WORDS = {
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (the file size limit was reached)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


def describe(exc: BaseException) -> str:
    """An OS error's cause in words with its code (``no space left on device (ENOSPC)``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        words = _WORDS.get(exc.errno) or (exc.strerror or str(exc)).lower()
        code = errno.errorcode.get(exc.errno)
        return f"{words} ({code})" if code else words
    return " ".join(str(exc).split()) or type(exc).__name__


def write_error(path: str | os.PathLike, exc: BaseException, what: str = "") -> OutputError:
    """The one-line error for a failed write of ``path``."""
    noun = f" the {what}" if what else ""
    err = OutputError(f"{os.fspath(path)}: cannot write{noun}: {describe(exc)}")
    if isinstance(exc, OSError):
        err.errno = exc.errno
    return err


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class InputFiles:
    """The files a run reads, to recognise an output that is one of them (through links,
    by device and inode); each is looked at once, and only if an output already exists."""

    def __init__(self, paths: Iterable[str | os.PathLike]) -> None:
        self._paths: Iterable[str | os.PathLike] | None = paths  # read on first use only
        self._ids: set[tuple[int, int]] = set()

    def __contains__(self, st: os.stat_result) -> bool:
        if self._paths is not None:
            for src in self._paths:
                with contextlib.suppress(OSError, ValueError):
                    s = os.stat(src)
                    self._ids.add((s.st_dev, s.st_ino))
            self._paths = None
        return (st.st_dev, st.st_ino) in self._ids


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    what: str = "output",
    inputs: Iterable[str | os.PathLike] | InputFiles = (),
    hint: str = "",
) -> bool:
    """Check, before any work starts, that ``path`` may be written; return whether it exists.

    Refused: a path whose folder does not exist; an existing path that is not a regular file
    (even with ``overwrite``: it is never opened, so a FIFO cannot block); an existing file
    without ``overwrite`` (``hint`` is added to that message); one of ``inputs`` (even with
    ``overwrite``).

    Raises:
        OutputError: naming ``path`` and the reason.
    """
    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"{p}: the folder {parent} does not exist; create it first")
    try:
        st = os.stat(p)  # follows a symbolic link: what matters is what would be written
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(f"{p}: cannot use as the {what}: {describe(exc)}") from None
    except ValueError:  # a NUL byte in the name
        raise OutputError(f"{os.fspath(path)!r}: not a usable file name for the {what}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{p}: is {file_kind(st.st_mode)}, not a regular file; name a file for the {what}")
    if not isinstance(inputs, InputFiles):
        inputs = InputFiles(inputs)
    if st in inputs:
        raise OutputError(f"{p}: is an input of this run; name another file for the {what}")
    if not overwrite:
        raise OutputError(f"{p}: already exists; pass {{overwrite}} to replace it{hint}",
                          options={"overwrite": ("overwrite", True)})
    return True


def temp_path(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """A hidden file beside ``path`` owned by this process: ``.NAME.TAG-PID``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{tag}-{os.getpid()}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, what: str = "", **kw: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; when the block ends without an error, flush it
    to disk and rename it over ``path`` (atomic on POSIX). On any error the temporary file is
    removed and ``path`` is left as it was; an ``OSError`` becomes an :class:`OutputError`.

    The destination is never opened, so writing "through" a FIFO or a device cannot happen
    (``os.replace`` would replace such a node: call :func:`check_output` first).
    """
    p = Path(path)
    tmp = temp_path(p)
    try:
        with open(tmp, mode, **kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        _unlink(tmp)
        if isinstance(exc, OutputError):
            raise
        raise write_error(p, exc, what) from None
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(p: Path) -> None:
    with contextlib.suppress(OSError):
        p.unlink()
