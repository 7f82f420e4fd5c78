"""The classical-metric commands, through Click's runner and one real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_png

import iqa
from iqa.cli import main


@pytest.fixture
def pair(tmp_path, rng):
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    return write_png(tmp_path / "ref.png", a), write_png(tmp_path / "dist.png", b)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    ("command", "func"), [("psnr", iqa.psnr), ("ssim", iqa.ssim), ("ms-ssim", None)]
)
def test_prints_the_library_value_at_full_precision(pair, command, func):
    if func is None:  # 40×48 is below MS-SSIM's five scales: use two
        result = run(command, *pair, "--scales", "2")
        expected = iqa.ms_ssim(*pair, scales=2)
    else:
        result = run(command, *pair)
        expected = func(*pair)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{expected!r}\n"


def test_json_records_settings(pair):
    result = run("ssim", *pair, "--format", "json", "--color", "y", "--crop-border", "4")
    doc = json.loads(result.stdout)
    assert doc["metric"] == "ssim"
    assert doc["value"] == iqa.ssim(*pair, color="y", crop_border=4)
    assert doc["settings"]["data_range"] == 255.0
    assert doc["settings"]["color"] == "y" and doc["settings"]["crop_border"] == 4
    assert doc["settings"]["win_size"] == 11 and doc["settings"]["sigma"] == 1.5
    assert doc["iqa_version"] == iqa.__version__


def test_identical_images_json_stays_valid(pair):
    result = run("psnr", pair[0], pair[0], "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["value"] == "inf"  # JSON has no infinity; the same spelling as iqa score
    assert run("psnr", pair[0], pair[0]).stdout == "inf\n"


def test_opaque_alpha_is_reported(tmp_path, rng):
    a = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    a[..., 3] = 255
    p = write_png(tmp_path / "a.png", a)
    doc = json.loads(run("psnr", p, p, "--format", "json").stdout)
    assert doc["notes"] == ["alpha channel fully opaque: dropped"]


def test_errors_are_one_line_with_exit_1(pair, tmp_path):
    missing = tmp_path / "missing.png"
    result = run("psnr", pair[0], missing)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"iqa: error: {missing}: no such file\n"
    small = write_png(tmp_path / "small.png", np.zeros((40, 47, 3), np.uint8))
    result = run("ssim", pair[0], small)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "small.png: size 47×40×3 does not match" in result.stderr


def test_usage_error_exit_2(pair):
    assert run("psnr", pair[0]).exit_code == 2
    assert run("psnr", *pair, "--color", "lab").exit_code == 2


@pytest.mark.parametrize("command", ["ssim", "ms-ssim"])
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--win-size", "4", "must be odd and positive, got 4"),
        ("--win-size", "0", "must be odd and positive, got 0"),
        ("--sigma", "1e-300", "must be a positive finite number large enough"),
        ("--sigma", "nan", "must be a positive finite number"),
        ("--sigma", "inf", "must be a positive finite number"),
        ("--sigma", "0", "must be a positive finite number"),
    ],
)
def test_bad_window_options_are_usage_errors(pair, command, option, value, message):
    # The library's check (its message, naming the option as the command spells it),
    # reported by Click: exit 2, no traceback, nothing on stdout.
    result = run(command, *pair, option, value)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert f"Error: {option} {message}" in result.stderr
    assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr


def test_window_options_reach_the_library(pair):
    result = run("ssim", *pair, "--win-size", "7", "--sigma", "1.0", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == iqa.ssim(*pair, win_size=7, sigma=1.0)
    assert doc["settings"]["win_size"] == 7 and doc["settings"]["sigma"] == 1.0
    result = run("ms-ssim", *pair, "--scales", "2", "--win-size", "9", "--sigma", "1.2")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{iqa.ms_ssim(*pair, scales=2, win_size=9, sigma=1.2)!r}\n"


def test_debug_shows_the_traceback(pair, tmp_path):
    result = CliRunner().invoke(main, ["--debug", "psnr", str(pair[0]), str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert isinstance(result.exception, iqa.ImageLoadError)


def test_version_names_dependencies():
    result = run("--version")
    assert result.exit_code == 0
    for name in ("iqa", "torch", "numpy", "scipy"):
        assert name in result.stdout


def test_real_subprocess(pair):
    exe = shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))
    proc = subprocess.run([exe, "psnr", str(pair[0]), str(pair[1])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == iqa.psnr(*pair)
    proc = subprocess.run([exe, "psnr", str(pair[0]), "nope.png"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == "iqa: error: nope.png: no such file\n"


def test_a_caller_of_main_keeps_its_exit_finalizers(tmp_path):
    # The iqa command skips the last garbage collections at exit (gc.freeze): its own
    # process only. A script that calls main() keeps the finalizers of its cyclic garbage:
    # here a buffered file in a reference cycle, flushed only by its finalizer.
    out = tmp_path / "out.txt"
    script = (
        "from iqa.cli import main\n"
        "main(['metrics'], standalone_mode=False)\n"
        "class Holder: pass\n"
        "h = Holder(); h.me = h; h.fh = open(%r, 'w'); h.fh.write('kept')\n" % str(out)
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "kept"
    for args in (["-m", "iqa.cli", "--version"], ["-m", "iqa", "--version"]):
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.startswith("iqa "), proc.stderr


def test_metrics_json_lists_every_metric():
    result = run("metrics", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == ["psnr", "ssim", "ms-ssim", "lpips", "dists", "vifp", "gmsd", "ms-gmsd", "fsim", "fsimc",
                         "haarpsi", "fid", "kid", "fd", "fd-dinov2", "cmmd", "precision", "recall", "density", "coverage",
                         "is"]
    kinds = {name: (d["kind"], d["direction"]) for name, d in doc.items()}
    higher, lower = ("pair", "higher is better"), ("pair", "lower is better")
    assert kinds == {
        "psnr": higher, "ssim": higher, "ms-ssim": higher, "lpips": lower, "dists": lower, "vifp": higher,
        "gmsd": lower, "ms-gmsd": lower, "fsim": higher, "fsimc": higher, "haarpsi": higher,
        "fid": ("two-set", "lower is better"),
        "kid": ("two-set", "lower is better"),
        "fd": ("two-set", "lower is better"), "fd-dinov2": ("two-set", "lower is better"),
        "cmmd": ("two-set", "lower is better"),
        **{m: ("two-set", "higher is better") for m in ("precision", "recall", "density", "coverage")},
        "is": ("one-set", "higher is better"),
    }
    options = {name: d["options"] for name, d in doc.items()}
    assert options["psnr"] == {}
    assert {k: v["default"] for k, v in options["ssim"].items()} == {"win_size": 11, "sigma": 1.5, "downsample": False}
    assert set(options["ms-ssim"]) == {"win_size", "sigma", "scales", "scale_weights"}
    assert options["lpips"]["net"]["default"] == "alex" and options["lpips"]["net"]["choices"] == ["alex", "vgg", "squeeze"]
    assert options["lpips"]["version"]["choices"] == ["0.1", "0.0"]
    # dims and mode default to the extractor's (inception: 2048, pytorch-fid)
    assert options["fid"]["dims"]["default"] is None and 2048 in options["fid"]["dims"]["choices"]
    assert options["precision"]["nearest_k"]["default"] == 5
    assert options["kid"]["subsets"]["default"] == 100 and options["kid"]["seed"]["default"] == 2020
    for name, opts in options.items():
        for key, o in opts.items():
            assert o["help"], (name, key)
    assert doc["psnr"]["range"] == [0.0, "inf"] and doc["psnr"]["unit"] == "dB"  # JSON has no infinity
    assert doc["ms-ssim"]["python"] == "ms_ssim"


@pytest.mark.parametrize("args", [["--help"], ["metrics"], ["metrics", "--format", "json"]])
def test_help_and_metrics_import_no_torch(args):
    """In a fresh interpreter: the registry and options are read without torch or scipy."""
    code = (
        "import sys\n"
        "from iqa.cli import main\n"
        f"sys.argv = ['iqa', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'torchvision', 'scipy', 'lpips') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ms-ssim" in proc.stdout and "lpips" in proc.stdout  # the command did its work
    assert proc.stdout.rstrip().splitlines()[-1] == "heavy: []"


@pytest.mark.parametrize("env,expected", [({}, "10000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
                                          ({"GOMP_SPINCOUNT": "77"}, "77")])
def test_openmp_spinning_is_capped_unless_the_user_chose(env, expected):
    """libgomp's idle threads spin 300,000 times by default (ruinous next to busy cores); the
    CLI caps that before torch loads, but never over the user's own OpenMP wait settings
    (GOMP_SPINCOUNT would override OMP_WAIT_POLICY)."""
    import subprocess
    import sys

    code = ("import os, sys; from iqa.cli.app import main\n"
            "try:\n    main(['metrics'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(repr(os.environ.get('GOMP_SPINCOUNT')))")
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert out.stderr.strip().endswith(repr(expected)), out.stderr
