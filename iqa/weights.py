"""The registry of pretrained files: where each comes from, how it is verified, where it lives.

Every pretrained file iqa can use is listed in :data:`REGISTRY` with its official URL and
its SHA-256 digest. Where the publisher gives the full digest it is stored in full; where
only the hash prefix in the file name is published (torchvision's and pytorch-fid's
convention) the prefix is stored and checked the way ``torch.hub``'s ``check_hash`` does:
the file's SHA-256 must start with it. :attr:`WeightsFile.hash_is_prefix` says which.

Where files live:
    ``$IQA_CACHE_DIR/weights/`` if ``IQA_CACHE_DIR`` is set, else the platform's user cache
    directory (``$XDG_CACHE_HOME/iqa/weights`` or ``~/.cache/iqa/weights`` on Linux,
    ``~/Library/Caches/iqa/weights`` on macOS, ``%LOCALAPPDATA%\\iqa\\Cache\\weights`` on
    Windows). A file that torch already downloaded into its hub cache
    (``torch.hub.get_dir()/checkpoints``) is used in place when its digest matches.

Network rules:
    Nothing is downloaded at import time, nor by anything but :func:`get_path` (with
    ``download=True``) and :func:`download`. A download goes to a temporary file beside the
    target, is verified, and is renamed into place atomically, so an interrupted or corrupt
    download never leaves a file that looks valid. ``IQA_OFFLINE=1`` turns downloads off; a
    connection that cannot be made within a short timeout fails at once (no retry loop).
    Both give a one-line :class:`~iqa.errors.WeightsError` naming the URL and the exact path
    to put the file at.

Unpinned files: where the publisher gives no digest at all (Meta's DINOv2 checkpoints), the
entry's ``sha256`` is empty; the digest of the first file iqa downloads (or finds in its cache
or torch's hub cache) is recorded beside it (``FILENAME.sha256`` in iqa's cache) and every
later load is verified against that record. ``iqa weights list`` shows such files as
"unpinned". Every entry names the licence of the file it points to.

Loading uses ``torch.load(..., weights_only=True, map_location="cpu")``: a file is never
unpickled as arbitrary Python objects. A cached file whose digest does not match is refused,
never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from iqa.errors import WeightsError

__all__ = [
    "REGISTRY",
    "WeightsFile",
    "WeightsStatus",
    "cache_dir",
    "download",
    "file_sha256",
    "get_path",
    "hub_path",
    "load_state_dict",
    "load_strict",
    "offline",
    "read_torchscript_tensors",
    "recorded_sha256",
    "status",
    "target_path",
    "verify_file",
    "weights_dir",
]

#: Seconds to wait for a connection (and for each read) before a download fails.
CONNECT_TIMEOUT = 10.0

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained file.

    Attributes:
        name: the registry key, e.g. ``"alexnet"``.
        filename: the file's official name (also its name in the cache).
        url: the official download address.
        sha256: the full SHA-256 hex digest, or the published prefix of it.
        size_mib: the approximate size in MiB as published (information only), or None.
        description: what the file is and which metric uses it.
        override_hint: how to use one's own copy instead (shown in error messages).
    """

    name: str
    filename: str
    url: str
    sha256: str
    size_mib: float | None
    description: str
    override_hint: str = "or pass your copy with {weights}"
    licence: str = ""

    @property
    def pinned(self) -> bool:
        """False when no digest is published: the first file's digest is recorded and kept."""
        return bool(self.sha256)

    @property
    def hash_is_prefix(self) -> bool:
        """True when only a prefix of the digest is published (checked as a prefix)."""
        return self.pinned and len(self.sha256) < 64

    def matches(self, digest: str) -> bool:
        """Whether a full hex digest agrees with the registered digest or prefix (for an
        unpinned file: with the digest recorded at its first download, if any)."""
        expected = self.sha256 if self.pinned else recorded_sha256(self.name)
        return expected is None or digest.lower().startswith(expected.lower())


_TV_HINT = "or pass a torchvision-format state dict with {weights}"
# torchvision's pretrained files are distributed under its BSD-3-Clause licence (ImageNet's
# terms of use may also apply to models trained on it).
_TV_LICENCE = "BSD-3-Clause (torchvision)"

