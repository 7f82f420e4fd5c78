"""Hostile outputs: FIFOs and devices, full and read-only disks, the file size limit,
permissions, kills, concurrent runs, vanished inputs, line breaks in file names.

Everything is made here: a small tmpfs for ENOSPC and EROFS (where this machine lets root
mount one), RLIMIT_FSIZE in a child process for EFBIG, a child dropped to an unprivileged
user for EACCES (root ignores mode bits). Each case that the machine does not allow is
skipped with its reason.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_png

from iqa.cli import main
from iqa.errors import OutputError
from iqa.scoring import iter_scores, meta_path, score_folders
from iqa.scoring.rowfile import columns_for, read_rows

COLS = columns_for(["psnr"])


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def iqa_exe() -> str:
    return shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))


def error_line(result_stderr: str) -> str:
    """The one ``iqa: error:`` line, and no traceback."""
    lines = [ln for ln in result_stderr.splitlines() if ln.startswith("iqa: error: ")]
    assert len(lines) == 1 and "Traceback" not in result_stderr, result_stderr
    return lines[0]


def pairs_of(root: Path, names: list[str], size: int = 16, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    ref, dist = root / "ref", root / "dist"
    for n in names:
        for side in (ref, dist):
            (side / n).parent.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        write_png(ref / n, a)
        write_png(dist / n, np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8))
    return ref, dist


LONG = [f"{i:02d}_" + "x" * 120 + ".png" for i in range(40)]  # rows of ~270 bytes


@pytest.fixture(scope="module")
def slow_pairs(tmp_path_factory):
    """40 pairs of 256×256 RGB: about a second of ``-m psnr,ssim --workers 0``, so that a
    signal from outside lands mid-run."""
    return pairs_of(tmp_path_factory.mktemp("slow"), [f"{i:02d}.png" for i in range(40)], size=256, seed=3)


def start(args: list[str], log: Path, **kw) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen([iqa_exe(), *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, **kw)


def wait_rows(proc: subprocess.Popen, path_of, rows: int, log: Path, timeout: float = 60) -> None:
    """Wait until the file ``path_of()`` holds ``rows`` complete rows (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while True:
        p = path_of()
        if p is not None and p.exists() and len(read_rows(p, "csv", columns_for(["psnr", "ssim"]))) >= rows:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it was caught: {log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {rows} rows after {timeout} s: {log.read_text()}")
        time.sleep(0.002)


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "64k"):
    """A small tmpfs at ``where`` (root, and a kernel that lets this process mount)."""
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# --------------------------------------------------------------------------------------
# Non-regular files and inputs as outputs
# --------------------------------------------------------------------------------------


def test_fifo_output_is_refused_without_hanging(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png"])
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    proc = subprocess.run([iqa_exe(), "score", str(ref), str(dist), "-o", str(fifo), "--overwrite"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert error_line(proc.stderr) == f"iqa: error: {fifo}: is a FIFO (named pipe), not a regular file; name a file " \
                                      "for the output"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not meta_path(fifo).exists()


def test_device_folder_and_fifo_outputs_are_refused_before_work(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png"])
    for target, kind in [("/dev/null", "a device"), (tmp_path, "a folder")]:
        result = run("score", ref, dist, "-o", target, "--overwrite")
        assert result.exit_code == 1
        assert f"{target}: is {kind}, not a regular file" in error_line(result.stderr)
        assert "pair(s)" not in result.stderr  # nothing was scored
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # not replaced by a regular file
    fifo = tmp_path / "m.png"
    os.mkfifo(fifo)
    result = run("ssim", ref / "a.png", dist / "a.png", "--map", fifo, "--overwrite")
    assert result.exit_code == 1 and "is a FIFO (named pipe)" in error_line(result.stderr)
    assert result.stdout == ""  # refused before the score was computed
    result = run("stats", ref, "-o", fifo, "--overwrite")
    assert result.exit_code == 1 and "is a FIFO (named pipe)" in error_line(result.stderr)


def test_existing_files_and_inputs_are_never_replaced_unasked(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png"])
    before = (dist / "a.png").read_bytes()
    # The heat map onto the distorted input: refused, with --overwrite too.
    for extra in ([], ["--overwrite"]):
        result = run("ssim", ref / "a.png", dist / "a.png", "--map", dist / "a.png", *extra)
        assert result.exit_code == 1 and "is an input of this run" in error_line(result.stderr)
    assert (dist / "a.png").read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(dist / "a.png")
    result = run("ssim", ref / "a.png", dist / "a.png", "--map", link, "--overwrite")
    assert "is an input of this run" in error_line(result.stderr)
    # An existing map, statistics or summary: only with --overwrite.
    other = tmp_path / "m.png"
    other.write_bytes(b"keep")
    result = run("ssim", ref / "a.png", dist / "a.png", "--map", other)
    assert result.exit_code == 1 and error_line(result.stderr).endswith("m.png: already exists; pass --overwrite to "
                                                                        "replace it")
    assert other.read_bytes() == b"keep"
    assert run("ssim", ref / "a.png", dist / "a.png", "--map", other, "--overwrite").exit_code == 0
    assert other.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = tmp_path / "s.npz"
    npz.write_bytes(b"keep")
    result = run("stats", ref, "-o", npz)
    assert "s.npz: already exists; pass --overwrite" in error_line(result.stderr) and npz.read_bytes() == b"keep"
    summary = tmp_path / "summary.json"
    summary.write_text("keep")
    result = run("score", ref, dist, "-m", "psnr", "-o", tmp_path / "o.csv", "--summary", summary)
    assert "summary.json: already exists" in error_line(result.stderr) and summary.read_text() == "keep"
    assert not (tmp_path / "o.csv").exists()  # refused before the run started
    result = run("score", ref, dist, "-m", "psnr", "-o", tmp_path / "o.csv", "--summary", tmp_path / "o.csv")
    assert result.exit_code == 2 and "--summary names the output file" in result.stderr
    # Statistics onto one of the images they are made from: refused, with --overwrite too.
    result = run("stats", dist, "-o", dist / "a.png", "--overwrite")
    assert "a.png: is an input of this run" in error_line(result.stderr)
    assert (dist / "a.png").read_bytes() == before
    # Binary statistics never go to a file named '-' (or one iqa fid would read as a list).
    for name in ("-", str(tmp_path / "s.txt")):
        result = run("stats", ref, "-o", name)
        assert result.exit_code == 2 and "the statistics are" in result.stderr and "ending in .npz" in result.stderr
    assert not Path("-").exists() and not (tmp_path / "s.txt").exists()


def test_map_names_are_unique_per_pair_and_existing_maps_are_kept(tmp_path, rng):
    from PIL import Image

    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    a = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    write_png(ref / "a.png", a)
    Image.fromarray(255 - a).save(dist / "a.jpg", format="JPEG")
    write_png(dist / "a.jpg.png", 255 - a)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,distorted\na.png,a.jpg\na.png,a.jpg.png\n")
    maps = tmp_path / "maps"
    result = run("score", ref, dist, "--pairs", pairs, "-m", "ssim", "-o", tmp_path / "o.csv", "--maps", maps)
    assert result.exit_code == 0, result.stderr
    made = sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png"))
    assert made == ["ssim/a.jpg.png", "ssim/a.jpg.png.png"]
    first = (maps / "ssim" / "a.jpg.png").read_bytes()
    result = run("score", ref, dist, "--pairs", pairs, "-m", "ssim", "-o", tmp_path / "p.csv", "--maps", maps)
    assert result.exit_code == 1 and "ssim/a.jpg.png: already exists" in error_line(result.stderr)
    assert (maps / "ssim" / "a.jpg.png").read_bytes() == first and not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------------------
# Full, read-only and size-limited disks; permissions
# --------------------------------------------------------------------------------------


def test_full_disk_is_one_line_and_the_rows_written_resume(tmp_path):
    ref, dist = pairs_of(tmp_path, LONG)
    clean = tmp_path / "clean.csv"
    assert run("score", ref, dist, "-m", "psnr", "-o", clean).exit_code == 0
    with tmpfs(tmp_path / "disk") as disk:
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fh:  # fill the disk, then free two pages: sidecar, header
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        os.truncate(filler, max(0, filler.stat().st_size - 8192))
        out = disk / "out.csv"
        result = run("score", ref, dist, "-m", "psnr", "-o", out)
        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert line.startswith(f"iqa: error: {out}: cannot write") and line.endswith("no space left on device (ENOSPC)")
        written = read_rows(out, "csv", COLS)
        assert 0 < len(written) < len(LONG)  # stopped mid-way; every row read back is whole
        expected = {r["reference"]: r for r in read_rows(clean, "csv", COLS)}
        assert all(expected[r["reference"]] == r for r in written)
        filler.unlink()
        result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
        assert result.exit_code == 0, result.stderr
        assert f"resumed: {len(written)} complete row(s) kept" in result.stderr
        assert out.read_bytes() == clean.read_bytes()
        assert json.loads(meta_path(out).read_text())["status"] == "done"


def test_read_only_disk_is_one_line_before_any_work(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png"])
    with tmpfs(tmp_path / "disk") as disk:
        old = disk / "old.csv"
        old.write_text("keep\n")
        proc = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({proc.stderr.strip()})")
        for target, extra in [(disk / "out.csv", []), (old, ["--overwrite"])]:
            result = run("score", ref, dist, "-o", target, *extra)
            assert result.exit_code == 1
            assert error_line(result.stderr) == (f"iqa: error: {target}: cannot create files in {disk}: read-only "
                                                 "file system (EROFS)")
        assert old.read_text() == "keep\n"
        result = run("ssim", ref / "a.png", dist / "a.png", "--map", disk / "m.png")
        assert result.exit_code == 1
        assert error_line(result.stderr).endswith("m.png: cannot write the map: read-only file system (EROFS)")
        # The maps folder and the summary's folder too: found before the first pair, so no
        # output (it scored every pair, then failed on each map or on the summary).
        out = tmp_path / "o.csv"
        result = run("score", ref, dist, "-m", "ssim", "-o", out, "--maps", disk / "maps")
        assert error_line(result.stderr) == f"iqa: error: {disk / 'maps'}: cannot write the maps there: read-only " \
                                            "file system (EROFS)"
        result = run("score", ref, dist, "-m", "psnr", "-o", out, "--summary", disk / "sum.json")
        assert error_line(result.stderr) == f"iqa: error: {disk / 'sum.json'}: cannot create files in {disk}: " \
                                            "read-only file system (EROFS)"
        assert result.exit_code == 1 and not out.exists()


def _limit_file_size(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


def test_file_size_limit_is_one_line_and_resumable(tmp_path):
    ref, dist = pairs_of(tmp_path, LONG)
    out = tmp_path / "out.csv"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([iqa_exe(), "score", str(ref), str(dist), "-m", "psnr", "-o", str(out)], env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(6000))
    assert proc.returncode == 1
    assert error_line(proc.stderr).endswith(f"{out}: cannot write: file too large (the file size limit was reached) "
                                            "(EFBIG)")
    written = read_rows(out, "csv", COLS)
    assert 0 < len(written) < len(LONG)
    meta = json.loads(meta_path(out).read_text())
    assert meta["status"] == "failed" and "EFBIG" in meta["error"]
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 0 and f"resumed: {len(written)} complete row(s) kept" in result.stderr


def test_permission_denied_in_an_unprivileged_child():
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and no setpriv to drop privileges (root ignores mode bits)")
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        drop = []
    root = Path(tempfile.mkdtemp(prefix="iqa-perm-"))  # not under pytest's 0700 folder
    try:
        ref, dist = pairs_of(root, ["a.png"])
        locked = root / "locked"
        locked.mkdir()
        old = root / "old.csv"
        old.write_text("keep\n")
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        env = {**os.environ, "HOME": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        probe = subprocess.run([*drop, sys.executable, "-c", "import iqa.cli"], capture_output=True, env=env)
        if probe.returncode != 0:
            pytest.skip(f"the unprivileged user cannot run this Python: {probe.stderr.decode()[-200:]}")
        for target, extra in [(locked / "out.csv", []), (old, ["--overwrite"])]:
            proc = subprocess.run([*drop, iqa_exe(), "score", str(ref), str(dist), "-o", str(target), *extra],
                                  capture_output=True, text=True, env=env, timeout=120, cwd=root)
            assert proc.returncode == 1
            assert error_line(proc.stderr) == (f"iqa: error: {target}: cannot create files in {target.parent}: "
                                               "permission denied (EACCES)")
        assert old.read_text() == "keep\n"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Kills, signals and concurrent runs
# --------------------------------------------------------------------------------------


def test_live_run_refuses_a_second_and_sigterm_leaves_it_interrupted(slow_pairs, tmp_path):
    ref, dist = slow_pairs
    out, log = tmp_path / "out.csv", tmp_path / "first.log"
    args = ["score", ref, dist, "-m", "psnr,ssim", "-o", out]
    proc = start([*args, "--workers", "0"], log)
    try:
        wait_rows(proc, lambda: out, 2, log)
        meta = json.loads(meta_path(out).read_text())
        assert meta["status"] == "running" and meta["owner"]["pid"] == proc.pid
        for extra in (["--resume"], ["--overwrite"]):
            second = run(*args, *extra)
            assert second.exit_code == 1
            assert f"an iqa run (PID {proc.pid} on " in error_line(second.stderr)
            assert "is writing this output" in second.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted; the rows written so far are in" in log.read_text()
    meta = json.loads(meta_path(out).read_text())
    assert meta["status"] == "interrupted" and "owner" not in meta
    kept = len(read_rows(out, "csv", columns_for(["psnr", "ssim"])))
    result = run(*args, "--resume")
    assert result.exit_code == 0 and f"resumed: {kept} complete row(s) kept" in result.stderr


def test_sigkill_during_overwrite_keeps_the_old_output_and_resume_is_byte_identical(slow_pairs, tmp_path):
    ref, dist = slow_pairs
    out, log = tmp_path / "out.csv", tmp_path / "killed.log"
    args = ["score", ref, dist, "-m", "psnr,ssim", "-o", out]
    assert run(*args).exit_code == 0
    old, old_meta = out.read_bytes(), meta_path(out).read_text()
    # Killed while replacing it: the old output stays as it was.
    proc = start([*args, "--overwrite", "--workers", "0"], log)
    temp = out.with_name(f".{out.name}.new-{proc.pid}")
    try:
        wait_rows(proc, lambda: temp, 2, log)
    finally:
        proc.kill()
        proc.wait()
    assert out.read_bytes() == old and temp.exists()
    assert json.loads(meta_path(out).read_text())["status"] == "running"
    # The next run finds the owner dead: the earlier sidecar comes back, the temp file goes.
    result = run(*args, "--resume")
    assert result.exit_code == 0 and "resumed: 40 complete row(s) kept, 0 pair(s) scored" in result.stderr
    assert not temp.exists() and out.read_bytes() == old
    assert json.loads(meta_path(out).read_text())["status"] == "done"
    # Killed in a fresh run: resumed, the file equals the clean one byte for byte.
    out2 = tmp_path / "out2.csv"
    proc = start([*args[:-1], out2, "--workers", "0"], log)
    try:
        wait_rows(proc, lambda: out2, 3, log)
    finally:
        proc.kill()
        proc.wait()
    assert json.loads(meta_path(out2).read_text())["status"] == "running"
    result = run(*args[:-1], out2, "--resume")
    assert result.exit_code == 0, result.stderr
    assert out2.read_bytes() == old
    assert json.loads(meta_path(out2).read_text())["status"] == "done"
    assert json.loads(old_meta)["status"] == "done"


def test_a_dead_owners_temp_files_are_removed_and_a_live_ones_kept(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png", "b.png"])
    out = tmp_path / "o.csv"
    assert run("score", ref, dist, "-m", "psnr", "-o", out).exit_code == 0
    clean, meta = out.read_bytes(), json.loads(meta_path(out).read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its PID now names no process
    # As a kill during the final rewrite leaves them: the sidecar "running", temp files beside.
    temps = [tmp_path / f".o.csv.tmp-{dead.pid}", tmp_path / f".o.csv.meta.json.tmp-{dead.pid}"]
    for t in temps:
        t.write_text("half")
    meta_path(out).write_text(json.dumps({**meta, "status": "running", "owner": {"pid": dead.pid,
                                                                              "host": os.uname().nodename}}))
    result = run("score", ref, dist, "-m", "psnr", "-o", out)  # refused (exists), yet the truth is written
    assert "already exists" in error_line(result.stderr)
    assert not any(t.exists() for t in temps)
    assert json.loads(meta_path(out).read_text())["status"] == "interrupted"
    assert run("score", ref, dist, "-m", "psnr", "-o", out, "--resume").exit_code == 0
    assert out.read_bytes() == clean
    # A live owner (this process's parent stands in for it): refused, its files untouched.
    live = tmp_path / f".o.csv.tmp-{os.getppid()}"
    live.write_text("mine")
    meta_path(out).write_text(json.dumps({**meta, "status": "running", "owner": {"pid": os.getppid(),
                                                                              "host": os.uname().nodename}}))
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 1 and "is writing this output" in error_line(result.stderr)
    assert live.read_text() == "mine" and json.loads(meta_path(out).read_text())["status"] == "running"


def test_interrupt_and_failure_are_said_truthfully_in_the_sidecar(tmp_path):
    from iqa.scoring import ScoreSettings, pair_folders, score_to_file

    ref, dist = pairs_of(tmp_path, [f"{i}.png" for i in range(4)], size=64)  # LPIPS needs 64 px
    jobs = pair_folders(ref, dist).jobs
    settings = ScoreSettings(metrics=("psnr",))
    out = tmp_path / "o.csv"

    def stop(exc):
        def on_row(done, total):
            if done == 2:
                raise exc
        return on_row

    with pytest.raises(KeyboardInterrupt):
        score_to_file(jobs, out, settings, on_row=stop(KeyboardInterrupt()))
    assert json.loads(meta_path(out).read_text())["status"] == "interrupted"
    assert len(read_rows(out, "csv", COLS)) == 2
    with pytest.raises(RuntimeError):
        score_to_file(jobs, out, settings, resume=True, on_row=stop(RuntimeError("boom")))
    meta = json.loads(meta_path(out).read_text())
    assert meta["status"] == "failed" and meta["error"] == "RuntimeError: boom"
    score_to_file(jobs, out, settings, resume=True)
    done, done_meta = out.read_bytes(), meta_path(out).read_text()
    assert json.loads(done_meta)["status"] == "done"
    # A failed --overwrite leaves the old output and its sidecar as they were, nothing else.
    with pytest.raises(RuntimeError):
        score_to_file(jobs, out, settings, overwrite=True, on_row=stop(RuntimeError("boom")))
    assert out.read_bytes() == done and meta_path(out).read_text() == done_meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "o.csv", "o.csv.meta.json", "ref"]
    # Bad weights (found before any pair): the old output untouched, a new one never made.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for target, extra in [(out, ["--overwrite"]), (tmp_path / "new.csv", [])]:
        result = run("score", ref, dist, "-m", "psnr,lpips", "--weights", junk, "-o", target, *extra)
        assert result.exit_code == 1 and "junk.pth" in error_line(result.stderr)
    assert out.read_bytes() == done and meta_path(out).read_text() == done_meta
    assert not (tmp_path / "new.csv").exists() and not meta_path(tmp_path / "new.csv").exists()


# --------------------------------------------------------------------------------------
# Resume: vanished inputs, a cut header; names with line breaks
# --------------------------------------------------------------------------------------


def test_resume_keeps_rows_of_vanished_inputs_unless_asked(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png", "b.png", "c.png"])
    out = tmp_path / "o.csv"
    assert run("score", ref, dist, "-m", "psnr", "-o", out).exit_code == 0
    before = read_rows(out, "csv", COLS)
    (ref / "b.png").unlink()
    (dist / "b.png").unlink()
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 0
    assert "kept 1 complete row(s) of an earlier run whose pair is not in this run" in result.stderr
    assert read_rows(out, "csv", COLS) == before
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,distorted\na.png,a.png\n")  # a subset
    result = run("score", ref, dist, "--pairs", pairs, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 0 and read_rows(out, "csv", COLS) == before
    result = run("score", ref, dist, "--pairs", pairs, "-m", "psnr", "-o", out, "--resume", "--drop-unlisted")
    assert result.exit_code == 0
    assert "dropped 2 complete row(s) whose pair is not in this run (--drop-unlisted)" in result.stderr
    assert read_rows(out, "csv", COLS) == before[:1]


def test_csv_cut_inside_its_header_resumes(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png", "b.png"])
    out = tmp_path / "o.csv"
    assert run("score", ref, dist, "-m", "psnr", "-o", out).exit_code == 0
    clean = out.read_bytes()
    out.write_bytes(clean[:12])  # "reference,di": the header cut by a kill
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == clean


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_line_breaks_in_names_round_trip(tmp_path, fmt):
    names = ["cr\rname.png", "lf\nname.png", "crlf\r\nname.png", 'q"uote,comma.png', "plain.png"]
    ref, dist = pairs_of(tmp_path, names)
    out = tmp_path / f"o.{fmt}"
    assert run("score", ref, dist, "-m", "psnr", "-o", out).exit_code == 0
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert sorted(r["reference"] for r in rows) == sorted(names)
        assert all(r["distorted"] == r["reference"] and float(r["psnr"]) > 0 for r in rows)
        # Read as text with universal newlines (how many readers open files): still intact.
        with open(out, encoding="utf-8") as fh:
            assert len(list(csv.DictReader(fh))) == len(names)
        with contextlib.suppress(ImportError):
            import pandas

            frame = pandas.read_csv(out, keep_default_na=False)
            assert sorted(frame["reference"]) == sorted(names) and len(frame) == len(names)
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
        assert sorted(r["reference"] for r in rows) == sorted(names)
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 0
    assert f"resumed: {len(names)} complete row(s) kept, 0 pair(s) scored" in result.stderr


def test_resume_refuses_a_damaged_row_that_hides_complete_rows(tmp_path):
    """An unclosed quote in the middle of an edited CSV swallows every later line: resume
    must not keep only the rows before it (it dropped the rest, exit 0)."""
    names = [f"{i:02d}.png" for i in range(8)]
    ref, dist = pairs_of(tmp_path, names)
    out = tmp_path / "z.csv"
    assert run("score", ref, dist, "-m", "psnr", "-o", out).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    lines[3] = '02.png,02.png,"27.0\n'
    out.write_text("".join(lines))
    before = out.read_bytes()
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume")
    assert result.exit_code == 1
    assert error_line(result.stderr) == (f"iqa: error: {out}:4: a malformed row (an unclosed quote?) hides the "
                                         "complete rows after it; fix or remove that line, or start again with "
                                         "--overwrite")
    assert out.read_bytes() == before


def test_csv_quotes_every_line_break_character():
    from iqa.scoring.rowfile import csv_line

    assert csv_line(["a\rb", "c\nd", "e", 'f"g']) == '"a\rb","c\nd",e,"f""g"\n'
    assert next(csv.reader(io.StringIO(csv_line(["a\rb", "x"]), newline=""))) == ["a\rb", "x"]


# --------------------------------------------------------------------------------------
# Standard output, python -m iqa, unexpected errors, the Python API
# --------------------------------------------------------------------------------------


def test_dash_streams_to_stdout_and_refuses_resume(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png", "b.png"])
    os.chdir(tmp_path)
    result = run("score", ref, dist, "-m", "psnr", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "reference,distorted,psnr,error" and len(result.stdout.splitlines()) == 3
    assert not Path("-").exists() and not Path("-.meta.json").exists()
    assert "2 pair(s), 0 with errors" in result.stderr
    result = run("score", ref, dist, "-o", "-", "--resume")
    assert result.exit_code == 2 and "cannot be resumed" in result.stderr
    # Maps beside rows on stdout: replaced only with --overwrite, which needs no output file.
    for extra, code in [([], 0), ([], 1), (["--overwrite"], 0)]:
        result = run("score", ref, dist, "-m", "ssim", "--maps", tmp_path / "maps", *extra)
        assert result.exit_code == code, result.stderr


def test_python_dash_m_iqa():
    proc = subprocess.run([sys.executable, "-m", "iqa", "metrics"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "psnr" in proc.stdout


def test_unexpected_exception_is_one_line_unless_debug():
    @click.command("explode-for-test")
    def explode() -> None:
        raise ZeroDivisionError("division by zero")

    main.add_command(explode)
    try:
        result = run("explode-for-test")
        assert result.exit_code == 1
        assert error_line(result.stderr) == ("iqa: error: unexpected ZeroDivisionError: division by zero; run with "
                                             "--debug for details")
        result = run("--debug", "explode-for-test")
        assert isinstance(result.exception, ZeroDivisionError)
    finally:
        main.commands.pop("explode-for-test", None)


def test_iter_scores_goes_on_after_a_bad_item(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png"])
    good = (ref / "a.png", dist / "a.png")
    items = [good, "ab", (ref / "a.png",), None, good]
    scores = list(iter_scores(items, ["psnr"]))
    assert [bool(s.error) for s in scores] == [False, True, True, True, False]
    assert "expected a (reference, distorted) pair, got the single path 'ab'" in scores[1].error
    assert scores[0].values == scores[4].values
    # A single path in place of the items is a wrong argument, not a stream of one-letter items.
    with pytest.raises(TypeError, match="got the single path 'r.png'"):
        list(iter_scores("r.png", ["psnr"]))


def test_references_without_partner_are_reported_by_score_folders(tmp_path):
    ref, dist = pairs_of(tmp_path, ["a.png", "b.png"])
    (dist / "b.png").unlink()
    scores = list(score_folders(ref, dist, ["psnr"]))
    assert [(s.reference, s.distorted) for s in scores] == [("a.png", "a.png"), ("b.png", "")]
    assert scores[1].values == {"psnr": None} and scores[1].error.startswith("no distorted partner: ")
    result = run("score", ref, dist, "-m", "psnr")
    assert result.exit_code == 1 and "b.png,,,no distorted partner" in result.stdout


def test_closed_or_full_standard_output_is_one_line(tmp_path):
    """``>&-``: the value would be lost without a word (exit 0); ``> /dev/full``: ENOSPC
    named as standard output's. A run writing only to -o still works with stdout closed."""
    ref, dist = pairs_of(tmp_path, ["a.png"])
    closed = subprocess.run([iqa_exe(), "psnr", str(ref / "a.png"), str(dist / "a.png")], capture_output=False,
                            stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 1
    assert error_line(closed.stderr) == "iqa: error: standard output: closed when iqa started (EBADF)"
    out = tmp_path / "o.csv"
    to_file = subprocess.run([iqa_exe(), "score", str(ref), str(dist), "-m", "psnr", "-o", str(out)],
                             stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1))
    assert to_file.returncode == 0 and out.exists()
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([iqa_exe(), "psnr", str(ref / "a.png"), str(dist / "a.png")], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 1
        assert error_line(proc.stderr) == "iqa: error: standard output: no space left on device (ENOSPC)"


def test_output_error_is_an_oserror():
    assert issubclass(OutputError, OSError)
