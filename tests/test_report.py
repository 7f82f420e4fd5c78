"""iqa report: the data the page embeds (equal to the files' numbers), links to odd file
names, placeholders for missing images, the output folder's protection, the command."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from click.testing import CliRunner

import iqa
from iqa.cli import main
from iqa.compare.report import render, script_json
from iqa.compare.report_data import Method, Metric, Results, differing, worst
from report_images import HOSTILE_NAMES, copy_method

pytest.importorskip("matplotlib", reason="iqa report needs matplotlib (the report extra)")

_DATA_RE = re.compile(r'<script type="application/json" id="iqa-data">(.*?)</script>', re.S)


def page_data(index: Path) -> dict:
    """The JSON the page embeds, read back as a browser's JSON.parse reads it."""
    (text,) = _DATA_RE.findall(index.read_text(encoding="utf-8"))
    return json.loads(text)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def as_float(v) -> float | None:
    return None if v is None else float(v)  # float() reads "inf" and "nan" as the page does


@pytest.fixture
def outdir(comparison) -> Path:
    return comparison


@pytest.fixture
def built(comparison_report) -> Path:
    return comparison_report


@pytest.fixture
def single(comparison, tmp_path) -> Path:
    """The "bad" method's score file with its images, copied (the tests may delete images)."""
    return copy_method(comparison, "bad", tmp_path)


def test_embedded_values_equal_the_score_csvs(outdir, built):
    data = page_data(built)
    table = data["table"]
    for tm in table["methods"]:
        rows = {r["reference"]: r for r in read_csv(outdir / "scores" / f"{tm['name']}.csv")}
        assert sorted(rows) == table["keys"]
        for i, key in enumerate(table["keys"]):
            for metric in ("psnr", "ssim"):
                assert as_float(tm["values"][metric][i]) == float(rows[key][metric]), (tm["name"], key, metric)
    # The identical image's PSNR is inf in the CSV and "inf" in the page, never dropped.
    same = next(tm for tm in table["methods"] if tm["name"] == "same")
    assert same["values"]["psnr"][table["keys"].index(HOSTILE_NAMES[0])] == "inf"


def test_embedded_summary_equals_the_summary_files(outdir, built):
    data = page_data(built)
    summary = json.loads((outdir / "summary.json").read_text())
    assert data["baseline"] == summary["baseline"] == "good"
    for row in read_csv(outdir / "summary.csv"):
        s = data["summary"][row["method"]][row["metric"]]
        for col in ("mean", "median", "std", "ci_low", "ci_high"):
            assert as_float(s[col]) == (float(row[col]) if row[col] else None)
        assert s["n"] == int(row["n"]) and s["n_inf"] == int(row["n_inf"])
        if row["method"] != "good":
            p = data["paired"][row["method"]][row["metric"]]
            assert as_float(p["diff"]) == float(row["diff"]) and as_float(p["p_holm"]) == float(row["p_holm"])
    assert data["metrics"] == [{"key": "psnr", "label": "psnr", "higher": True, "unit": "dB"},
                               {"key": "ssim", "label": "ssim", "higher": True, "unit": None}]


def test_links_reach_odd_file_names(outdir, built):
    """Spaces, quotes, <, &, #, ?, % and non-ASCII names: every link is relative and leads to
    the file (percent-decoded as a browser does), and the page holds no raw < from a name."""
    data = page_data(built)
    table = data["table"]
    hrefs = table["ref"] + [h for tm in table["methods"] for h in tm["out"]]
    assert None not in hrefs
    for href in hrefs:
        assert not href.startswith(("/", "file:")) and "#" not in href and "?" not in href
        assert (built.parent / unquote(href)).is_file(), href
    html = built.read_text(encoding="utf-8")
    script = _DATA_RE.findall(html)[0]
    assert "<" not in script and ">" not in script and "&" not in script
    assert HOSTILE_NAMES[0] in table["keys"]