#: Every pretrained file iqa can use. Digests: the full SHA-256 where it is published,
#: otherwise the prefix in the official file name (see WeightsFile.hash_is_prefix).
REGISTRY: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            # Full digest published by torchvision (AlexNet_Weights.IMAGENET1K_V1).
            sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            size_mib=233.087,
            description="torchvision AlexNet, ImageNet (IMAGENET1K_V1): the LPIPS-alex backbone",
            override_hint=_TV_HINT,
            licence=_TV_LICENCE,
        ),
        WeightsFile(
            name="vgg16",
            filename="vgg16-397923af.pth",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            sha256="397923af",  # prefix from the file name, as torch.hub checks it
            size_mib=527.796,
            description="torchvision VGG16, ImageNet (IMAGENET1K_V1): the LPIPS-vgg backbone",
            override_hint=_TV_HINT,
            licence=_TV_LICENCE,
        ),
        WeightsFile(
            name="squeezenet1_1",
            filename="squeezenet1_1-b8a52dc0.pth",
            url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
            sha256="b8a52dc0",  # prefix from the file name, as torch.hub checks it
            size_mib=4.729,
            description="torchvision SqueezeNet 1.1, ImageNet (IMAGENET1K_V1): the LPIPS-squeeze backbone",
            override_hint=_TV_HINT,
            licence=_TV_LICENCE,
        ),
        WeightsFile(
            name="inception-fid",
            filename="pt_inception-2015-12-05-6726825d.pth",
            url=(
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth"
            ),
            sha256="6726825d",  # prefix from the file name, as pytorch-fid checks it
            size_mib=None,
            description="TensorFlow's 2015-12-05 Inception v3 ported by pytorch-fid: the FID/KID network",
            override_hint="or pass your copy (pytorch-fid's layout) with {weights}",
            licence="Apache-2.0 (pytorch-fid, which ports TensorFlow's Apache-2.0 Inception graph)",
        ),
        *(
            WeightsFile(
                name=f"dinov2-{arch}",
                filename=f"dinov2_{arch}_pretrain.pth",
                url=f"https://dl.fbaipublicfiles.com/dinov2/dinov2_{arch}/dinov2_{arch}_pretrain.pth",
                sha256="",  # Meta publishes no digest: recorded at the first download (unpinned)
                size_mib=size,
                description=f"Meta's DINOv2 {label} (LVD-142M): the dinov2-{arch} feature extractor",
                override_hint="or pass your copy (Meta's layout) with {weights}",
                # The facebookresearch/dinov2 README: "DINOv2 code and model weights are
                # released under the Apache License 2.0"; its LICENSE file is Apache 2.0.
                licence="Apache-2.0 (facebookresearch/dinov2: code and model weights)",
            )
            for arch, label, size in (
                ("vits14", "ViT-S/14", 84.2),
                ("vitb14", "ViT-B/14", 330.3),
                ("vitl14", "ViT-L/14", 1160.0),
                ("vitg14", "ViT-g/14", 4400.0),
            )
        ),
        *(
            WeightsFile(
                name=f"clip-{arch}",
                filename=filename,
                # The URLs of openai/CLIP's clip/clip.py (_MODELS); the folder in each URL is the
                # file's full SHA-256, which clip._download checks.
                url=f"https://openaipublic.azureedge.net/clip/models/{digest}/{filename}",
                sha256=digest,
                size_mib=None,
                description=f"OpenAI's CLIP {label} (TorchScript, float16): the clip-{arch} feature extractor"
                + (", CMMD's" if arch == "vitl14-336" else ""),
                override_hint="or pass your copy (OpenAI's .pt file, or its state dict) with {weights}",
                # openai/CLIP's LICENSE file: MIT License, Copyright (c) 2021 OpenAI; the weights
                # are published by that repository's clip.py.
                licence="MIT (openai/CLIP)",
            )
            for arch, label, filename, digest in (
                ("vitb32", "ViT-B/32", "ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
                ("vitl14", "ViT-L/14", "ViT-L-14.pt", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"),
                ("vitl14-336", "ViT-L/14@336px", "ViT-L-14-336px.pt",
                 "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"),
            )
        ),
    )
}


#: How the override hints name the option: ``weights='PATH'`` in Python, ``--weights PATH``
#: on the command line.
_HINT_OPTIONS = {"weights": ("weights", "PATH")}


# --------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------


