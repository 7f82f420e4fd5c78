"""``iqa score`` through Click's runner and real subprocesses: outputs, exit codes, stderr,
resuming after a SIGKILL, and a two-process torchrun run equal to one process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_png

import iqa
from iqa.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def iqa_exe() -> str:
    return shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


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


def test_csv_on_stdout_summary_and_unmatched_on_stderr(folders):
    ref, dist = folders
    result = run("score", ref, dist, "-m", "psnr", "-m", "ssim")
    assert result.exit_code == 1, result.stderr  # bad.png failed
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines[0] == "reference,distorted,psnr,ssim,error"
    rows = list(csv.DictReader(lines))
    assert len(rows) == 11
    for r in rows[1:]:
        a, b = ref / r["reference"], dist / r["distorted"]
        assert r["psnr"] == repr(iqa.psnr(a, b)) and r["ssim"] == repr(iqa.ssim(a, b))
    assert rows[0]["reference"] == "bad.png" and "empty file" in rows[0]["error"]
    err = result.stderr
    assert "1 reference file(s) without a distorted partner:\n  lonely_ref.png" in err
    assert "1 distorted file(s) without a reference partner:\n  lonely_dist.png" in err
    assert "psnr" in err and "11 pair(s), 1 with errors" in err
    assert "[" not in err  # no progress bar when stderr is not a terminal


def test_metric_spellings_agree(folders):
    ref, dist = folders
    a = run("score", ref, dist, "-m", "psnr", "-m", "ms-ssim", "--format", "jsonl")
    b = run("score", ref, dist, "--metrics", "psnr,ms-ssim", "--format", "jsonl")
    assert a.stdout == b.stdout and a.stdout
    assert json.loads(a.stdout.splitlines()[1]).keys() == {"reference", "distorted", "psnr", "ms_ssim", "error"}
    bad = run("score", ref, dist, "-m", "vif")
    assert bad.exit_code == 2 and "'vif' is not one of" in bad.stderr


def test_output_sidecar_summary_and_pooled(folders, tmp_path):
    ref, dist = folders
    out, summary = tmp_path / "s.csv", tmp_path / "summary.json"
    result = run("score", ref, dist, "-m", "psnr", "-o", out, "--summary", summary, "--psnr-mean", "pooled")
    assert result.exit_code == 1 and result.stdout == ""
    rows = rows_of(out)
    doc = json.loads(summary.read_text())
    psnrs = np.array([float(r["psnr"]) for r in rows if r["psnr"]])
    p = doc["metrics"]["psnr"]
    assert p["n"] == 10 and p["failed"] == 1 and p["identical"] == 0
    assert p["mean"] == pytest.approx(-10 * np.log10(np.mean(10 ** (-psnrs / 10))), rel=1e-12)
    assert p["std"] == pytest.approx(psnrs.std(ddof=1), rel=1e-12)
    assert doc["settings"]["metrics"] == ["psnr"]
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    assert meta["reference_root"] == str(ref) and meta["status"] == "complete"
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
def test_resume_after_sigkill(folders, tmp_path, fmt, kill_after):
    ref, dist = folders
    out = tmp_path / f"scores.{fmt}"
    base = [iqa_exe(), "score", str(ref), str(dist), "-m", "psnr", "-m", "ssim", "-o", str(out), "--workers", "2"]
    env = {**os.environ, "IQA_TEST_KILL_AFTER_ROWS": str(kill_after)}
    proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    from iqa import scoring

    cols = ["reference", "distorted", "psnr", "ssim", "error"]
    assert len(scoring._read_rows(out, fmt, cols)) == kill_after  # flushed rows survived the kill

    proc = subprocess.run([*base, "--resume"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # bad.png still fails
    # bad.png sorts first: its failed row is retried, the other rows written are kept.
    if kill_after > 1:
        assert f"resumed: {kill_after - 1} complete row(s) kept, {11 - kill_after + 1} pair(s) scored" in proc.stderr
    clean = tmp_path / f"clean.{fmt}"
    subprocess.run([*base[:-4], "-o", str(clean)], capture_output=True, timeout=120)
    if fmt == "json":
        resumed, fresh = json.loads(out.read_text()), json.loads(clean.read_text())
        assert resumed["rows"] == fresh["rows"]
        keys = [(r["reference"], r["distorted"]) for r in resumed["rows"]]
    else:
        assert out.read_text() == clean.read_text()
        keys = [(r["reference"], r["distorted"]) for r in scoring._read_rows(out, fmt, cols)]
    assert len(keys) == len(set(keys)) == 11  # every pair exactly once
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
    last = loud.stderr.split("\r")[-1].splitlines()[0]
    assert last.startswith("[########################] 11/11 pairs")
    assert "pairs/s" in last and "ETA 0:00:00" in last


def test_help_does_not_import_torch():
    code = "import sys; from iqa.cli import main; sys.argv = ['iqa', 'score', '--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--resume" in out and out.strip().endswith("False")


def test_torchrun_two_gloo_processes_killed_resumed_equal_one(folders, tmp_path):
    """Two gloo ranks on the CPU, each killed after two rows, then resumed under torchrun:
    the merged file is byte-identical to a one-process run."""
    pytest.importorskip("torch.distributed")
    ref, dist = folders
    out, one = tmp_path / "s.jsonl", tmp_path / "one.jsonl"
    args = ["score", str(ref), str(dist), "-m", "psnr", "--workers", "1", "-o", str(out)]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    killed = subprocess.run([*launch, iqa_exe(), *args], env={**env, "IQA_TEST_KILL_AFTER_ROWS": "2"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0
    assert len(list(tmp_path.glob("s.jsonl.part*"))) == 2  # each rank's rows so far
    resumed = subprocess.run([*launch, iqa_exe(), *args, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 1, resumed.stderr  # bad.png
    # bad.png (first, failed) and one good row per rank were written before the kill.
    assert "resumed: 3 complete row(s) kept, 8 pair(s) scored" in resumed.stderr
    assert resumed.stderr.count("11 pair(s), 1 with errors") == 1  # the summary comes from rank 0 only
    subprocess.run([iqa_exe(), *args[:-1], str(one)], capture_output=True, timeout=120)
    assert out.read_text() == one.read_text()
    assert not list(tmp_path.glob("s.jsonl.part*"))


def test_lpips_column_and_maps(folders, tmp_path):
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    from iqa.metrics.lpips import lpips as lpips_one

    torch.manual_seed(0)  # seeded random SqueezeNet weights: no download needed
    weights = tmp_path / "squeezenet_random.pth"
    torch.save(tvm.squeezenet1_1(weights=None).state_dict(), weights)
    ref, dist = folders
    out, maps = tmp_path / "s.csv", tmp_path / "maps"
    result = run("score", ref, dist, "-m", "ssim,lpips", "--lpips-net", "squeeze", "--lpips-weights", weights,
                 "--device", "cpu", "--batch-size", "4", "--maps", maps, "-o", out)
    assert result.exit_code == 1, result.stderr  # bad.png
    rows = [r for r in rows_of(out) if not r["error"]]
    assert len(rows) == 10
    for r in rows[:3]:
        expected = lpips_one(ref / r["reference"], dist / r["distorted"], net="squeeze",
                             backbone_weights=weights, device="cpu")
        # Batches of four vs one pair: float32 convolutions may round differently (1e-6 relative).
        assert float(r["lpips"]) == pytest.approx(expected, rel=1e-6)
    assert len(list((maps / "ssim").rglob("*.png"))) == len(list((maps / "lpips").rglob("*.png"))) == 10
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    assert meta["settings"]["lpips"]["backbone"]["file"] == str(weights)


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
    assert one_error_line(result).startswith("iqa: error: /proc/x.csv: cannot create files in /proc (")
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
    torch = pytest.importorskip("torch")
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