def test_script_json_cannot_end_its_element():
    payload = {"title": "</script><script>alert(1)</script> <!-- \u2028 é", "provenance": {"report": {"versions": {"iqa": "x"}}}}
    page = render("<title><!--IQA:TITLE--></title><script><!--IQA:DATA--></script>", payload)
    assert page.count("</script>") == 1 and "<!-- " not in page
    assert "<title>&lt;/script&gt;&lt;script&gt;" in page
    (text,) = re.findall(r"<script>(.*)</script>", page, re.S)
    assert json.loads(text) == payload
    # Text in the data that looks like a placeholder stays text.
    payload["title"] = "<!--IQA:DATA-->"
    assert json.loads(script_json(payload))["title"] == "<!--IQA:DATA-->"
    assert render("<t><!--IQA:TITLE--></t>", payload) == "<t>&lt;!--IQA:DATA--&gt;</t>"


def test_galleries_show_the_worst_images_with_ssim_maps(outdir, built):
    data = page_data(built)
    groups = {(g["metric"], g["methods"][0]): g for g in data["galleries"]["worst"]}
    rows = read_csv(outdir / "scores" / "bad.csv")
    lowest = sorted(rows, key=lambda r: (float(r["psnr"]), r["reference"]))[:3]
    assert [it["key"] for it in groups[("psnr", "bad")]["items"]] == [r["reference"] for r in lowest]
    item = groups[("psnr", "bad")]["items"][0]
    labels = [t["label"] for t in item["tiles"]]
    assert labels == ["reference", "bad", "ssim map · bad"]
    for t in item["tiles"]:
        assert (built.parent / t["thumb"]).is_file() and (built.parent / unquote(t["href"])).is_file()
    # Differ-most galleries compare each method with the baseline.
    assert {tuple(g["methods"]) for g in data["galleries"]["differ"]} == {("good", "bad"), ("good", "same")}
    assert len(list((built.parent / "plots").glob("*.png"))) == 4


def test_ssim_map_is_the_scored_ssim(outdir, built):
    """The map drawn is the one whose mean the CSV holds (same settings)."""
    from PIL import Image

    data = page_data(built)
    item = next(g for g in data["galleries"]["worst"] if g["metric"] == "ssim")["items"][0]
    name = next(g for g in data["galleries"]["worst"] if g["metric"] == "ssim")["methods"][0]
    rows = {r["reference"]: r for r in read_csv(outdir / "scores" / f"{name}.csv")}
    f = outdir.parent / "images"
    value, m = iqa.ssim(f / "reference" / item["key"], f / name / item["key"], return_map=True)
    assert value == float(rows[item["key"]]["ssim"])
    tile = next(t for t in item["tiles"] if t["label"].startswith("ssim map"))
    assert tile["size"] == [m.shape[1], m.shape[0]]
    with Image.open(built.parent / tile["thumb"]) as im:  # previews of small images are not enlarged
        assert im.size == (m.shape[1], m.shape[0])


def test_missing_images_become_placeholders_and_a_warning(single, tmp_path):
    worst_bad = min(read_csv(single), key=lambda r: float(r["psnr"]))["reference"]
    (tmp_path / "images" / "bad" / worst_bad).unlink()
    with pytest.warns(iqa.IQAWarning, match=r"1 image file\(s\) not found"):
        index = iqa.report(single, tmp_path / "report", gallery_size=2)
    data = page_data(index)
    i = data["table"]["keys"].index(worst_bad)
    (bad,) = data["table"]["methods"]
    assert bad["out"][i] is None and data["table"]["ref"][i] is not None
    tiles = next(g for g in data["galleries"]["worst"] if g["metric"] == "psnr")["items"][0]["tiles"]
    assert [t["thumb"] for t in tiles] == ["thumbs/img-0.jpg", "assets/missing.svg", "assets/missing.svg"]
    assert tiles[1]["href"] is None and tiles[2]["href"] is None
    assert (tmp_path / "report" / "assets" / "missing.svg").is_file()
    assert any("not found" in w for w in data["warnings"])