def offline() -> bool:
    """True when ``IQA_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("IQA_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """iqa's cache directory: ``IQA_CACHE_DIR``, else the platform's user cache directory.

    Linux and other POSIX systems: ``$XDG_CACHE_HOME/iqa`` (``~/.cache/iqa`` when unset or
    not absolute); macOS: ``~/Library/Caches/iqa``; Windows: ``%LOCALAPPDATA%\\iqa\\Cache``.
    The directory is not created here.
    """
    env = os.environ.get("IQA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else home / "AppData" / "Local") / "iqa" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "iqa"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG base directory specification says relative paths are invalid and ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / "iqa"


def weights_dir() -> Path:
    """Where downloaded weights are kept: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def _entry(name: str) -> WeightsFile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(
            f"unknown weights {name!r}: known names are {', '.join(sorted(REGISTRY))}"
        ) from None


def target_path(name: str) -> Path:
    """The path at which iqa keeps (or expects) the file ``name``."""
    return weights_dir() / _entry(name).filename


def hub_path(name: str) -> Path:
    """Where torch's hub cache would hold the file ``name`` (it may not exist)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / _entry(name).filename


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def _record_path(name: str) -> Path:
    return weights_dir() / f"{_entry(name).filename}.sha256"


def recorded_sha256(name: str) -> str | None:
    """The digest recorded for the unpinned file ``name`` at its first download, or None."""
    try:
        text = _record_path(name).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def _record(name: str, digest: str) -> None:
    """Record the digest of an unpinned file the first time one is found (trust on first use)."""
    entry = _entry(name)
    if entry.pinned or recorded_sha256(name) is not None:
        return
    path = _record_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(f"{digest}  {entry.filename}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot record the digest of {name} ({exc.strerror or exc}); set "
                           "IQA_CACHE_DIR to a writable folder") from None

_digest_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()
#: Files changed within this many nanoseconds are hashed every time (see file_sha256).
_SETTLE_NS = 2_000_000_000
#: How many files the digest record remembers (the most recently verified).
_RECORD_LIMIT = 64


def _digests_path() -> Path:
    return weights_dir() / "digests.json"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _read_digests(weights_st: os.stat_result) -> dict[str, list]:
    """The recorded digests, when they can be trusted for a file with ``weights_st``: the record,
    its folder and the weights file are this user's and writable by no one else (a record in
    a shared, writable cache could vouch for a replaced file), on a system whose ``ctime``
    is the status-change time (POSIX; Windows' is the creation time)."""
    import json

    if sys.platform == "win32" or not _private(weights_st):
        return {}
    try:
        path = _digests_path()
        if not (_private(path.stat()) and _private(path.parent.stat())):
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError):  # RuntimeError: no home directory
        return {}
    return data if isinstance(data, dict) else {}


