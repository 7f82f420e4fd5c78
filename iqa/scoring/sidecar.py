"""The sidecar ``<output>.meta.json``: a run's settings, its status, and who is running it.

Status: ``running`` while a process writes the output (``owner`` names it: PID, host, and
the process's start time so that a reused PID is not taken for it), then ``done``,
``failed`` (with ``error``) or ``interrupted``. A sidecar left ``running`` by a process that
no longer exists on this host reads as ``interrupted``: :func:`recover` says so in the file
and removes that process's temporary files (and only then: a live run's files are its own).
A run that was replacing an output (``--overwrite``) keeps the earlier sidecar under
``previous``; recovering it puts that one back, since the earlier output was never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from iqa.errors import OutputError
from iqa.outfile import describe

__all__ = ["TEMP_TAGS", "live_here", "owner", "owner_state", "read", "recover"]

#: The kinds of temporary files a run makes beside its output and sidecar (``.NAME.TAG-PID``).
TEMP_TAGS = ("tmp", "new", "probe")

#: Outputs this process is writing now (a second run on one of them from another thread of
#: this process is refused like one from another process).
live_here: set[str] = set()


def _start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks after boot, from ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
        return int(text[text.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict[str, Any]:
    """This process, as a sidecar records it."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start_ticks": _start_ticks(pid),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def owner_state(doc: dict[str, Any], output: Path) -> str:
    """``"live"``, ``"dead"`` or ``"unknown"`` (another host) for a ``running`` sidecar."""
    who = doc.get("owner")
    if not isinstance(who, dict) or not isinstance(who.get("pid"), int):
        return "dead"  # written before owners were recorded: nothing can be running it
    if who.get("host") != socket.gethostname():
        return "unknown"
    pid = who["pid"]
    if pid == os.getpid():
        return "live" if os.fspath(output.resolve()) in live_here else "dead"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, owned by another user
    ticks = who.get("start_ticks")
    now = _start_ticks(pid)
    if ticks is not None and now is not None and now != ticks:
        return "dead"  # the PID was reused by another process
    return "live"


def read(path: Path) -> dict[str, Any] | None:
    """The sidecar's content; None when there is none; an error when it is not a sidecar."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable sidecar ({describe(exc)})") from None
    if not isinstance(doc, dict) or "columns" not in doc:
        raise OutputError(f"{path}: is not the sidecar of an iqa score run")
    return doc


def busy_error(output: Path, doc: dict[str, Any], state: str) -> OutputError:
    who = doc.get("owner") or {}
    run = f"an iqa run (PID {who.get('pid')} on {who.get('host')}, started {who.get('started')})"
    if state == "live":
        return OutputError(f"{output}: {run} is writing this output; wait for it to end, or choose another output")
    return OutputError(
        f"{output}: {run} is writing this output, and from this host it cannot be told whether it still "
        f"runs; if it has ended, set \"status\" to \"interrupted\" in {output.name}.meta.json"
    )


def _temp_files(path: Path, pid: int) -> list[Path]:
    return [path.with_name(f".{path.name}.{tag}-{pid}") for tag in TEMP_TAGS]


def recover(output: Path, meta: Path, doc: dict[str, Any]) -> dict[str, Any] | None:
    """A ``running`` sidecar whose owner is dead: remove that run's temporary files and write
    what is true now. Returns the sidecar as it then stands (None: there is none)."""
    pid = (doc.get("owner") or {}).get("pid")
    if isinstance(pid, int):
        for tmp in (*_temp_files(output, pid), *_temp_files(meta, pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    from iqa.scoring.rowfile import write_json_atomic

    if doc.get("replacing"):
        previous = doc.get("previous")
        if previous is None:
            meta.unlink(missing_ok=True)
        else:
            write_json_atomic(meta, previous, "sidecar")
        return previous
    fixed = {k: v for k, v in doc.items() if k != "owner"}
    fixed["status"] = "interrupted"
    write_json_atomic(meta, fixed, "sidecar")
    return fixed