def test_an_existing_folder_is_replaced_only_with_overwrite(single, tmp_path):
    outdir = single
    out = tmp_path / "report"
    iqa.report(outdir, out, gallery_size=0)
    (out / "index.html").write_text((out / "index.html").read_text() + "<!-- old -->")
    with pytest.raises(iqa.IQAError, match="already exists; pass overwrite=True"):
        iqa.report(outdir, out, gallery_size=0)
    assert "<!-- old -->" in (out / "index.html").read_text()
    iqa.report(outdir, out, gallery_size=0, overwrite=True)
    assert "<!-- old -->" not in (out / "index.html").read_text()
    # A folder that is not a report is never replaced, even with overwrite.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(iqa.IQAError, match="not a report"):
        iqa.report(outdir, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep" and sorted(os.listdir(other)) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_one_score_file(single, tmp_path):
    index = iqa.report(single, tmp_path / "single", gallery_size=2)
    data = page_data(index)
    rows = read_csv(single)
    assert data["kind"] == "score" and data["baseline"] is None and data["galleries"]["differ"] == []
    psnr = np.array([float(r["psnr"]) for r in rows])
    s = data["summary"]["bad.csv"]["psnr"]
    assert s["mean"] == pytest.approx(psnr.mean(), rel=1e-14) and s["median"] == pytest.approx(np.median(psnr), rel=1e-14)
    assert s["std"] == pytest.approx(psnr.std(ddof=1), rel=1e-12) and s["n"] == len(rows)


def test_gallery_choice_follows_the_direction():
    rows = {k: {"reference": k, "distorted": k, "lpips": v, "error": ""}
            for k, v in [("a", 0.1), ("b", 0.5), ("c", None), ("d", 0.3)]}
    m = Method("m", Path("m.csv"), None, None, rows)
    assert [k for k, _ in worst(m, Metric("lpips", "lpips", False), 2)] == ["b", "d"]  # lower is better
    assert [k for k, _ in worst(m, Metric("lpips", "lpips", True), 2)] == ["a", "d"]
    assert worst(m, Metric("lpips", "lpips", None), 2) == []
    inf = math.inf
    a = Method("a", Path("a.csv"), None, None, {k: {"psnr": v} for k, v in [("x", inf), ("y", 30.0), ("z", 20.0)]})
    b = Method("b", Path("b.csv"), None, None, {k: {"psnr": v} for k, v in [("x", inf), ("y", inf), ("z", 25.0)]})
    res = Results("compare", Path("."), [Metric("psnr", "psnr", True)], [a, b], "a", ["x", "y", "z"], {}, {}, None,
                  None, {}, None, None, None)
    # inf - inf is a tie (left out); a finite value against inf differs most.
    assert [(k, d) for k, _, _, d in differing(res, res.metrics[0], "a", "b", 5)] == [("y", inf), ("z", 5.0)]


def test_cli_report_and_its_errors(single, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r"
    res = runner.invoke(main, ["report", str(single), "-o", str(out), "--gallery-size", "1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out / "index.html")
    res = runner.invoke(main, ["report", str(single), "-o", str(out)])
    assert res.exit_code == 1 and res.stderr.strip() == f"iqa: error: {out}: already exists; pass --overwrite to replace it"
    res = runner.invoke(main, ["report", str(tmp_path / "images"), "-o", str(tmp_path / "x")])
    assert res.exit_code == 1 and "without summary.json" in res.stderr


def test_without_matplotlib_one_line(outdir, tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; from iqa.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "report", str(outdir), "-o", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        'iqa: error: the report draws its plots with matplotlib, which is not installed: pip install "iqa[report]"']
    assert not (tmp_path / "r").exists()


def test_lpips_maps_with_local_weights_only(squeeze_weights, tmp_path, monkeypatch):
    """LPIPS maps are drawn with the backbone file that scored LPIPS (never a download);
    when that file is gone, the page says so instead."""
    from report_images import make_images

    f = make_images(tmp_path / "images", 4)
    out = tmp_path / "out"
    iqa.compare(f["reference"], {"good": f["good"], "bad": f["bad"]}, output=out, metrics=["lpips"], n_resamples=100,
                lpips_net="squeeze", weights=str(squeeze_weights))
    data = page_data(iqa.report(out, tmp_path / "r1", gallery_size=1))
    tiles = data["galleries"]["worst"][0]["items"][0]["tiles"]
    assert [t["label"] for t in tiles] == ["reference", "good", "ssim map · good", "lpips map · good"]
    assert all(t["thumb"] != "assets/missing.svg" for t in tiles) and data["lpips_note"] == ""
    backbone = data["provenance"]["settings"]["lpips"]["backbone"]
    assert any(w["sha256"] == backbone["sha256"] for w in data["provenance"]["weights"])

    # Without that file (moved, or changed since), the page says why instead of downloading.
    from iqa.compare.report_gallery import lpips_weights

    settings = data["provenance"]["settings"]
    assert lpips_weights(settings) == ({"squeezenet1_1": str(squeeze_weights)}, "")
    gone = {**settings, "lpips": {**settings["lpips"], "backbone": {**backbone, "file": str(tmp_path / "gone.pth")}}}
    assert lpips_weights(gone)[0] is None
    assert lpips_weights(gone)[1].startswith("LPIPS maps are not drawn: the backbone file used for scoring")
    changed = {**settings, "lpips": {**settings["lpips"], "backbone": {**backbone, "sha256": "0" * 64}}}
    assert "has changed since scoring" in lpips_weights(changed)[1]
    registry = {**settings, "lpips": {**settings["lpips"], "backbone": {**backbone, "source": "registry"}}}
    monkeypatch.setenv("IQA_CACHE_DIR", str(tmp_path / "empty-cache"))
    weights, why = lpips_weights(registry)
    if weights is None:  # unless torch's hub cache holds the registry file
        assert "not on this machine" in why and "never downloads" in why
    # And the page: a report whose scoring file is gone has no LPIPS tiles and the note.
    moved = tmp_path / "elsewhere.pth"
    shutil.move(squeeze_weights, moved)
    try:
        data = page_data(iqa.report(out, tmp_path / "r2", gallery_size=1))
    finally:
        shutil.move(moved, squeeze_weights)
    tiles = data["galleries"]["worst"][0]["items"][0]["tiles"]
    assert [t["label"] for t in tiles] == ["reference", "good", "ssim map · good"]
    assert data["lpips_note"].startswith("LPIPS maps are not drawn: the backbone file used for scoring")


def test_compare_with_report(tmp_path):
    """iqa compare --report writes the comparison and its report in one go; an existing
    report folder is refused before anything is scored."""
    from report_images import make_images

    f = make_images(tmp_path / "images", 4)
    args = ["compare", str(f["reference"]), f"good={f['good']}", f"bad={f['bad']}", "-m", "psnr", "--n-resamples",
            "100", "-o", str(tmp_path / "out"), "--report", str(tmp_path / "rep")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"iqa compare: report: {tmp_path / 'rep' / 'index.html'}" in res.stderr
    data = page_data(tmp_path / "rep" / "index.html")
    rows = {r["reference"]: r for r in read_csv(tmp_path / "out" / "scores" / "bad.csv")}
    bad = next(tm for tm in data["table"]["methods"] if tm["name"] == "bad")
    assert [as_float(v) for v in bad["values"]["psnr"]] == [float(rows[k]["psnr"]) for k in data["table"]["keys"]]
    assert data["provenance"]["command"][:2] == ["iqa", "compare"]
    shutil.rmtree(tmp_path / "out")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and res.stderr.strip().endswith("rep: already exists; pass --overwrite to replace it")
    assert not (tmp_path / "out").exists()


def test_python_report_of_a_comparison_object(comparison, tmp_path):
    """iqa.report takes a Comparison: saved, it reports on its folder; unsaved, it says what
    to do."""
    files = {m: comparison / "scores" / f"{m}.csv" for m in ("good", "bad")}
    unsaved = iqa.compare(None, files, metrics=["psnr"], n_resamples=100)
    with pytest.raises(iqa.IQAError, match=r"not been saved: call its save\(outdir\)"):
        iqa.report(unsaved, tmp_path / "r")
    saved = unsaved.save(tmp_path / "cmp")
    data = page_data(iqa.report(saved, tmp_path / "r", gallery_size=0))
    assert [m["name"] for m in data["methods"]] == ["good", "bad"]
    assert data["summary"]["bad"]["psnr"]["mean"] == saved.summary["bad"]["psnr"]["mean"]


def test_report_into_the_current_folder(single):
    """`-o .` in an empty folder fills it; replacing it keeps the folder (a shell inside it
    stays valid) and leaves nothing beside it."""
    here = Path.cwd()
    assert not any(here.iterdir())
    iqa.report(single, ".", gallery_size=0)
    assert (here / "index.html").is_file() and (here / "plots").is_dir()
    inode = here.stat().st_ino
    iqa.report(single, ".", gallery_size=0, overwrite=True, title="again")
    assert here.stat().st_ino == inode and Path.cwd() == here
    assert page_data(here / "index.html")["title"] == "again"
    assert [p.name for p in here.parent.iterdir() if p.name.startswith(f".{here.name}.")] == []


def _signal_during_plots(monkeypatch, signum):
    """The signal arrives while the report is built (drawing its plots)."""
    import signal as _signal

    def draw_plots(*_args, **_kw):
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal should have stopped the report")  # reached only if it did not

    assert signum in (_signal.SIGINT, _signal.SIGTERM)
    monkeypatch.setattr("iqa.compare.report_figures.draw_plots", draw_plots)


def test_interrupted_report_exits_128_plus_signal_and_leaves_nothing(comparison, tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM while a report is built: exit 128 + signal (not 1, a failed pair),
    one line, no half-built folder; a later run removes what a killed run left behind (its
    owner dead, on this host), never a live run's folder."""
    import signal as _signal

    out = tmp_path / "rep"
    for signum in (_signal.SIGINT, _signal.SIGTERM):
        with monkeypatch.context() as m:
            _signal_during_plots(m, signum)
            res = CliRunner().invoke(main, ["report", str(comparison), "-o", str(out)])
        assert res.exit_code == 128 + signum, (signum, res.output)
        assert res.stderr.strip().splitlines() == [f"iqa report: interrupted while writing the report; {out} is "
                                                   "unchanged; run the command again to write the report"]
        assert sorted(os.listdir(tmp_path)) == []

    from iqa.scoring.sidecar import owner

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = {}
    for label, pid in (("dead", int(dead.stdout)), ("live", os.getppid())):
        folder = tmp_path / f".rep.tmp-{pid}"
        folder.mkdir()
        (folder / ".iqa-owner.json").write_text(json.dumps({"owner": {**owner(), "pid": pid, "start_ticks": None}}))
        leftovers[label] = folder
    no_owner = tmp_path / ".rep.tmp-1"  # no record of its owner: left alone
    no_owner.mkdir()
    iqa.report(comparison, out, gallery_size=0)
    assert not leftovers["dead"].exists() and leftovers["live"].is_dir() and no_owner.is_dir()
    assert not (out / ".iqa-owner.json").exists()


def test_compare_interrupted_while_reporting_says_how_to_finish(comparison, tmp_path, monkeypatch):
    import signal as _signal

    files = [f"--scores={m}={comparison / 'scores' / f'{m}.csv'}" for m in ("good", "bad")]
    out, rep = tmp_path / "out", tmp_path / "rep"
    _signal_during_plots(monkeypatch, _signal.SIGINT)
    res = CliRunner().invoke(main, ["compare", *files, "--n-resamples", "100", "-o", str(out), "--report", str(rep)])
    assert res.exit_code == 130, res.output
    assert res.stderr.strip().splitlines()[-1] == (
        f"iqa compare: interrupted while writing the report; the summaries are written in {out}: run iqa report "
        f"{out} -o {rep}")
    assert (out / "summary.json").is_file() and not rep.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _write_scores(path: Path, rows: list[tuple[str, str, float | None]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "distorted", "psnr", "error"])
        for ref, dist, v in rows:
            w.writerow([ref, dist, "" if v is None else repr(v),
                        "" if v is not None else (f"no distorted partner: {ref}" if not dist else "psnr: failed")])
    return path


def test_paired_plots_use_the_images_of_the_paired_statistics(tmp_path):
    """The differences drawn are those behind the numbers beside them: over the images every
    method scored (a third method lacking three images shrinks every method's set), where
    both values are finite (n_diff)."""
    from iqa.compare.report_data import load_results, paired_values

    refs = [f"{i:02d}.png" for i in range(40)]
    rng = np.random.default_rng(3)
    files = {
        "base": _write_scores(tmp_path / "base.csv", [(r, r, 30 + rng.normal()) for r in refs]),
        "a": _write_scores(tmp_path / "a.csv", [(r, r, math.inf if i in (5, 6) else 31 + rng.normal())
                                                for i, r in enumerate(refs)]),
        "short": _write_scores(tmp_path / "short.csv", [(r, r, 29 + rng.normal()) for r in refs[3:]]),
    }
    c = iqa.compare(None, files, output=tmp_path / "out", n_resamples=100)
    data = load_results(tmp_path / "out")
    metric = data.metrics[0]
    for name in ("a", "short"):
        diffs, infinite, won = paired_values(data, metric, name)
        assert won == (2 if name == "a" else 0)  # a's two infinite values beat the baseline
        p = c.paired[name]["psnr"]
        assert (diffs.size, diffs.size + infinite) == (p["n_diff"], p["n"]) == ((35, 37) if name == "a" else (37, 37))
        assert diffs.mean() == pytest.approx(p["diff"], rel=1e-12)


def test_a_reference_without_partner_is_missing_not_failed(tmp_path):
    scores = _write_scores(tmp_path / "s.csv", [("a.png", "a.png", 30.0), ("b.png", "b.png", None),
                                                ("c.png", "", None), ("d.png", "d.png", 31.0)])
    with pytest.warns(iqa.IQAWarning):
        data = page_data(iqa.report(scores, tmp_path / "r", gallery_size=0))
    s = data["summary"]["s.csv"]["psnr"]
    assert (s["n"], s["failed"], s["missing"]) == (2, 1, 1)
    (tm,) = data["table"]["methods"]
    assert dict(zip(data["table"]["keys"], tm["paired"])) == {"a.png": True, "b.png": True, "c.png": False,
                                                              "d.png": True}


def test_an_image_given_as_results_is_one_line(tmp_path):
    png = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png)
    res = CliRunner().invoke(main, ["report", str(png), "-o", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"iqa: error: {png}: not a CSV/JSON score file (binary content); give iqa " \
                                 "compare's output folder or one iqa score output file"


def test_missing_or_special_results_are_one_line_errors(tmp_path):
    """Like every other input: a missing path is exit 1 with one line (not click's usage
    error), a FIFO is named as one and never opened (opening it would block)."""
    import os

    missing = tmp_path / "nothing"
    res = CliRunner().invoke(main, ["report", str(missing), "-o", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"iqa: error: {missing}: no such file or folder (ENOENT)"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = CliRunner().invoke(main, ["report", str(fifo), "-o", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"iqa: error: {fifo}: a FIFO (named pipe), not a score file or a comparison folder"


def test_a_histogram_of_one_value_is_narrow():
    """One image (or equal values): one narrow bin at the value, not numpy's ±0.5 (half of
    SSIM's range)."""
    from matplotlib.figure import Figure

    from iqa.compare.report_figures import _histograms

    ax = Figure().subplots()
    _histograms(ax, [np.array([0.9]), np.array([0.9])], ["a", "b"])
    low, high = ax.get_xlim()
    assert low < 0.9 < high and high - low < 0.01
