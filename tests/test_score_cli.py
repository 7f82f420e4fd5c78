"""``iqa score`` through Click's runner and real subprocesses: outputs, exit codes, stderr,
resuming after a SIGKILL, a two-process torchrun run equal to one process, and the options
it shares with the pair commands."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
import torch
import torch.distributed
from click.testing import CliRunner
from helpers import write_png

import iqa
from iqa import registry
from iqa.cli import main
from iqa.cli.score_cmd import score_cmd
from iqa.scoring import meta_path
from iqa.scoring.rowfile import columns_for, read_rows

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def iqa_exe() -> str:
    return shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def pair_command(name: str) -> click.Command:
    """A pair command (``iqa ssim``...), as ``iqa`` builds it."""
    with click.Context(main) as ctx:
        cmd = main.get_command(ctx, name)
    assert cmd is not None, name
    return cmd


@pytest.fixture
def folders(tmp_path, rng):
    """Ten good pairs (two folders deep), one empty distorted file, one unmatched per side."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for i in range(10):
        sub = f"g{i % 2}"
        (ref / sub).mkdir(parents=True, exist_ok=True)
        (dist / sub).mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        write_png(ref / sub / f"{i:02d}.png", a)
        write_png(dist / sub / f"{i:02d}.png", b)
    write_png(ref / "bad.png", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    (dist / "bad.png").write_bytes(b"")
    write_png(ref / "lonely_ref.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    write_png(dist / "lonely_dist.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    return ref, dist


#: Pairs of :func:`many_pairs`: with ``bad.png``, 41 rows.
MANY = 40


@pytest.fixture(scope="module")
def many_pairs(tmp_path_factory):
    """40 pairs of 256×256 RGB images in two folders, and bad.png (an empty distorted file,
    which sorts first and fails): about a second of work for ``iqa score -m psnr,ssim
    --workers 0`` (25 ms a pair on a 2-core machine), so that a kill from outside lands
    mid-run with most pairs still to score."""
    rng = np.random.default_rng(20240229)
    root = tmp_path_factory.mktemp("many")
    ref, dist = root / "ref", root / "dist"
    for i in range(MANY):
        sub = f"g{i % 2}"
        (ref / sub).mkdir(parents=True, exist_ok=True)
        (dist / sub).mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        write_png(ref / sub / f"{i:02d}.png", a)
        write_png(dist / sub / f"{i:02d}.png", b)
    write_png(ref / "bad.png", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    (dist / "bad.png").write_bytes(b"")
    return ref, dist



def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc): torchrun starts its ranks in sessions of
    their own, so killing its process group would leave them running."""
    if not os.path.isdir("/proc"):
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])  # the name may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_when_written(cmd: list[str], files: list[Path], fmt: str, columns: list[str], rows: int, *,
                      env: dict[str, str] | None = None, log: Path, timeout: float = 120.0) -> int:
    """Run ``cmd`` until each of ``files`` holds at least ``rows`` complete data rows, then
    SIGKILL it and every process below it at once, as a power cut or the OOM killer would.

    Returns the exit status of ``cmd`` (negative: the signal). Fails the test if ``cmd``
    ends by itself first or does not get there within ``timeout`` seconds.
    """
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + timeout
        while True:
            counts = [len(read_rows(f, fmt, columns)) if f.exists() else 0 for f in files]
            if min(counts) >= rows:
                break
            if proc.poll() is not None:
                pytest.fail(f"{cmd[0]} ended (exit {proc.returncode}) before it could be killed with rows {counts}; "
                            f"give it more work. stderr:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {rows} rows in {files} after {timeout} s (rows {counts}). stderr:\n{log.read_text()}")
            time.sleep(0.002)
        for pid in [proc.pid, *_descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed before the kill: leave nothing running
            for pid in [proc.pid, *_descendants(proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=60)


def test_csv_on_stdout_summary_and_unmatched_on_stderr(folders):
    ref, dist = folders
    result = run("score", ref, dist, "-m", "psnr", "-m", "ssim")
    assert result.exit_code == 1, result.stderr  # bad.png failed
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines[0] == "reference,distorted,psnr,ssim,error"
    rows = list(csv.DictReader(lines))
    assert len(rows) == 12
    # A reference without a partner is an error row (a pipeline sees it and the exit code).
    lonely = next(r for r in rows if r["reference"] == "lonely_ref.png")
    assert lonely["distorted"] == "" and lonely["error"].startswith("no distorted partner: ")
    rows.remove(lonely)
    for r in rows[1:]:
        a, b = ref / r["reference"], dist / r["distorted"]
        assert r["psnr"] == repr(iqa.psnr(a, b)) and r["ssim"] == repr(iqa.ssim(a, b))
    assert rows[0]["reference"] == "bad.png" and "empty file" in rows[0]["error"]
    err = result.stderr
    assert "1 reference file(s) without a distorted partner (error rows):\n  lonely_ref.png" in err
    assert "1 distorted file(s) without a reference partner:\n  lonely_dist.png" in err
    assert "psnr" in err and "12 pair(s), 2 with errors" in err
    assert "[" not in err  # no progress bar when stderr is not a terminal


def test_metric_spellings_agree(folders):
    ref, dist = folders
    a = run("score", ref, dist, "-m", "psnr", "-m", "ms-ssim", "--format", "jsonl")
    b = run("score", ref, dist, "--metrics", "psnr,ms-ssim", "--format", "jsonl")
    assert a.stdout == b.stdout and a.stdout
    assert json.loads(a.stdout.splitlines()[1]).keys() == {"reference", "distorted", "psnr", "ms_ssim", "error"}
    bad = run("score", ref, dist, "-m", "vif")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert "Invalid value for '-m' / '--metrics': unknown metric 'vif'" in bad.stderr
    bad = run("score", ref, dist, "-m", "psnr,fid")
    assert bad.exit_code == 2 and "fid is a two-set metric; here choose from psnr, ssim, ms-ssim, lpips" in bad.stderr


def test_output_sidecar_summary_and_pooled(folders, tmp_path):
    ref, dist = folders
    out, summary = tmp_path / "s.csv", tmp_path / "summary.json"
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--summary", summary, "--psnr-mean", "pooled")
    assert result.exit_code == 1 and result.stdout == ""
    rows = rows_of(out)
    doc = json.loads(summary.read_text())
    psnrs = np.array([float(r["psnr"]) for r in rows if r["psnr"]])
    p = doc["metrics"]["psnr"]
    assert p["n"] == 10 and p["failed"] == 2 and p["identical"] == 0  # bad.png, lonely_ref.png
    assert p["mean"] == pytest.approx(-10 * np.log10(np.mean(10 ** (-psnrs / 10))), rel=1e-12)
    assert p["std"] == pytest.approx(psnrs.std(ddof=1), rel=1e-12)
    assert doc["settings"]["metrics"] == ["psnr"]
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    assert meta["reference_root"] == str(ref) and meta["status"] == "done"
    again = run("score", ref, dist, "-m", "psnr", "-o", out)
    assert again.exit_code == 1 and "already exists; pass --resume" in again.stderr


def test_no_pairs_is_an_error(tmp_path, rng):
    (tmp_path / "r").mkdir()
    (tmp_path / "d").mkdir()
    write_png(tmp_path / "r" / "a.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    result = run("score", tmp_path / "r", tmp_path / "d")
    assert result.exit_code == 1
    assert "no pairs to score" in result.stderr and "--match-stem" in result.stderr


def test_pairs_file_on_the_bundled_samples(tmp_path):
    samples = ROOT / "data" / "samples"
    out = tmp_path / "s.json"
    result = run("score", samples / "reference", samples, "--pairs", samples / "pairs.csv", "-o", out)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert len(doc["rows"]) == 12
    row = next(r for r in doc["rows"] if r["distorted"] == "jpeg/chelsea.jpg")
    a, b = samples / "reference" / "chelsea.png", samples / "jpeg" / "chelsea.jpg"
    assert (row["psnr"], row["ssim"], row["ms_ssim"]) == (iqa.psnr(a, b), iqa.ssim(a, b), iqa.ms_ssim(a, b))


def test_the_readme_job_runs_offline_in_a_subprocess(tmp_path):
    shutil.copytree(ROOT / "data" / "samples", tmp_path / "data" / "samples")
    env = {**os.environ, "IQA_OFFLINE": "1"}
    cmd = [iqa_exe(), "score", "data/samples/reference", "data/samples", "--pairs", "data/samples/pairs.csv", "-o", "scores.csv"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "12 pair(s), 0 with errors" in proc.stderr
    assert len(rows_of(tmp_path / "scores.csv")) == 12


@pytest.mark.parametrize(("fmt", "kill_after"), [("csv", 4), ("json", 1), ("jsonl", 7)])
def test_resume_after_sigkill(many_pairs, tmp_path, fmt, kill_after):
    """Killed from outside once ``kill_after`` rows are on disk, then resumed: the file
    equals a clean run's, byte for byte."""
    ref, dist = many_pairs
    out = tmp_path / f"scores.{fmt}"
    args = ["score", str(ref), str(dist), "-m", "psnr", "-m", "ssim", "-o", str(out)]
    cols = columns_for(["psnr", "ssim"])
    # --workers 0: pairs one after another in the main thread (slow enough to be caught).
    status = kill_when_written([iqa_exe(), *args, "--workers", "0"], [out], fmt, cols, kill_after,
                               log=tmp_path / "killed.stderr")
    assert status == -signal.SIGKILL
    written = read_rows(out, fmt, cols)  # the rows flushed before the kill survived it
    assert kill_after <= len(written) < MANY + 1  # killed mid-run
    assert json.loads(meta_path(out).read_text())["status"] == "running"
    # bad.png sorts first: its failed row is retried, the other rows written are kept.
    assert written[0]["reference"] == "bad.png" and written[0]["error"]
    kept = sum(not r["error"] for r in written)

    proc = subprocess.run([iqa_exe(), *args, "--resume"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # bad.png still fails
    if kept:
        assert f"resumed: {kept} complete row(s) kept, {MANY + 1 - kept} pair(s) scored" in proc.stderr
    else:  # killed after bad.png's row only (kill_after=1): nothing to keep, nothing said
        assert "resumed:" not in proc.stderr
    assert json.loads(meta_path(out).read_text())["status"] == "done"
    # A clean run, in threads this time: the file depends on neither the kill nor the workers.
    clean = tmp_path / f"clean.{fmt}"
    proc = subprocess.run([iqa_exe(), *args[:-1], str(clean), "--workers", "2"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert out.read_bytes() == clean.read_bytes()
    keys = [(r["reference"], r["distorted"]) for r in read_rows(out, fmt, cols)]
    assert len(keys) == len(set(keys)) == MANY + 1  # every pair exactly once
    assert keys == sorted(keys)


def test_resume_refuses_changed_settings(folders, tmp_path):
    ref, dist = folders
    out = tmp_path / "s.csv"
    run("score", ref, dist, "-m", "psnr", "-o", out)
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--resume", "--color", "y")
    assert result.exit_code == 1
    assert "different settings (color: 'rgb' -> 'y')" in result.stderr


def test_progress_bar_goes_to_stderr_only(folders):
    ref, dist = folders
    quiet = run("score", ref, dist, "-m", "psnr")
    loud = run("score", ref, dist, "-m", "psnr", "--progress", "--workers", "2", "--threads", "1")
    assert loud.stdout == quiet.stdout  # data only on stdout
    assert "12/12" not in quiet.stderr  # no bar unless asked (stderr is not a terminal)
    last = loud.stderr.split("\r")[-1].splitlines()[0]  # the bar's final state (tqdm)
    assert last.startswith("100%|") and "| 12/12 [" in last and "pair/s]" in last


def test_help_does_not_import_torch():
    code = "import sys; from iqa.cli import main; sys.argv = ['iqa', 'score', '--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--resume" in out and out.strip().endswith("False")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no gloo backend")
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finding torchrun's ranks to kill them needs /proc")
def test_torchrun_two_gloo_processes_killed_resumed_equal_one(many_pairs, tmp_path):
    """Two gloo ranks on the CPU, killed from outside once each has written two rows, then
    resumed under torchrun: the merged file is byte-identical to a one-process run."""
    ref, dist = many_pairs
    out, one = tmp_path / "s.jsonl", tmp_path / "one.jsonl"
    args = ["score", str(ref), str(dist), "-m", "psnr", "--workers", "0", "-o", str(out)]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
    parts = [tmp_path / f"s.jsonl.part{rank}" for rank in range(2)]
    cols = columns_for(["psnr"])
    status = kill_when_written([*launch, iqa_exe(), *args], parts, "csv", cols, 2, env=env,
                               log=tmp_path / "killed.stderr", timeout=300)
    assert status == -signal.SIGKILL
    # Each rank's rows so far are in its part file (CSV whatever the output's format).
    written = [row for part in parts for row in read_rows(part, "csv", cols)]
    assert len(written) < MANY + 1  # killed mid-run
    kept = sum(not r["error"] for r in written)  # bad.png's row (first, failed) is retried
    assert kept >= 3
    resumed = subprocess.run([*launch, iqa_exe(), *args, "--resume"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 1, resumed.stderr  # bad.png
    assert f"resumed: {kept} complete row(s) kept, {MANY + 1 - kept} pair(s) scored" in resumed.stderr
    assert resumed.stderr.count(f"{MANY + 1} pair(s), 1 with errors") == 1  # the summary comes from rank 0 only
    run(*args[:-1], one)  # the one-process reference, in this process
    assert out.read_bytes() == one.read_bytes()
    assert not list(tmp_path.glob("s.jsonl.part*"))


def test_lpips_column_and_maps(folders, tmp_path, squeeze_weights):
    from iqa.metrics.lpips import lpips as lpips_one

    weights = squeeze_weights
    ref, dist = folders
    out, maps = tmp_path / "s.csv", tmp_path / "maps"
    # --weights FILE is the backbone --lpips-net selects (SqueezeNet here, not the default AlexNet).
    result = run("score", ref, dist, "-m", "ssim,lpips", "--lpips-net", "squeeze", "--weights", weights,
                 "--device", "cpu", "--batch-size", "4", "--maps", maps, "-o", out)
    assert result.exit_code == 1, result.stderr  # bad.png
    assert "warning" not in result.stderr
    rows = [r for r in rows_of(out) if not r["error"]]
    assert len(rows) == 10
    for r in rows[:3]:
        expected = lpips_one(ref / r["reference"], dist / r["distorted"], net="squeeze", weights=weights,
                             device="cpu")
        # Batches of four images (two pairs) vs one pair: float32 convolutions may round
        # differently (1e-6 relative).
        assert float(r["lpips"]) == pytest.approx(expected, rel=1e-6)
    assert len(list((maps / "ssim").rglob("*.png"))) == len(list((maps / "lpips").rglob("*.png"))) == 10
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    backbone = meta["settings"]["lpips"]["backbone"]
    assert backbone["file"] == str(weights) and backbone["name"] == "squeezenet1_1" and backbone["source"] == "user"
    # The former name still works, with a warning on stderr, and gives the same file.
    again = tmp_path / "again.csv"
    result = run("score", ref, dist, "-m", "ssim,lpips", "--lpips-net", "squeeze", "--lpips-weights", weights,
                 "--device", "cpu", "--batch-size", "4", "-o", again)
    assert result.exit_code == 1, result.stderr
    assert "iqa: warning: --lpips-weights is now --weights" in result.stderr
    assert again.read_bytes() == out.read_bytes()


# --------------------------------------------------------------------------------------
# Review fixes: bad pair lists, unwritable output, infinity in JSON, device, notes
# --------------------------------------------------------------------------------------


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("iqa: error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_pairs_files_are_one_line_errors(folders, tmp_path):
    ref, dist = folders
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,distorted\ng0/00.png,g0/00.png,extra\n")
    result = run("score", ref, dist, "--pairs", pairs)
    assert result.exit_code == 1
    assert f"{pairs}:2: 3 cells but the header has 2" in one_error_line(result)
    pairs.write_bytes(b"reference,distorted\n\xff.png,a.png\n")
    result = run("score", ref, dist, "--pairs", pairs)
    assert result.exit_code == 1
    assert f"{pairs}:2: the pair list is not UTF-8 text" in one_error_line(result)


def test_unwritable_output_is_a_one_line_error(folders):
    ref, dist = folders
    result = run("score", ref, dist, "-o", "/proc/x.csv")
    assert result.exit_code == 1 and result.stdout == ""
    assert one_error_line(result).startswith("iqa: error: /proc/x.csv: cannot create files in /proc: ")
    assert "pair(s)" not in result.stderr  # stopped before scoring: no summary


def test_jsonl_infinite_psnr_next_to_a_failed_metric(tmp_path, rng):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    a = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    write_png(ref / "a.png", a)
    write_png(dist / "a.png", a)
    result = run("score", ref, dist, "-m", "psnr,ms-ssim", "--format", "jsonl")
    assert result.exit_code == 1  # MS-SSIM does not apply under 176 px
    row = json.loads(result.stdout)
    assert row["psnr"] == "inf" and row["ms_ssim"] is None and row["error"].startswith("ms_ssim: ")
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout
    assert '"inf"' in run("score", "--help").stdout.replace("\n", " ")


def test_unavailable_cuda_is_a_usage_error(folders):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ref, dist = folders
    result = run("score", ref, dist, "-m", "lpips", "--device", "cuda")
    assert result.exit_code == 2 and result.stdout == ""
    assert "--device" in result.stderr and "CUDA is not available" in result.stderr


def test_opaque_alpha_note_on_stderr(tmp_path, rng):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for i in range(3):
        a = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
        a[..., 3] = 255
        write_png(ref / f"{i}.png", a)
        write_png(dist / f"{i}.png", 255 - a[..., :3] if i == 0 else np.dstack([255 - a[..., :3], a[..., 3]]))
    summary = tmp_path / "summary.json"
    result = run("score", ref, dist, "-m", "psnr", "--summary", summary)
    assert result.exit_code == 0, result.stderr
    assert "note: alpha channel fully opaque: dropped: 3 pair(s)" in result.stderr
    assert json.loads(summary.read_text())["notes"] == {"alpha channel fully opaque: dropped": 3}


# --------------------------------------------------------------------------------------
# Options shared with the pair commands
# --------------------------------------------------------------------------------------


def test_prefixed_options_give_the_pair_commands_values(tmp_path):
    """``iqa score --ssim-win-size 7 --ssim-sigma 1.2 --ms-ssim-scales 3`` prints, digit for
    digit, what ``iqa ssim --win-size 7 --sigma 1.2`` and ``iqa ms-ssim --scales 3`` print for
    the same files."""
    result = run("score", SAMPLES / "reference", SAMPLES, "--pairs", SAMPLES / "pairs.csv", "-m", "ssim,ms-ssim",
                 "--ssim-win-size", "7", "--ssim-sigma", "1.2", "--ms-ssim-scales", "3")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 12
    for r in rows:
        a, b = SAMPLES / "reference" / r["reference"], SAMPLES / r["distorted"]
        ssim = run("ssim", a, b, "--win-size", "7", "--sigma", "1.2")
        ms_ssim = run("ms-ssim", a, b, "--scales", "3")
        assert ssim.exit_code == ms_ssim.exit_code == 0, ssim.stderr + ms_ssim.stderr
        assert r["ssim"] == ssim.stdout.strip() and r["ms_ssim"] == ms_ssim.stdout.strip()
        assert r["error"] == ""
    # The options reached the metrics: the defaults give other numbers.
    a, b = SAMPLES / "reference" / rows[0]["reference"], SAMPLES / rows[0]["distorted"]
    assert rows[0]["ssim"] != run("ssim", a, b).stdout.strip()
    assert rows[0]["ms_ssim"] != run("ms-ssim", a, b).stdout.strip()


#: A valid value, other than the default, for each metric option of the command line that is
#: neither a choice nor a flag (for those one is found from the field). A new option needs one.
OPTION_VALUES = {
    ("ssim", "win_size"): 7,
    ("ssim", "sigma"): 1.2,
    ("ms_ssim", "win_size"): 7,
    ("ms_ssim", "sigma"): 1.2,
    ("ms_ssim", "scales"): 3,
    ("lpips", "net"): "squeeze",  # the backbone whose weights the tests generate
    ("ms_gmsd", "scales"): 3,
    ("haarpsi", "scales"): 2,
    ("haarpsi", "c"): 12.5,
    ("haarpsi", "logistic_alpha"): 2.0,
    ("vifp", "sigma_n_sq"): 3.5,
    **{(m, name): value for m in ("fsim", "fsimc") for name, value in (
        ("scales", 3), ("orientations", 6), ("min_length", 3), ("mult", 3),
        ("sigma_f", 0.6), ("delta_theta", 1.5), ("k", 3.0))},
}

#: Network metrics scored in that test: the ones whose weights the tests generate here (DISTS's
#: VGG16 file is 528 MB: its options, none today, are still checked against iqa score's).
SCORED_NETWORKS = ("lpips",)


def _test_value(spec, field):
    """(command-line words after the flag, the value the options object holds)."""
    if (spec.key, field.name) in OPTION_VALUES:
        value = OPTION_VALUES[(spec.key, field.name)]
        return [str(value)], value
    if str(field.type) == "bool":
        return [], not field.default  # the flag itself, or its --no- form for a default of True
    choices = field.metadata.get("choices")
    if not choices:
        pytest.fail(f"no test value for {spec.key}.{field.name}: add one to OPTION_VALUES")
    value = next(c for c in choices if c != field.default)
    return [str(value)], value


def test_iqa_score_options_do_not_collide():
    flags = [flag for p in score_cmd.params if isinstance(p, click.Option) for flag in (*p.opts, *p.secondary_opts)]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)
    names = [p.name for p in score_cmd.params]  # where Click stores each value
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_pair_command_option_is_accepted_by_iqa_score(folders, tmp_path, squeeze_weights):
    """Each pair command's option is an ``iqa score`` option: a metric's own options under
    the metric's name (``--scales`` → ``--ms-ssim-scales``), the image layer's, the
    conventions and the runtime's under their own; each reaches the settings of the run."""
    score_flags = {flag for p in score_cmd.params for flag in (*p.opts, *p.secondary_opts)}
    words = ["score", *folders, "--weights", str(squeeze_weights), "--device", "cpu", "-o", str(tmp_path / "s.csv")]
    expected = {}
    for spec in registry.pair_metrics():
        cmd = pair_command(spec.name)
        fields = {f.name: f for f in spec.options_class().cli_fields()}  # none for PSNR
        scored = not spec.networks or spec.key in SCORED_NETWORKS
        if scored:
            words += ["-m", spec.name]
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.name in ("map_path", "fmt"):
                continue  # --map FILE is --maps DIR there; --format has the file formats
            if p.name in fields:
                flag = f"--{spec.name}-{p.name.replace('_', '-')}"
                assert p.opts == [f"--{p.name.replace('_', '-')}"]  # the pair command's own name
                assert flag in score_flags, f"iqa {spec.name} {p.opts[0]}: no {flag} in iqa score"
                extra, value = _test_value(spec, fields[p.name])
                if value is False:
                    flag = "--no-" + flag[2:]
                    assert flag in score_flags, flag
                if scored:
                    words += [flag, *extra]
                    expected[(spec.key, p.name)] = value
            else:
                for flag in p.opts:
                    assert flag in score_flags, f"iqa {spec.name} {flag}: not an iqa score option"
        missing = set(fields) - {p.name for p in cmd.params}
        assert not missing, f"iqa {spec.name} lacks options {missing}"
    result = run(*words)
    assert result.exit_code == 1, result.stderr  # bad.png
    settings = json.loads((tmp_path / "s.csv.meta.json").read_text())["settings"]
    for (metric, name), value in expected.items():
        assert settings[metric][name] == value, (metric, name)
    # 48×40 images: below VIFp's 41 px minimum, so its cell fails with its own message; the
    # other metrics are scored on every good pair.
    rows = [r for r in rows_of(tmp_path / "s.csv") if r["psnr"]]
    assert len(rows) == 10 and all(r[m] for r in rows for m in ("psnr", "ssim", "ms_ssim", "lpips", "gmsd", "haarpsi"))
    assert all(r["vifp"] or "vifp:" in r["error"] for r in rows)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("scales", "9", "must be an integer from 1 to 5, got 9"),
        ("win-size", "4", "must be odd and positive, got 4"),
        ("sigma", "-1", "must be a positive finite number"),
    ],
)
def test_bad_values_name_the_flag_as_each_command_spells_it(folders, tmp_path, flag, value, message):
    ref, dist = folders
    out = tmp_path / "s.csv"
    score = run("score", ref, dist, "-m", "ms-ssim", f"--ms-ssim-{flag}", value, "-o", out)
    assert score.exit_code == 2 and score.stdout == ""  # a usage error
    assert f"Error: --ms-ssim-{flag} {message}" in score.stderr
    assert f"--{flag}" not in score.stderr.replace(f"--ms-ssim-{flag}", "")
    assert not out.exists()  # stopped before anything was written
    one = run("ms-ssim", ref / "g0" / "00.png", dist / "g0" / "00.png", f"--{flag}", value)
    assert one.exit_code == 2 and one.stdout == ""
    assert f"Error: --{flag} {message}" in one.stderr and "--ms-ssim-" not in one.stderr
    assert "Traceback" not in score.stderr + one.stderr


def test_ms_ssim_too_small_row_names_the_score_flag(tmp_path, rng):
    """64×64 is below the 176 px of five scales: the row's error suggests the scales that
    fit (3, as 11·2² = 44 ≤ 64 < 88 = 11·2³ with the 11-px window), spelt as ``iqa score``
    takes it; ``iqa ms-ssim`` and Python spell it their own way."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    write_png(ref / "a.png", a)
    write_png(dist / "a.png", b)
    result = run("score", ref, dist, "-m", "ms-ssim")
    assert result.exit_code == 1
    (row,) = csv.DictReader(result.stdout.splitlines())
    assert row["ms_ssim"] == ""
    assert row["error"].startswith("ms_ssim: ") and "needs a short side of at least 176 px, got 64×64" in row["error"]
    assert row["error"].endswith("; pass --ms-ssim-scales 3 (weights renormalised)")
    # The advice works, and gives the pair command's number.
    result = run("score", ref, dist, "-m", "ms-ssim", "--ms-ssim-scales", "3")
    assert result.exit_code == 0, result.stderr
    (row,) = csv.DictReader(result.stdout.splitlines())
    assert row["error"] == "" and row["ms_ssim"] == run("ms-ssim", ref / "a.png", dist / "a.png", "--scales", "3").stdout.strip()
    one = run("ms-ssim", ref / "a.png", dist / "a.png")
    assert one.exit_code == 1 and one.stderr.rstrip().endswith("; pass --scales 3 (weights renormalised)")
    with pytest.raises(iqa.ShapeError, match=r"; pass scales=3 \(weights renormalised\)$"):
        iqa.ms_ssim(a, b)