def _write_digest(path: str, key: list, digest: str) -> None:
    """Remember ``digest`` for ``path`` in iqa's cache (best effort: a read-only or full cache
    only means the file is hashed again next time)."""
    import json

    try:
        target = _digests_path()
        records = {}
        if target.exists() and _private(target.stat()):
            records = {p: r for p, r in json.loads(target.read_text(encoding="utf-8")).items() if p != path}
    except (OSError, ValueError, RuntimeError, AttributeError):
        return
    records[path] = [*key, digest]
    kept = dict(list(records.items())[-_RECORD_LIMIT:])
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digests-", suffix=".part", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(kept, fh)
        os.replace(tmp, target)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file.

    A file is hashed once, not at every run: its digest is remembered in the process and in
    iqa's cache (``digests.json`` beside the weights), keyed by the file's real path, device,
    inode, size, modification time and status-change time (``ctime``, which no program can set
    back: any write, rename over it or ``touch`` changes it), as git's index does. The record
    is used only where it cannot vouch for someone else's file: the weights file, the record
    and its folder must be the user's own and writable by no one else, on POSIX systems
    (Windows' ``ctime`` is the creation time); elsewhere files are hashed at every run. Files
    changed in the last two seconds are hashed every time (a change within a coarse clock tick
    would otherwise go unseen).

    Raises:
        WeightsError: the file cannot be read.
    """
    p = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror})") from None
    key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    with _memo_lock:
        if (p, *key) in _digest_memo:
            return _digest_memo[(p, *key)]
    settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLE_NS
    record = _read_digests(st).get(p) if settled else None
    if isinstance(record, list) and record[:-1] == key and isinstance(record[-1], str) and len(record[-1]) == 64:
        digest = record[-1]
    else:
        h = hashlib.sha256()
        try:
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(_CHUNK), b""):
                    h.update(block)
        except OSError as exc:
            raise WeightsError(f"{path}: cannot read ({exc.strerror})") from None
        digest = h.hexdigest()
        if settled and sys.platform != "win32" and _private(st):
            _write_digest(p, key, digest)
    if settled:
        with _memo_lock:
            _digest_memo[(p, *key)] = digest
    return digest


def _mismatch(entry: WeightsFile, path: Path, digest: str) -> str:
    if not entry.pinned:
        return (
            f"{path}: SHA-256 {digest} differs from {recorded_sha256(entry.name)} recorded when "
            f"{entry.name} was first downloaded ({_record_path(entry.name)}); the file changed: "
            f"delete both and run 'iqa weights download {entry.name}'"
        )
    kind = "SHA-256 prefix" if entry.hash_is_prefix else "SHA-256"
    shown = digest[: len(entry.sha256)] if entry.hash_is_prefix else digest
    return (
        f"{path}: {kind} {shown} does not match {entry.sha256} registered for {entry.name} "
        f"({entry.url}); the file is corrupt or not the official one: delete it and run "
        f"'iqa weights download {entry.name}'"
    )


def verify_file(name: str, path: str | os.PathLike) -> Path:
    """Check that ``path`` holds the registered file ``name``.

    Raises:
        WeightsError: the file is missing, unreadable or its digest does not match.
    """
    entry = _entry(name)
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: no such file")
    digest = file_sha256(p)
    if not entry.matches(digest):
        raise WeightsError(_mismatch(entry, p, digest))
    _record(name, digest)
    return p


@dataclass(frozen=True)
class WeightsStatus:
    """Where a registered file is, as found by :func:`status`.

    Attributes:
        name: the registry key.
        state: ``"missing"``, ``"present"`` (found, not hashed), ``"ok"`` (digest matches)
            or ``"corrupt"`` (digest does not match).
        path: the file found, or the path at which it is expected.
        source: ``"cache"`` (iqa's cache), ``"torch-hub"`` (torch's hub cache) or ``""``.
    """

    name: str
    state: str
    path: Path
    source: str


def status(name: str, *, verify: bool = False) -> WeightsStatus:
    """Find the file ``name`` in iqa's cache, then in torch's hub cache.

    Args:
        name: a registry key.
        verify: hash the file found (otherwise its state is ``"present"``).
    """
    target = target_path(name)
    candidates = [(target, "cache"), (hub_path(name), "torch-hub")]
    # The first file found is the one reported, hashed or not, so that listing and verifying
    # speak of the same file (a corrupt copy in torch's hub is "corrupt", not "missing").
    for path, source in candidates:
        if path.is_file():
            if not verify:
                return WeightsStatus(name, "present", path, source)
            ok = _entry(name).matches(file_sha256(path))
            return WeightsStatus(name, "ok" if ok else "corrupt", path, source)
    return WeightsStatus(name, "missing", target, "")


# --------------------------------------------------------------------------------------
# Acquisition
# --------------------------------------------------------------------------------------


def get_path(name: str, *, path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The verified local path of the pretrained file ``name``.

    Order: the user's ``path`` (used as-is: it must exist; it is not hashed, since it may be
    fine-tuned), then iqa's cache, then torch's hub cache, then a download into iqa's cache.

    Args:
        name: a registry key (see :data:`REGISTRY`).
        path: the user's own file, which overrides the registry.
        download: whether a missing file may be downloaded.

    Returns:
        The path of a file whose digest matches the registry (or the user's ``path``).

    Raises:
        WeightsError: unknown name; the user's file is missing; the cached file is corrupt;
            the file is missing and downloads are off (``IQA_OFFLINE=1`` or
            ``download=False``) or fail. The message names the URL and the target path.

    Example:
        >>> get_path("alexnet")  # doctest: +SKIP
        PosixPath('/home/me/.cache/iqa/weights/alexnet-owt-7be5be79.pth')
    """
    entry = _entry(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            what = "not a regular file" if p.exists() else "no such file"
            raise WeightsError(f"{p}: {what} (given as the weights for {entry.name}); check the path")
        return p
    target = target_path(name)
    if target.is_file():
        return verify_file(name, target)
    hub = hub_path(name)
    if hub.is_file() and entry.matches(file_sha256(hub)):
        _record(name, file_sha256(hub))
        return hub
    if not download or offline():
        why = "downloads are off (IQA_OFFLINE=1)" if offline() else "downloading was not allowed"
        raise WeightsError(
            f"{entry.name}: weights file not found and {why}: download {entry.url} and save "
            f"it as {target}, {entry.override_hint}",
            options=_HINT_OPTIONS,
        )
    return _download(entry, target, progress=None)


def download(
    name: str,
    *,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download the file ``name`` into iqa's cache (explicitly, even if torch's hub has it).

    Args:
        name: a registry key.
        force: download again even when the cached file verifies; a cached file that does
            not verify is always replaced.
        progress: called as ``progress(bytes_so_far, total_or_None)`` while downloading.

    Returns:
        The verified path in iqa's cache.

    Raises:
        WeightsError: offline, connection failure, incomplete transfer or digest mismatch.
    """
    entry = _entry(name)
    target = target_path(name)
    if target.is_file() and not force and entry.matches(file_sha256(target)):
        return target
    if offline():
        raise WeightsError(
            f"{entry.name}: downloads are off (IQA_OFFLINE=1): download {entry.url} and save "
            f"it as {target}"
        )
    return _download(entry, target, progress=progress)


def _download(
    entry: WeightsFile, target: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    import urllib.error
    import urllib.request

    fix = f"download {entry.url} by other means and save it as {target}, {entry.override_hint}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{target.parent}: cannot create the cache folder ({exc.strerror}); "
                           "set IQA_CACHE_DIR to a writable folder") from None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{entry.filename}.", suffix=".part")
    except OSError as exc:
        raise WeightsError(
            f"{target.parent}: cannot write to the cache folder ({exc.strerror or exc}); set "
            f"IQA_CACHE_DIR to a writable folder {entry.override_hint}",
            options=_HINT_OPTIONS,
        ) from None
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        request = urllib.request.Request(entry.url, headers={"User-Agent": "iqa"})
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT) as resp:
                total_header = resp.headers.get("Content-Length")
                total = int(total_header) if total_header and total_header.isdigit() else None
                done = 0
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsError(f"{entry.name}: cannot download {entry.url} ({reason}); {fix}",
                               options=_HINT_OPTIONS) from None
        except Exception as exc:  # http.client.IncompleteRead and other protocol errors
            raise WeightsError(
                f"{entry.name}: download of {entry.url} failed ({type(exc).__name__}); {fix}",
                options=_HINT_OPTIONS,
            ) from None
        if total is not None and done != total:
            raise WeightsError(
                f"{entry.name}: download of {entry.url} stopped after {done} of {total} bytes; {fix}",
                options=_HINT_OPTIONS,
            )
        digest = h.hexdigest()
        if not entry.matches(digest):
            expected = entry.sha256 or recorded_sha256(entry.name)
            raise WeightsError(
                f"{entry.name}: the file downloaded from {entry.url} has SHA-256 {digest}, "
                f"expected {expected}{' (prefix)' if entry.hash_is_prefix else ''}"
                f"{'' if entry.pinned else ' (recorded at the first download)'}; it was discarded"
            )
        os.replace(tmp, target)
        _record(entry.name, digest)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return target


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_state_dict(name: str, *, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load the verified file ``name`` (or the user's ``path``) as a state dict on the CPU.

    Uses ``torch.load(..., weights_only=True, map_location="cpu")``.

    Raises:
        WeightsError: see :func:`get_path`; the file is not a PyTorch file holding a dict
            of tensors.
    """
    p = get_path(name, path=path)
    import pickle

    import torch

    saved = "expected a file saved with torch.save(model.state_dict(), path)"
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head[:2] != b"PK" and head[:1] != b"\x80":  # a zip (torch >= 1.6) or a legacy pickle
                raise WeightsError(f"{p}: not a PyTorch weights file (it starts with {head!r}); {saved}")
            if head[:2] == b"PK" and _is_torchscript(p):
                # torch.load would hand a TorchScript archive to torch.jit.load, which runs its code.
                return read_torchscript_tensors(p)
            state = torch.load(fh, weights_only=True, map_location="cpu")
    except WeightsError:
        raise
    except pickle.UnpicklingError:
        # torch's own text suggests weights_only=False, which would run the file's code.
        raise WeightsError(
            f"{p}: holds Python objects besides tensors, which iqa never unpickles (they could run "
            "code); if you trust the file, load it yourself and save only the tensors with "
            "torch.save(model.state_dict(), path)"
        ) from None
    except PermissionError:
        raise WeightsError(f"{p}: permission denied (cannot read the weights file: check its permissions)") from None
    except OSError as exc:
        import zipfile

        if zipfile.is_zipfile(p) is False and _head(p, 2) == b"PK":  # torch: EINVAL on a cut zip
            raise WeightsError(f"{p}: cannot be loaded as a PyTorch state dict (a truncated or corrupt "
                               f"archive); {saved}") from None
        raise WeightsError(f"{p}: cannot read the weights file ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # torch raises several types for a file it cannot read
        names = _zip_names(p)
        if any(n.endswith("/constants.pkl") for n in names) and not any("/code/" in n for n in names):
            raise WeightsError(f"{p}: a TorchScript archive without its code/ folder (an incomplete torch.jit.save "
                               "file); for CLIP give OpenAI's .pt file as downloaded, or a state dict saved with "
                               "torch.save(model.state_dict(), path)") from None
        text = str(exc)
        why = "a truncated or corrupt archive" if "PytorchStreamReader" in text or "zip" in text.lower() else type(exc).__name__
        raise WeightsError(f"{p}: cannot be loaded as a PyTorch state dict ({why}); {saved}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"{p}: expected a state dict (a dict of tensors), got {type(state).__name__}; save "
            "it with torch.save(model.state_dict(), path)"
        )
    return state


def load_strict(model: Any, state: dict[str, Any], label: str, network: str) -> Any:
    """``model.load_state_dict(state, strict=True)`` in eval mode, or a one-line
    :class:`WeightsError` naming the file (``label``) and the ``network`` it does not fit."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise WeightsError(f"{label}: does not load into a {network} ({' '.join(first[:2])[:300]})") from None
    return model.eval()


# --------------------------------------------------------------------------------------
# TorchScript archives, read without running them
# --------------------------------------------------------------------------------------

#: The storage classes a TorchScript ``data.pkl`` names, and their element types.
_STORAGE_DTYPES = {
    "HalfStorage": "float16", "FloatStorage": "float32", "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}


def _is_torchscript(path: Path) -> bool:
    """Whether a zip file is a TorchScript archive (``torch.jit.save``): it holds code/ and
    constants.pkl beside data.pkl, which a ``torch.save`` file does not."""
    names = _zip_names(path)  # none when unreadable: torch.load reports it
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file (b"" when unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _zip_names(path: Path) -> list[str]:
    """The entry names of a zip file ([] when it is not a readable one)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


class _ScriptObject:
    """What a ``__torch__.*`` class in a TorchScript ``data.pkl`` becomes: its attributes only.

    The archive's classes are TorchScript code (in ``code/``), which is never run: the
    unpickler creates this inert object instead and ``BUILD`` stores the attribute dict.
    """

    def __init__(self, *args: Any) -> None:  # NEWOBJ passes no arguments; REDUCE may
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.attributes = dict(state) if isinstance(state, dict) else {}


def _plain_list(*args: Any) -> Any:
    # torch.jit._pickle's build_intlist/build_tensorlist/... and restore_type_tag: identity.
    return args[0] if args else []


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters and buffers of a TorchScript archive as a flat state dict, without
    executing anything in it.

    The archive (``torch.jit.save``; OpenAI's CLIP ``.pt`` files) is a zip whose ``data.pkl``
    pickles the module tree: ``__torch__.*`` module objects whose attribute dicts hold child
    modules and tensors, each tensor rebuilt by ``torch._utils._rebuild_tensor_v2`` from a
    storage in ``data/N``. The unpickler here resolves only the storage classes,
    ``_rebuild_tensor_v2``, ``collections.OrderedDict`` and TorchScript's list builders;
    every ``__torch__.*`` class becomes an inert attribute holder, so the archive's code is
    never compiled or run. Tensors keep their stored dtype (OpenAI's are float16).

    Returns:
        ``{"visual.conv1.weight": tensor, ...}``: dotted attribute paths, as ``state_dict()``.

    A crafted archive cannot make it allocate more than the archive holds: the entries read
    (``data.pkl``, ``data/N``) must be stored uncompressed (as ``torch.jit.save`` writes them)
    and no larger than the file, each storage is read once, and a tensor must lie inside its
    storage without repeating elements (no overlapping or zero strides).

    Raises:
        WeightsError: not a TorchScript archive, a missing storage, a compressed or oversized
            entry, a tensor outside its storage, or a pickle that names anything else.
    """
    import collections
    import io
    import math
    import operator
    import pickle
    import zipfile

    import torch

    p = Path(path)

    def rebuild(flat: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> Any:
        if not isinstance(flat, torch.Tensor):
            raise WeightsError(f"{p}: a tensor in data.pkl is not built from a storage")
        try:
            size, stride, offset = tuple(map(operator.index, size)), tuple(map(operator.index, stride)), \
                operator.index(offset)
        except TypeError:
            raise WeightsError(f"{p}: a tensor in data.pkl has a malformed size or stride") from None
        if len(size) != len(stride) or min((*size, *stride, offset), default=0) < 0:
            raise WeightsError(f"{p}: a tensor in data.pkl has a malformed size {size} or stride {stride}")
        numel = math.prod(size)
        if numel:
            # The last element must lie inside the storage, and no element may repeat (an
            # overlapping or zero stride would make the copy below larger than the archive).
            extent = offset + sum((n - 1) * st for n, st in zip(size, stride))
            overlaps, reach = False, 1
            for st, n in sorted((st, n) for n, st in zip(size, stride) if n > 1):
                overlaps, reach = overlaps or st < reach, reach + (n - 1) * st
            if extent >= flat.numel() or numel > flat.numel() or overlaps:
                raise WeightsError(f"{p}: a tensor of size {size} and stride {stride} at offset {offset} does not "
                                   f"fit its storage of {flat.numel()} elements (a damaged or crafted archive)")
        return flat.as_strided(size, stride, offset).clone()

    try:
        z = zipfile.ZipFile(p)
        total = p.stat().st_size
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{p}: not a readable TorchScript archive ({exc})") from None

    def read(name: str) -> bytes:
        info = z.getinfo(name)  # KeyError when missing
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > total:
            raise WeightsError(f"{p}: its entry {name} is compressed or larger than the archive ({info.file_size} "
                               "bytes); torch.jit.save stores them uncompressed (a damaged or crafted archive)")
        return z.read(name)

    storages: dict[str, Any] = {}  # each data/N read once, however many tensors view it
    with z:
        pkls = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise WeightsError(f"{p}: not a TorchScript archive (expected one <name>/data.pkl, found {len(pkls)})")
        root = pkls[0].rsplit("/", 1)[0]

        class _Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return rebuild
                if module == "collections" and name == "OrderedDict":
                    return collections.OrderedDict
                if module == "torch" and name in _STORAGE_DTYPES:
                    return getattr(torch, _STORAGE_DTYPES[name])
                if module == "torch.jit._pickle" and (name.startswith("build_") or name == "restore_type_tag"):
                    return _plain_list
                if module == "__torch__" or module.startswith("__torch__."):
                    return _ScriptObject
                raise WeightsError(f"{p}: its data.pkl names {module}.{name}, which iqa does not load (only "
                                   "tensors and module attributes are read from a TorchScript archive)")

            def persistent_load(self, pid: Any) -> Any:
                if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
                    raise WeightsError(f"{p}: unexpected persistent id {str(pid)[:80]} in data.pkl")
                dtype, key = pid[1], str(pid[2])
                if not isinstance(dtype, torch.dtype):
                    raise WeightsError(f"{p}: a storage of unknown type {dtype!r} in data.pkl")
                if key not in storages:
                    try:
                        data = read(f"{root}/data/{key}")
                    except KeyError:
                        raise WeightsError(f"{p}: storage data/{key} is missing from the archive") from None
                    itemsize = torch.empty(0, dtype=dtype).element_size()
                    data = bytearray(data[: len(data) - len(data) % itemsize])
                    storages[key] = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
                elif storages[key].dtype != dtype:
                    raise WeightsError(f"{p}: storage data/{key} is named with two element types in data.pkl")
                return storages[key]

        try:
            top = _Unpickler(io.BytesIO(read(pkls[0]))).load()
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(f"{p}: cannot read the TorchScript archive's data.pkl ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    out: dict[str, Any] = {}
    seen: set[int] = set()

    def walk(obj: Any, prefix: str) -> None:
        if id(obj) in seen:
            raise WeightsError(f"{p}: a module appears twice in the module tree of data.pkl (a damaged or crafted archive)")
        seen.add(id(obj))
        for k, v in obj.attributes.items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v
            elif isinstance(v, _ScriptObject):
                walk(v, f"{prefix}{k}.")

    if not isinstance(top, _ScriptObject):
        raise WeightsError(f"{p}: the TorchScript archive's data.pkl holds no module")
    walk(top, "")
    return out


# --------------------------------------------------------------------------------------
# Recognising a file given to the wrong network
# --------------------------------------------------------------------------------------

#: What each registered file is for: (text, option placeholders, metric naming them).
_USED_FOR: dict[str, tuple[str, str, dict[str, Any], str | None]] = {
    "alexnet": ("torchvision AlexNet", "for LPIPS use {use}", {"use": ("net", "alex")}, "lpips"),
    "vgg16": ("torchvision VGG16", "for LPIPS use {use}; DISTS takes it too", {"use": ("net", "vgg")}, "lpips"),
    "squeezenet1_1": ("torchvision SqueezeNet 1.1", "for LPIPS use {use}", {"use": ("net", "squeeze")}, "lpips"),
    "inception-fid": ("FID Inception (pytorch-fid)", "it is for FID and KID", {}, None),
}

_signature_memo: dict[str, list[dict[str, tuple[int, ...]]]] = {}


def _signatures() -> dict[str, list[dict[str, tuple[int, ...]]]]:
    """Parameter names and shapes of every registered network (built on the meta device: no
    memory, no weights), in the layouts a state dict is saved in."""
    if _signature_memo:
        return _signature_memo
    import torch
    import torchvision.models as tvm

    from iqa.features.inception import FIDInceptionV3

    with torch.device("meta"):
        models = {
            "alexnet": tvm.alexnet(weights=None),
            "vgg16": tvm.vgg16(weights=None),
            "squeezenet1_1": tvm.squeezenet1_1(weights=None),
            "inception-fid": FIDInceptionV3(),
        }
    for name, model in models.items():
        full = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        variants = [full]
        if hasattr(model, "features") and name != "inception-fid":
            variants.append({k: tuple(v.shape) for k, v in model.features.state_dict().items()})
        _signature_memo[name] = variants
    return _signature_memo


def identify(state: dict[str, Any]) -> str | None:
    """The registry name of the network whose parameters ``state`` holds (at least 90% of
    its names and shapes in common with one layout of that network), or None."""
    got = {(k, tuple(getattr(v, "shape", ()))) for k, v in state.items()}
    best, best_score = None, 0.0
    for name, variants in _signatures().items():
        for sig in variants:
            common = len(got & set(sig.items()))
            score = common / max(len(got), len(sig), 1)
            if score > best_score:
                best, best_score = name, score
    return best if best_score >= 0.9 else None


def _shape(s: tuple[int, ...]) -> str:
    return "×".join(map(str, s)) or "scalar"


def mismatch_error(path: str | os.PathLike, state: dict[str, Any], expected: dict[str, Any], name: str,
                   network: str, ignore: tuple[str, ...] = ()) -> WeightsError:
    """A short :class:`WeightsError` for a state dict that does not fit ``network`` (the
    registry entry ``name``): what is missing, unexpected or of another shape, with one
    example each, and which known network the file belongs to when it is another one.
    Parameters whose names start with one of ``ignore`` may be in the file unused."""
    want = {k: tuple(getattr(v, "shape", ())) for k, v in expected.items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want and not k.startswith(ignore or ("\0",))]
    shaped = [k for k in want if k in got and want[k] != got[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(want)} parameters missing (e.g. {missing[0][:60]!r})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0][:60]!r})")
    if shaped:
        k = shaped[0]
        parts.append(f"{len(shaped)} of another shape (e.g. {k[:60]!r}: {_shape(got[k])}, expected {_shape(want[k])})")
    detail = "; ".join(parts) or "the parameters do not load"
    text = f"{os.fspath(path)}: does not fit {network}: {detail}"
    other = identify(state)
    if other is not None and other != name:
        label, use, options, metric = _USED_FOR[other]
        text += f". It looks like a {label} file ({other}): {use}"
        return WeightsError(text, options=options, metric=metric)
    return WeightsError(text + f"; expected the {REGISTRY[name].filename} layout")
