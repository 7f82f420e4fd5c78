"""``iqa compare`` end to end: generated image folders through Click's runner, the bundled
samples through a real subprocess; outputs, exit codes, resume, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from iqa.cli.app import main

N = 30  # images per method: enough for the paired test to separate a real difference
FAST = ["-m", "psnr,ssim", "--n-resamples", "2000", "--workers", "0"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("iqa: error:") or ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def methods(tmp_path_factory):
    """REF with 30 images; ``mild`` (noise sd 4), ``strong`` (sd 12) and ``exact`` (a copy of
    REF: PSNR inf) as three methods."""
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(5)
    dirs = {name: root / name for name in ("ref", "mild", "strong", "exact")}
    for d in dirs.values():
        d.mkdir()
    for i in range(N):
        img = rng.integers(0, 256, (24, 24, 3)).astype(np.float64)
        img = cv2.GaussianBlur(img, (5, 5), 1.5)
        name = f"im{i:02d}.png"
        cv2.imwrite(str(dirs["ref"] / name), np.clip(img, 0, 255).astype(np.uint8))
        cv2.imwrite(str(dirs["exact"] / name), np.clip(img, 0, 255).astype(np.uint8))
        for method, sd in (("mild", 4.0), ("strong", 12.0)):
            noisy = img + rng.normal(0, sd, img.shape)
            cv2.imwrite(str(dirs[method] / name), np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    return dirs


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_three_methods_json_summary_and_score_files(methods, tmp_path):
    out = tmp_path / "out"
    r = run("compare", methods["ref"], f"mild={methods['mild']}", f"strong={methods['strong']}",
            f"exact={methods['exact']}", "-o", out, "--format", "json", *FAST)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc == json.loads((out / "summary.json").read_text())
    assert doc["baseline"] == "mild" and doc["n_common"] == N and doc["command"][:2] == ["iqa", "compare"]
    assert doc["settings"]["metrics"] == ["psnr", "ssim"] and doc["settings"]["iqa_version"]
    for method in ("mild", "strong", "exact"):
        for metric in ("psnr", "ssim"):
            assert {"n", "mean", "median", "std", "ci_low", "ci_high"} <= set(doc["summary"][method][metric])
    for method in ("strong", "exact"):
        for metric in ("psnr", "ssim"):
            assert {"n", "diff", "ci_low", "ci_high", "p_value", "win_rate"} <= set(doc["paired"][method][metric])
    strong = doc["paired"]["strong"]
    assert strong["psnr"]["diff"] < 0 and strong["psnr"]["win_rate"] == 0 and strong["psnr"]["significant"]
    exact = doc["paired"]["exact"]
    assert exact["psnr"]["wins"] == N and exact["psnr"]["n_diff"] == 0 and exact["psnr"]["diff"] is None
    assert doc["summary"]["exact"]["psnr"]["n_inf"] == N and doc["summary"]["exact"]["psnr"]["mean"] is None
    assert exact["ssim"]["diff"] > 0 and exact["ssim"]["significant"]

    # Each method's file is the one `iqa score REF DIR -o FILE` writes (same rows, same sidecar settings).
    alone = tmp_path / "mild.csv"
    assert run("score", methods["ref"], methods["mild"], "-m", "psnr,ssim", "-o", alone, "--workers", "0"
               ).exit_code == 0
    assert rows_of(out / "scores" / "mild.csv") == rows_of(alone)
    side = json.loads((out / "scores" / "mild.csv.meta.json").read_text())
    assert side["settings"] == json.loads(Path(str(alone) + ".meta.json").read_text())["settings"] == doc["settings"]
    # summary.csv holds the same numbers.
    table = {(r["method"], r["metric"]): r for r in rows_of(out / "summary.csv")}
    assert float(table[("strong", "psnr")]["mean"]) == doc["summary"]["strong"]["psnr"]["mean"]
    assert float(table[("strong", "psnr")]["p_holm"]) == strong["psnr"]["p_holm"]
    assert table[("exact", "psnr")]["mean"] == "" and table[("exact", "psnr")]["n_inf"] == str(N)


def test_lower_is_better_metrics_through_the_engine(methods, tmp_path):
    """GMSD (lower is better), scored here: the noisier method has the larger values and loses."""
    r = run("compare", methods["ref"], f"mild={methods['mild']}", f"strong={methods['strong']}", "-o", tmp_path / "o",
            "--format", "json", "-m", "gmsd", "--n-resamples", "2000", "--workers", "0")
    assert r.exit_code == 0, r.output
    strong = json.loads(r.stdout)["paired"]["strong"]
    assert strong["gmsd"]["diff"] > 0 and strong["gmsd"]["win_rate"] == 0 and strong["gmsd"]["significant"]


def test_text_table_resume_overwrite_and_baseline(methods, tmp_path):
    out = tmp_path / "out"
    args = ["compare", methods["ref"], f"mild={methods['mild']}", f"strong={methods['strong']}", "-o", out, *FAST]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "Against mild" in first.stdout and "strong  psnr" in first.stdout
    assert "iqa compare: scoring mild (30 pair(s))" in first.stderr
    again = run(*args)
    assert again.exit_code == 1 and "already exists" in one_error_line(again) and "--resume" in again.stderr
    resumed = run(*args, "--resume")
    assert resumed.exit_code == 0 and resumed.stdout == first.stdout
    swapped = run(*args, "--overwrite", "--baseline", "strong")
    assert swapped.exit_code == 0 and "Against strong" in swapped.stdout
    changed = run(*args, "--resume", "--ssim-win-size", "7")
    assert changed.exit_code == 1 and "different settings" in one_error_line(changed)


def test_missing_images_are_named_and_paired_on_the_rest(methods, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(methods["strong"], partial)
    for name in ("im03.png", "im07.png"):
        (partial / name).unlink()
    r = run("compare", methods["ref"], f"mild={methods['mild']}", f"partial={partial}", "-o", tmp_path / "o",
            "--format", "json", *FAST)
    assert r.exit_code == 1, r.output  # as iqa score: a reference without a partner is an error row
    doc = json.loads(r.stdout)
    assert doc["n_common"] == N - 2 and doc["paired"]["partial"]["psnr"]["n"] == N - 2
    partial_info = next(m for m in doc["methods"] if m["name"] == "partial")
    assert partial_info["missing"] == ["im03.png", "im07.png"] and partial_info["failed"] == []
    assert partial_info["n_rows"] == N and partial_info["n_failed"] == 2
    assert "partial: 2 reference file(s) without a distorted partner (error rows)" in r.stderr
    alone = tmp_path / "partial.csv"
    run("score", methods["ref"], partial, "-m", "psnr,ssim", "-o", alone, "--workers", "0")
    assert rows_of(tmp_path / "o" / "scores" / "partial.csv") == rows_of(alone)  # iqa score's file, error rows too


def test_failed_pair_exits_1_with_summaries_written(methods, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(methods["mild"], broken)
    (broken / "im04.png").write_bytes(b"not a png")
    r = run("compare", methods["ref"], f"mild={methods['mild']}", f"broken={broken}", "-o", tmp_path / "o", *FAST)
    assert r.exit_code == 1
    assert "broken: 1 pair(s) with errors; see the error column of" in r.stderr
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    info = next(m for m in doc["methods"] if m["name"] == "broken")
    assert info["n_failed"] == 1 and info["failed"] == ["im04.png"] and doc["paired"]["broken"]["psnr"]["n"] == N - 1


def test_score_files_and_pairs_lists(methods, tmp_path):
    scored = tmp_path / "strong.json"
    assert run("score", methods["ref"], methods["strong"], "-m", "psnr,ssim", "-o", scored).exit_code == 0
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,distorted\n" + "".join(f"im{i:02d}.png,im{i:02d}.png\n" for i in range(10)))
    r = run("compare", methods["ref"], f"mild={methods['mild']}", "--scores", f"strong={scored}",
            "--pairs", f"mild={pairs}", "-o", tmp_path / "o", "--format", "json", *FAST)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    info = {m["name"]: m for m in doc["methods"]}
    assert info["mild"]["n_rows"] == 10 and info["strong"]["n_rows"] == N and info["strong"]["kind"] == "scores"
    assert info["strong"]["scores"] == str(scored) and info["mild"]["scores"] == "scores/mild.csv"
    assert doc["paired"]["strong"]["psnr"]["n"] == 10 and len(info["mild"]["missing"]) == N - 10
    both = run("compare", methods["ref"], f"mild={methods['mild']}", f"strong={methods['strong']}", "--pairs", pairs,
               "-o", tmp_path / "o3", "--format", "json", *FAST)  # one pair list for every method
    assert both.exit_code == 0, both.output
    assert [m["n_rows"] for m in json.loads(both.stdout)["methods"]] == [10, 10]
    only_files = run("compare", "--scores", f"a={scored}", "--scores", f"b={scored}", "-o", tmp_path / "o2",
                     "--n-resamples", "2000")
    assert only_files.exit_code == 0, only_files.output
    assert "psnr" in only_files.stdout and "ssim" in only_files.stdout


def test_a_reference_paired_twice_is_refused_before_scoring(methods, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,distorted\nim00.png,im00.png\nim00.png,im01.png\n")
    r = run("compare", methods["ref"], f"mild={methods['mild']}", "--pairs", pairs, "-o", tmp_path / "o", *FAST)
    assert r.exit_code == 1 and "reference im00.png is paired twice (im00.png and im01.png)" in one_error_line(r)
    assert not (tmp_path / "o" / "scores" / "mild.csv").exists()


@pytest.mark.parametrize("extra, message", [
    (["bad/name=DIR"], "expected NAME=DIR"),
    (["mild=MILD", "mild=MILD"], "given twice"),
    (["mild=MILD", "--baseline", "nope"], "'nope' is not a method"),
    (["mild=MILD", "--resume", "--overwrite"], "exclude each other"),
    (["mild=MILD", "--ci-method", "bc"], "bc"),
    (["mild=MILD", "--n-resamples", "5"], "5"),
    (["mild=MILD", "--ssim-win-size", "4"], "--ssim-win-size"),
    (["mild=REF/im00.png"], "is not a folder"),
    ([], "no method to compare"),
])
def test_usage_errors_exit_2(methods, tmp_path, extra, message):
    fill = {"MILD": str(methods["mild"]), "REF": str(methods["ref"])}
    args = [a.replace("MILD", fill["MILD"]).replace("REF", fill["REF"]) for a in extra]
    r = run("compare", methods["ref"], *args, "-o", tmp_path / "o", "-m", "psnr,ssim")
    assert r.exit_code == 2, r.output
    assert message in one_error_line(r)
    assert not (tmp_path / "o").exists()


def test_default_metrics_a_score_file_lacks_are_a_usage_error(methods, tmp_path):
    """A folder and a score file with PSNR only, no -m: the default metrics (PSNR, SSIM,
    MS-SSIM) are not all in the file; the error names what the files share, before scoring."""
    f = tmp_path / "a.csv"
    f.write_text("reference,distorted,psnr,error\nim00.png,im00.png,30.0,\n")
    r = run("compare", methods["ref"], f"mild={methods['mild']}", "--scores", f"a={f}", "-o", tmp_path / "o")
    assert r.exit_code == 2, r.output
    line = one_error_line(r)
    assert "has no column ssim, ms_ssim" in line and line.endswith("the score files share psnr: pass --metrics psnr")
    assert not (tmp_path / "o").exists()


def test_a_method_with_nothing_to_score_stops_before_any_listing_or_output(methods, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("compare", methods["ref"], f"mild={methods['mild']}", f"e={tmp_path / 'empty'}", "-o", tmp_path / "o",
            "-m", "psnr")
    assert r.exit_code == 1 and "no pairs to score" in one_error_line(r)
    assert r.output.strip().splitlines() == [one_error_line(r)]  # no list of 30 unpaired names first
    assert not (tmp_path / "o").exists()


def test_scoring_options_with_score_files_only_are_refused(methods, tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("reference,distorted,psnr,error\na.png,a.png,30.0,\n")
    r = run("compare", "--scores", f"a={f}", "--scores", f"b={f}", "--crop-border", "4", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--crop-border" in one_error_line(r)


def test_score_files_in_a_subprocess(tmp_path):
    """A real ``iqa`` process: two score files (one with an identical image), JSON on stdout."""
    refs = [f"{i:02d}.png" for i in range(30)]
    rng = np.random.default_rng(3)
    a = rng.normal(30, 1, 30)
    for name, values in (("a", a), ("b", a + rng.normal(1.0, 0.3, 30))):
        lines = ["reference,distorted,psnr,error"] + [f"{r},{r},{float(v)!r}," for r, v in zip(refs, values)]
        if name == "b":
            lines[1] = f"{refs[0]},{refs[0]},inf,"
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    exe = shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))
    cmd = [exe, "compare", "--scores", "a=a.csv", "--scores", "b=b.csv", "-o", "out", "--format", "json",
           "--n-resamples", "2000"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["reference"] is None and doc["command"] == ["iqa", *cmd[1:]]
    b = doc["paired"]["b"]["psnr"]
    assert (b["n"], b["n_diff"], b["wins"]) == (30, 29, 30) and b["significant"]
    assert doc["summary"]["b"]["psnr"]["n_inf"] == 1 and not math.isnan(b["diff"])


def test_python_api_scores_folders_with_settings(methods, tmp_path):
    import iqa

    c = iqa.compare(methods["ref"], {"mild": methods["mild"], "strong": methods["strong"]}, output=tmp_path / "o",
                    metrics=["psnr"], crop_border=2, n_resamples=2000, baseline="strong")
    assert c.metadata["settings"]["crop_border"] == 2 and c.metrics == ["psnr"] and c.metadata["command"] is None
    assert c.paired["mild"]["psnr"]["win_rate"] == 1.0
    side = json.loads((tmp_path / "o" / "scores" / "mild.csv.meta.json").read_text())
    assert side["settings"] == c.metadata["settings"]


def test_interrupted_comparison_resumes_to_the_same_result(methods, tmp_path):
    import iqa

    folders = {"mild": methods["mild"], "strong": methods["strong"]}
    kw = {"metrics": ["psnr"], "n_resamples": 2000}

    def stop_in_strong(name, total):
        def on_row(done, total):
            if name == "strong" and done == 7:
                raise KeyboardInterrupt

        return on_row

    with pytest.raises(KeyboardInterrupt):
        iqa.compare(methods["ref"], folders, output=tmp_path / "o", progress=stop_in_strong, **kw)
    assert len(rows_of(tmp_path / "o" / "scores" / "mild.csv")) == N and not (tmp_path / "o" / "summary.json").exists()
    scored = {"mild": 0, "strong": 0}

    def count(name, total):
        return lambda done, total: scored.__setitem__(name, done)

    resumed = iqa.compare(methods["ref"], folders, output=tmp_path / "o", resume=True, progress=count, **kw)
    assert scored["mild"] == 0 and 0 < scored["strong"] < N  # the kept rows are not scored again
    fresh = iqa.compare(methods["ref"], folders, output=tmp_path / "fresh", **kw)
    assert resumed.summary == fresh.summary and resumed.paired == fresh.paired
    assert rows_of(tmp_path / "o" / "scores" / "strong.csv") == rows_of(tmp_path / "fresh" / "scores" / "strong.csv")


def test_compare_takes_every_scoring_option_of_iqa_score():
    import click

    from iqa.cli.compare_cmd import compare_cmd
    from iqa.cli.score_cmd import score_cmd, scoring_params

    def flags(cmd_params):
        return [f for p in cmd_params if isinstance(p, click.Option) for f in (*p.opts, *p.secondary_opts)]

    mine = flags(compare_cmd.params)
    assert len(mine) == len(set(mine)), sorted(f for f in mine if mine.count(f) > 1)
    shared = flags(scoring_params())
    assert set(shared) <= set(mine) and set(shared) <= set(flags(score_cmd.params))
    assert {"--ssim-win-size", "--lpips-net", "--crop-border", "--data-range", "--weights", "--resume"} <= set(shared)
