"""The batch scoring engine: pairing, rows, result files, resume, statistics and the pipeline API."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_png
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr

import iqa
import iqa.metrics.lpips
import iqa.scoring.engine
from iqa import registry, scoring
from iqa.errors import IQAError, OptionError, RenamedOptionWarning
from iqa.scoring import ScoreSettings, ScoreStats, pair_folders, score_to_file
from iqa.scoring.maps import MapWriter
from iqa.scoring.rowfile import RowWriter, columns_for, read_rows

SIZE = (192, 200)  # above MS-SSIM's 176 px, small enough to be quick


def image(rng: np.random.Generator, shape=(*SIZE, 3)) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def distort(rng: np.random.Generator, a: np.ndarray, amount: int = 25) -> np.ndarray:
    return np.clip(a.astype(int) + rng.integers(-amount, amount + 1, a.shape), 0, 255).astype(np.uint8)


def strict_json(text: str):
    """json.loads that refuses the non-standard Infinity/NaN constants."""

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def messy(tmp_path: Path, rng: np.random.Generator):
    """A folder pair with good pairs among corrupt, truncated, empty, wrong-size, non-image,
    gray-vs-RGB, too-small and unmatched files. Returns (ref_dir, dist_dir, good names)."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    (ref / "sub").mkdir(parents=True)
    (dist / "sub").mkdir(parents=True)
    good = ["a.png", "sub/b.png", "sub/c.png", "z.png"]
    for name in good:
        a = image(rng)
        write_png(ref / name, a)
        write_png(dist / name, distort(rng, a))
    for name in ["corrupt.png", "truncated.png", "empty.png", "wrongsize.png", "notimage.png", "gray.png"]:
        write_png(ref / name, image(rng))
    (dist / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    full = (ref / "a.png").read_bytes()
    (dist / "truncated.png").write_bytes(full[: len(full) // 2])
    (dist / "empty.png").write_bytes(b"")
    write_png(dist / "wrongsize.png", image(rng, (SIZE[0], SIZE[1] - 1, 3)))
    (dist / "notimage.png").write_text("this is not an image\n")
    write_png(dist / "gray.png", image(rng, SIZE))
    small = image(rng, (64, 80, 3))
    write_png(ref / "small.png", small)
    write_png(dist / "small.png", distort(rng, small))
    write_png(ref / "only_ref.png", image(rng))
    write_png(dist / "sub" / "only_dist.png", image(rng))
    (ref / "notes.txt").write_text("ignored")
    return ref, dist, good


# --------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------


def test_pairing_nested_and_unmatched(messy):
    ref, dist, good = messy
    p = pair_folders(ref, dist)
    names = [j.reference for j in p.pairs]
    assert names == sorted(names)
    assert set(good) <= set(names)
    assert all(j.reference == j.distorted for j in p.pairs)
    assert p.unmatched_reference == ["only_ref.png"]
    assert p.unmatched_distorted == ["sub/only_dist.png"]
    assert p.ignored_reference == ["notes.txt"]
    assert Path(p.pairs[0].reference_path).parent == ref


def test_match_stem(tmp_path, rng):
    ref, dist = tmp_path / "r", tmp_path / "d"
    (ref / "x").mkdir(parents=True)
    (dist / "x").mkdir(parents=True)
    for name in ["a", "x/b", "c"]:
        write_png(ref / f"{name}.png", image(rng, (16, 16, 3)))
    (dist / "a.jpg").write_bytes(b"")
    (dist / "x" / "b.JPG").write_bytes(b"")
    (dist / "c.jpg").write_bytes(b"")
    (dist / "c.webp").write_bytes(b"")
    assert pair_folders(ref, dist).pairs == []  # extensions differ: nothing pairs by full path
    p = pair_folders(ref, dist, match_stem=True)
    assert [(j.reference, j.distorted) for j in p.pairs] == [("a.png", "a.jpg"), ("x/b.png", "x/b.JPG")]
    assert p.ambiguous == ["distorted c.*: several files match (c.jpg, c.webp)"]
    assert p.unmatched_reference == ["c.png"]


def test_pairs_file(tmp_path):
    f = tmp_path / "pairs.csv"
    f.write_text("reference,distorted\nb.png,x/b.png\na.png,/abs/a.png\n\n")
    jobs = scoring.read_pairs_file(f, tmp_path / "R", tmp_path / "D")
    assert [(j.reference, j.distorted) for j in jobs] == [("a.png", "/abs/a.png"), ("b.png", "x/b.png")]
    assert jobs[0].distorted_path == "/abs/a.png"
    assert jobs[1].reference_path == str(tmp_path / "R" / "b.png")
    assert jobs[1].distorted_path == str(tmp_path / "D" / "x" / "b.png")
    f.write_text("ref,dist\na,b\n")
    with pytest.raises(IQAError, match="expected a CSV header"):
        scoring.read_pairs_file(f)
    f.write_text("reference,distorted\na,b\na,b\n")
    with pytest.raises(IQAError, match=":3: pair .* listed twice"):
        scoring.read_pairs_file(f)


def test_pairs_file_with_extra_cells_or_not_utf8(tmp_path):
    f = tmp_path / "pairs.csv"
    f.write_text("reference,distorted\na.png,a.png\np0.png,p0.png,extra\n")
    with pytest.raises(IQAError) as err:
        scoring.read_pairs_file(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}:3: 3 cells but the header has 2") and "\n" not in msg
    # A trailing comma (an empty extra cell) is harmless.
    f.write_text("reference,distorted\na.png,b.png,\n")
    assert [(j.reference, j.distorted) for j in scoring.read_pairs_file(f)] == [("a.png", "b.png")]
    f.write_bytes("reference,distorted\nna\xefve.png,x.png\n".encode("latin-1"))
    with pytest.raises(IQAError) as err:
        scoring.read_pairs_file(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}:2: the pair list is not UTF-8 text (byte 0xef)") and "\n" not in msg


def test_metric_names():
    assert registry.metric_names(["ms-ssim", "psnr,ssim", "psnr"]) == ("psnr", "ssim", "ms_ssim")
    with pytest.raises(OptionError, match="unknown metric 'vif'") as err:
        registry.metric_names(["vif"])
    assert isinstance(err.value, ValueError)  # OptionError is still a ValueError
    with pytest.raises(OptionError, match="fid is a two-set metric"):
        ScoreSettings(metrics=("psnr", "fid"))


# --------------------------------------------------------------------------------------
# Rows and files
# --------------------------------------------------------------------------------------


def run_engine(ref: Path, dist: Path, out: Path | None, **kw):
    settings = kw.pop("settings", None) or ScoreSettings()
    jobs = pair_folders(ref, dist).pairs
    return score_to_file(jobs, out, settings, roots=(str(ref), str(dist)), **kw)


@pytest.mark.parametrize("workers", [0, 3])  # 0: in the main thread; 3: three threads beside it
def test_bad_files_never_lose_good_rows(messy, tmp_path, workers):
    ref, dist, good = messy
    out = tmp_path / "scores.csv"
    run = run_engine(ref, dist, out, workers=workers)
    rows = read_csv(out)
    by_name = {r["reference"]: r for r in rows}
    assert [r["reference"] for r in rows] == sorted(by_name)
    assert list(rows[0]) == ["reference", "distorted", "psnr", "ssim", "ms_ssim", "error"]
    for name in good:
        r = by_name[name]
        a, b = str(ref / name), str(dist / name)
        # Each row holds its own pair's numbers, exactly those of the single-pair functions
        # (the same code on the same decoded pixels: a row of another pair, or other
        # settings, would differ far beyond rounding).
        assert float(r["psnr"]) == iqa.psnr(a, b)
        # And PSNR is the reference's: scikit-image's on the same uint8 pixels (float64 MSE;
        # 1e-12 relative allows another summation order).
        x, y = iqa.read_image(a), iqa.read_image(b)
        assert float(r["psnr"]) == pytest.approx(skimage_psnr(x, y, data_range=255), rel=1e-12, abs=0)
        assert float(r["ssim"]) == iqa.ssim(a, b)
        assert float(r["ms_ssim"]) == iqa.ms_ssim(a, b)
        assert r["error"] == ""
    bad = {
        "corrupt.png": "corrupt.png",
        "truncated.png": "truncated",
        "empty.png": "empty file",
        "wrongsize.png": "does not match reference",
        "notimage.png": "not an image",
        "gray.png": "gray is not compared with RGB",
    }
    for name, reason in bad.items():
        r = by_name[name]
        assert r["psnr"] == r["ssim"] == r["ms_ssim"] == ""
        assert reason in r["error"], r["error"]
        assert "\n" not in r["error"]
    small = by_name["small.png"]  # MS-SSIM does not apply; the other cells still count
    assert small["ms_ssim"] == "" and small["error"].startswith("ms_ssim: ")
    assert float(small["psnr"]) == iqa.psnr(str(ref / "small.png"), str(dist / "small.png"))
    assert run.rows == len(rows) == len(good) + len(bad) + 1
    assert run.failed == len(bad) + 1
    s = run.stats.summary()["metrics"]
    assert s["psnr"]["n"] == len(good) + 1 and s["ms_ssim"]["n"] == len(good)
    assert s["ms_ssim"]["failed"] == len(bad) + 1


def test_formats_agree_and_json_is_strict(tmp_path, rng):
    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    for i in range(3):
        a = image(rng)
        write_png(ref / f"{i}.png", a)
        write_png(dist / f"{i}.png", a if i == 1 else distort(rng, a))  # 1.png: identical
    settings = ScoreSettings.build(("psnr", "ssim"), color="y", crop_border=2)
    outs = {}
    for fmt in scoring.FORMATS:
        outs[fmt] = tmp_path / f"s.{fmt}"
        run_engine(ref, dist, outs[fmt], fmt=fmt, settings=settings)
    rows = read_csv(outs["csv"])
    assert rows[1]["psnr"] == "inf" and rows[1]["error"] == ""
    doc = strict_json(outs["json"].read_text())
    assert doc["metadata"]["settings"]["color"] == "y" and doc["metadata"]["settings"]["crop_border"] == 2
    lines = [strict_json(line) for line in outs["jsonl"].read_text().splitlines()]
    assert doc["rows"] == lines
    for i, (r_csv, r_json) in enumerate(zip(rows, lines)):
        a, b = str(ref / f"{i}.png"), str(dist / f"{i}.png")
        expected_psnr = iqa.psnr(a, b, color="y", crop_border=2)
        assert float(r_csv["psnr"]) == expected_psnr
        # JSON has no infinity: identical images' PSNR is the string "inf", which float() reads.
        assert r_json["psnr"] == (expected_psnr if math.isfinite(expected_psnr) else "inf")
        assert float(r_json["psnr"]) == expected_psnr
        assert float(r_csv["ssim"]) == r_json["ssim"] == iqa.ssim(a, b, color="y", crop_border=2)
    meta = strict_json(scoring.meta_path(outs["csv"]).read_text())
    assert meta["settings"]["iqa_version"] == iqa.__version__
    assert meta["status"] == "done" and meta["rows"] == 3
    assert meta["columns"] == ["reference", "distorted", "psnr", "ssim", "error"]


def test_stream_output_has_only_rows(tmp_path, rng):
    import io

    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    a = image(rng, (40, 40))
    b = distort(rng, a)
    write_png(ref / "a.png", a)
    write_png(dist / "a.png", b)
    buf = io.StringIO()
    run_engine(ref, dist, None, stream=buf, settings=ScoreSettings(metrics=("psnr",)))
    assert buf.getvalue() == f"reference,distorted,psnr,error\na.png,a.png,{iqa.psnr(a, b)!r},\n"
    assert not list(tmp_path.glob("*.meta.json"))


def test_existing_output_is_not_overwritten_silently(messy, tmp_path):
    ref, dist, _ = messy
    out = tmp_path / "s.csv"
    out.write_text("precious\n")
    with pytest.raises(IQAError, match=r"already exists; pass resume=True to continue that run or overwrite=True"):
        run_engine(ref, dist, out)
    assert out.read_text() == "precious\n"
    run_engine(ref, dist, out, overwrite=True)
    assert read_csv(out)[0]["reference"] == "a.png"


@pytest.mark.parametrize("fmt", scoring.FORMATS)
def test_resume_keeps_complete_rows_and_retries_failed(tmp_path, rng, fmt):
    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    imgs = {}
    for i in range(5):
        imgs[i] = image(rng)
        write_png(ref / f"{i}.png", imgs[i])
        write_png(dist / f"{i}.png", distort(rng, imgs[i]))
    (dist / "3.png").write_bytes(b"")  # fails the first time
    out = tmp_path / f"s.{fmt}"
    first = run_engine(ref, dist, out, fmt=fmt)
    assert first.failed == 1
    write_png(dist / "3.png", distort(rng, imgs[3]))

    # Only the failed pair is scored again: the pairs kept from the first run are not even
    # read (made unreadable here, they would fail), and one row is written.
    kept = {i: (dist / f"{i}.png").read_bytes() for i in (0, 1, 2, 4)}
    for i in kept:
        (dist / f"{i}.png").write_bytes(b"")
    written = []
    second = run_engine(ref, dist, out, fmt=fmt, resume=True, on_row=lambda done, total: written.append((done, total)))
    assert written == [(1, 1)]
    assert second.resumed == 4 and second.scored == 1 and second.failed == 0
    for i, data in kept.items():
        (dist / f"{i}.png").write_bytes(data)
    clean = tmp_path / f"clean.{fmt}"
    run_engine(ref, dist, clean, fmt=fmt)
    assert out.read_text() == clean.read_text()


def test_resume_refuses_other_settings(messy, tmp_path):
    ref, dist, _ = messy
    out = tmp_path / "s.csv"
    run_engine(ref, dist, out)
    with pytest.raises(IQAError, match=r"different settings \(color: 'rgb' -> 'y'\)"):
        run_engine(ref, dist, out, resume=True, settings=ScoreSettings.build(color="y"))
    with pytest.raises(IQAError, match="metrics"):
        run_engine(ref, dist, out, resume=True, settings=ScoreSettings(metrics=("psnr",)))
    scoring.meta_path(out).unlink()
    with pytest.raises(IQAError, match="meta.json: missing"):
        run_engine(ref, dist, out, resume=True)


@pytest.mark.parametrize("fmt", scoring.FORMATS)
def test_reading_a_file_cut_mid_row(tmp_path, fmt):
    cols = ["reference", "distorted", "psnr", "error"]
    path = tmp_path / f"s.{fmt}"
    with open(path, "w", newline="") as fh:
        w = RowWriter(fh, fmt, cols, {"x": 1})
        w.write({"reference": "a", "distorted": "a", "psnr": 30.5, "error": ""})
        w.write({"reference": "b", "distorted": "b", "psnr": math.inf, "error": ""})
        w.write({"reference": "c", "distorted": "c", "psnr": None, "error": "c: empty file"})
        w.write({"reference": "d", "distorted": "d", "psnr": 12.25, "error": ""})
    text = path.read_text()
    cut = text[: text.rindex("12.25") + 3]  # killed in the middle of the last row
    path.write_text(cut)
    rows = read_rows(path, fmt, cols)
    assert [r["reference"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["psnr"] == 30.5 and rows[1]["psnr"] == math.inf and rows[2]["psnr"] is None


def test_resume_reads_a_part_file_killed_before_its_header(tmp_path, rng):
    """A torchrun rank killed between creating its part file and writing the header leaves
    it empty (or with part of the header): that holds no row, and the run still resumes."""
    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    for i in range(2):
        a = image(rng, (40, 48, 3))
        write_png(ref / f"{i}.png", a)
        write_png(dist / f"{i}.png", distort(rng, a))
    out = tmp_path / "s.jsonl"
    settings = ScoreSettings(metrics=("psnr",))
    run_engine(ref, dist, out, fmt="jsonl", settings=settings)
    complete = out.read_bytes()
    part = tmp_path / "s.jsonl.part1"
    for text in ("", "reference,dist"):
        part.write_text(text)
        assert read_rows(part, "csv", columns_for(["psnr"])) == []
        again = run_engine(ref, dist, out, fmt="jsonl", settings=settings, resume=True)
        assert (again.resumed, again.scored, again.failed) == (2, 0, 0)
        assert out.read_bytes() == complete
        assert not part.exists()  # merged away


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def test_stats_match_numpy_and_pooled_psnr(rng):
    psnrs = rng.uniform(20, 40, 50)
    ssims = rng.uniform(0.5, 1.0, 50)
    s = ScoreStats(["psnr", "ssim"])
    for p, q in zip(psnrs, ssims):
        s.add({"psnr": float(p), "ssim": float(q)})
    s.add({"psnr": math.inf, "ssim": 1.0})
    s.add({"psnr": None, "ssim": None}, "x: empty file")
    d = s.summary()["metrics"]
    assert d["psnr"]["n"] == 51 and d["psnr"]["identical"] == 1 and d["psnr"]["failed"] == 1
    # Welford's running mean/variance against NumPy's two-pass values: 1e-12 relative
    # covers the different summation order.
    assert d["psnr"]["mean"] == pytest.approx(psnrs.mean(), rel=1e-12)
    assert d["psnr"]["std"] == pytest.approx(psnrs.std(ddof=1), rel=1e-12)
    assert (d["psnr"]["min"], d["psnr"]["max"]) == (psnrs.min(), psnrs.max())
    allssim = np.append(ssims, 1.0)
    assert d["ssim"]["mean"] == pytest.approx(allssim.mean(), rel=1e-12)
    # Pooled PSNR: -10 log10 of the mean normalised MSE, the identical pair counting as 0.
    nmse = np.append(10 ** (-psnrs / 10), 0.0)
    pooled = s.summary("pooled")["metrics"]["psnr"]["mean"]
    assert pooled == pytest.approx(-10 * np.log10(nmse.mean()), rel=1e-12)
    assert s.summary()["pairs"] == 52 and s.summary()["pairs_with_errors"] == 1
    strict_json(json.dumps(s.summary(), allow_nan=False))


def test_stats_merge_equals_one_pass(rng):
    values = rng.uniform(0, 1, 30)
    whole, a, b = ScoreStats(["ssim"]), ScoreStats(["ssim"]), ScoreStats(["ssim"])
    for i, v in enumerate(values):
        whole.add({"ssim": float(v)})
        (a if i < 11 else b).add({"ssim": float(v)})
    a.merge(b)
    for k in ("n", "min", "max"):
        assert a.summary()["metrics"]["ssim"][k] == whole.summary()["metrics"]["ssim"][k]
    for k in ("mean", "std"):
        assert a.summary()["metrics"]["ssim"][k] == pytest.approx(whole.summary()["metrics"]["ssim"][k], rel=1e-13)


# --------------------------------------------------------------------------------------
# The pipeline API
# --------------------------------------------------------------------------------------


def test_scorer_on_tensors_in_a_training_loop(rng):
    scorer = iqa.Scorer(["psnr", "ssim"], data_range=1.0)
    seen = []
    for step in range(3):
        target = torch.from_numpy(rng.uniform(0, 1, (2, 3, 24, 24)))
        output = (target + 0.05 * torch.from_numpy(rng.normal(size=target.shape))).clamp(0, 1)
        output.requires_grad_(True)
        scores = scorer(target, output)
        assert scores["psnr"].shape == (2,)
        loss = 1 - scores["ssim"].mean()
        loss.backward()  # the values stay differentiable
        assert output.grad is not None
        # Same route as a direct call (a tensor needing a gradient takes the torch kernel).
        assert torch.equal(scores["psnr"].detach(), iqa.psnr(target, output, data_range=1.0).detach())
        seen += scores["psnr"].detach().tolist()
    assert scorer.summary()["metrics"]["psnr"]["n"] == 6
    assert scorer.means()["psnr"] == pytest.approx(np.mean(seen), rel=1e-12)
    scorer.reset()
    assert scorer.means()["psnr"] is None


def test_iter_scores_keeps_order_and_captures_errors(tmp_path, rng):
    items = []
    for i in range(6):
        a = image(rng, (32, 32, 3))
        items.append((a, distort(rng, a)))
    items.insert(2, (image(rng, (32, 32, 3)), image(rng, (32, 31, 3))))
    items.append((str(tmp_path / "missing.png"), str(tmp_path / "missing.png")))
    one = list(iqa.iter_scores(items, ["psnr", "ssim"]))
    three = list(iqa.iter_scores(items, ["psnr", "ssim"], workers=3))
    assert [s.values for s in one] == [s.values for s in three]
    assert [s.error for s in one] == [s.error for s in three]
    assert "does not match reference" in one[2].error and one[2].values["psnr"] is None
    assert one[-1].error.endswith("missing.png: no such file")
    for s, (a, b) in zip(one, items):
        if s.ok:
            assert s.values["psnr"] == iqa.psnr(a, b) and s.values["ssim"] == iqa.ssim(a, b)
    assert one[0].reference == "item 0 reference"


def test_score_folders(messy):
    ref, dist, good = messy
    scores = {s.reference: s for s in iqa.score_folders(ref, dist, ["psnr"])}
    for name in good:
        assert scores[name].values["psnr"] == iqa.psnr(str(ref / name), str(dist / name))
    assert not scores["empty.png"].ok


def test_import_stays_light():
    import subprocess
    import sys

    code = "import iqa.scoring, sys; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --------------------------------------------------------------------------------------
# Maps and LPIPS
# --------------------------------------------------------------------------------------


def test_ssim_maps(tmp_path, rng):
    from PIL import Image

    ref, dist = tmp_path / "r", tmp_path / "d"
    (ref / "s").mkdir(parents=True)
    (dist / "s").mkdir(parents=True)
    a = image(rng, (40, 48, 3))
    write_png(ref / "s" / "a.png", a)
    write_png(dist / "s" / "a.png", distort(rng, a))
    (ref / "b.png").write_bytes(b"")
    (dist / "b.png").write_bytes(b"")
    maps = tmp_path / "maps"
    run_engine(ref, dist, tmp_path / "o.csv", maps_dir=maps, settings=ScoreSettings(metrics=("psnr", "ssim")))
    assert sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png")) == ["ssim/s/a.png.png"]
    with Image.open(maps / "ssim" / "s" / "a.png.png") as im:
        assert im.mode == "RGB" and im.width > 48
    writer = MapWriter(maps)
    # Every map stays inside the folder, and no two names share one.
    assert writer.path("ssim", "/abs/../x.jpg") == maps / "ssim" / "%2F" / "abs" / "%2E%2E" / "x.jpg.png"
    names = ["a.jpg", "a.jpg.png", "a.png", "a%2Ejpg", "./a.jpg", "sub/a.jpg", "sub\\a.jpg", "../sub/a.jpg"]
    assert len({writer.path("ssim", n) for n in names}) == len(names)



def test_lpips_column_batched_equals_single_pair(tmp_path, rng, squeeze_weights):
    from iqa.metrics.lpips import lpips as lpips_one

    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    shapes = {"a": (40, 48, 3), "b": (40, 48, 3), "c": (36, 30, 3), "d": (40, 48, 3), "e": (40, 48), "f": (12, 12, 3)}
    for name, shape in shapes.items():
        a = image(rng, shape)
        write_png(ref / f"{name}.png", a)
        write_png(dist / f"{name}.png", distort(rng, a, 60))
    # Six images per network call: three pairs.
    settings = ScoreSettings.build(("psnr", "lpips"), lpips_net="squeeze", weights=squeeze_weights, device="cpu",
                                   batch_size=6)
    out = tmp_path / "s.json"
    maps = tmp_path / "maps"
    run = run_engine(ref, dist, out, fmt="json", settings=settings, maps_dir=maps)
    doc = strict_json(out.read_text())
    rows = {r["reference"][:-4]: r for r in doc["rows"]}
    for name in "abcde":
        expected = lpips_one(str(ref / f"{name}.png"), str(dist / f"{name}.png"), net="squeeze",
                             weights=squeeze_weights, device="cpu")
        assert expected > 1e-3
        # Batched float32 convolutions may sum in another order than one image at a time:
        # 1e-6 relative is a few float32 ulps, far below the spread between images.
        assert rows[name]["lpips"] == pytest.approx(expected, rel=1e-6, abs=0)
        assert rows[name]["error"] == ""
    assert rows["f"]["lpips"] is None and rows["f"]["error"].startswith("lpips: ")
    assert "too small for LPIPS-squeeze" in rows["f"]["error"]
    assert rows["f"]["psnr"] is not None  # the other metric of the row still counts
    assert run.failed == 1
    lp = doc["metadata"]["settings"]["lpips"]
    assert lp["net"] == "squeeze" and lp["backbone"]["source"] == "user"
    assert len(lp["backbone"]["sha256"]) == 64
    assert sorted(p.name for p in (maps / "lpips").glob("*.png")) == [f"{n}.png.png" for n in "abcde"]


def test_a_weights_file_goes_to_the_backbone_of_the_chosen_net(squeeze_weights):
    # One file for the one network that runs: SqueezeNet's, as lpips_net asks (not AlexNet's,
    # the default); the former keyword still works, with a warning.
    new = ScoreSettings.build(("psnr", "lpips"), lpips_net="squeeze", weights=squeeze_weights)
    with pytest.warns(RenamedOptionWarning, match="lpips_weights= is now called weights="):
        old = ScoreSettings.build(("psnr", "lpips"), lpips_net="squeeze", lpips_weights=squeeze_weights)
    assert new.runtime.weights == old.runtime.weights == {"squeezenet1_1": str(squeeze_weights)}
    assert new.provenance()["lpips"]["backbone"]["source"] == "user"


def test_missing_lpips_weights_stop_the_run(tmp_path, rng):
    from iqa.errors import WeightsError

    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    a = image(rng, (40, 48, 3))
    write_png(ref / "a.png", a)
    write_png(dist / "a.png", a)
    settings = ScoreSettings.build(("psnr", "lpips"), lpips_net="squeeze", weights=tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="nope.pth: no such file"):
        run_engine(ref, dist, tmp_path / "s.csv", settings=settings)


def test_stats_split_and_merge_property():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.lists(
        st.one_of(st.floats(0, 100, allow_nan=False), st.just(math.inf), st.none()), min_size=0, max_size=40
    )

    @settings(max_examples=60, deadline=None)
    @given(values, st.integers(0, 40))
    def check(vals, cut):
        cut = min(cut, len(vals))
        whole, left, right = ScoreStats(["psnr"]), ScoreStats(["psnr"]), ScoreStats(["psnr"])
        for i, v in enumerate(vals):
            whole.add({"psnr": v}, "" if v is not None else "failed")
            (left if i < cut else right).add({"psnr": v}, "" if v is not None else "failed")
        left.merge(right)
        a, b = left.summary("pooled"), whole.summary("pooled")
        assert a["pairs"] == b["pairs"] and a["pairs_with_errors"] == b["pairs_with_errors"]
        for k in ("n", "identical", "failed", "min", "max"):
            assert a["metrics"]["psnr"][k] == b["metrics"]["psnr"][k]
        for k in ("mean", "std"):
            x, y = a["metrics"]["psnr"][k], b["metrics"]["psnr"][k]
            assert (x is None) == (y is None)
            if x is not None:  # Chan's merge vs Welford's one pass: round-off only
                assert x == pytest.approx(y, rel=1e-9, abs=1e-9)

    check()


# --------------------------------------------------------------------------------------
# Review fixes: unwritable output, infinity in JSON, device, LPIPS memory, notes
# --------------------------------------------------------------------------------------


def test_unwritable_output_fails_before_any_pair_is_scored(messy):
    ref, dist, _ = messy
    # /proc takes no new files, even for root.
    with pytest.raises(IQAError) as err:
        run_engine(ref, dist, Path("/proc/x.csv"), on_row=lambda *a: pytest.fail("a pair was scored"))
    msg = str(err.value)
    assert msg.startswith("/proc/x.csv: cannot create files in /proc: ") and "\n" not in msg


def test_json_keeps_infinite_psnr_when_another_metric_fails(tmp_path, rng):
    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    a = image(rng, (50, 50, 3))  # identical, and too small for MS-SSIM
    write_png(ref / "a.png", a)
    write_png(dist / "a.png", a)
    settings = ScoreSettings(metrics=("psnr", "ms_ssim"))
    for fmt in ("json", "jsonl"):
        out = tmp_path / f"s.{fmt}"
        run = run_engine(ref, dist, out, fmt=fmt, settings=settings)
        text = out.read_text()
        doc = strict_json(text) if fmt == "json" else {"rows": [strict_json(x) for x in text.splitlines()]}
        (row,) = doc["rows"]
        assert row["psnr"] == "inf" and float(row["psnr"]) == math.inf
        assert row["ms_ssim"] is None and row["error"].startswith("ms_ssim: ")
        assert run.stats.summary()["metrics"]["psnr"]["identical"] == 1
        (back,) = read_rows(out, fmt, columns_for(settings.metrics))
        assert back["psnr"] == math.inf and back["ms_ssim"] is None
        meta = strict_json(scoring.meta_path(out).read_text())
        assert '"inf"' in meta["non_finite"]


def test_unavailable_cuda_is_refused_once_up_front(tmp_path, rng):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(OptionError, match="CUDA is not available.*use device='cpu'"):
        ScoreSettings.build(("psnr", "lpips"), device="cuda")
    with pytest.raises(OptionError, match="device must be"):
        ScoreSettings.build(device="gpu")
    ScoreSettings.build(("psnr",), device="cuda")  # no network metric: the device is unused


def test_lpips_buffer_is_float32_and_bounded_by_pixels(tmp_path, rng, squeeze_weights, monkeypatch):
    import tracemalloc

    from iqa.metrics.lpips import lpips as lpips_one

    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    h, w, n = 96, 112, 8
    for i in range(n):
        a = image(rng, (h, w, 3))
        write_png(ref / f"{i}.png", a)
        write_png(dist / f"{i}.png", distort(rng, a, 60))
    # 32 images per network call (16 pairs): the buffer's pixel bound is what limits batches.
    settings = ScoreSettings.build(("lpips",), lpips_net="squeeze", weights=squeeze_weights, device="cpu",
                                   batch_size=32)
    seen = []
    real = iqa.metrics.lpips.compute_lpips

    def spy(pair, *args, **kwargs):
        seen.append((pair.reference.dtype, pair.reference.shape[0]))
        return real(pair, *args, **kwargs)

    # The registry looks the kernel up by name on each call.
    monkeypatch.setattr(iqa.metrics.lpips, "compute_lpips", spy)
    monkeypatch.setattr(iqa.scoring.engine, "BUFFER_PIXELS", 2 * h * w)  # two pairs per buffer
    run_engine(ref, dist, tmp_path / "warm.csv", settings=settings)  # build the net
    seen.clear()
    tracemalloc.start()
    try:
        run_engine(ref, dist, tmp_path / "s.csv", settings=settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [(np.float32, 2)] * (n // 2)  # float32, and batches bounded by pixels
    # NumPy memory at the peak (tracemalloc sees NumPy's buffers, not torch's): a bounded
    # buffer and its batch in float32 plus the pair being decoded in float64, measured at
    # 2.3 to 4.1 float64 pairs. Holding all 8 pairs in float64 and concatenating them, as
    # before, measured 16.1; an unbounded float32 buffer of 8 pairs, 8.05.
    pair64 = 2 * h * w * 3 * 8
    assert peak < 8 * pair64, peak / pair64
    for r in read_csv(tmp_path / "s.csv"):
        expected = lpips_one(str(ref / r["reference"]), str(dist / r["distorted"]), net="squeeze",
                             weights=squeeze_weights, device="cpu")
        assert float(r["lpips"]) == pytest.approx(expected, rel=1e-6, abs=0)  # as in the batched test


def test_opaque_alpha_dropped_is_counted_in_the_sidecar_and_summary(tmp_path, rng):
    ref, dist = tmp_path / "r", tmp_path / "d"
    ref.mkdir()
    dist.mkdir()
    for i in range(3):
        a = image(rng, (40, 48, 4))
        a[..., 3] = 255  # fully opaque
        b = distort(rng, a)
        b[..., 3] = 255
        write_png(ref / f"{i}.png", a if i else a[..., :3])  # 0.png: plain RGB, no note
        write_png(dist / f"{i}.png", b if i else b[..., :3])
    out = tmp_path / "s.csv"
    run = run_engine(ref, dist, out, settings=ScoreSettings(metrics=("psnr",)))
    note = "alpha channel fully opaque: dropped"
    assert run.stats.summary()["notes"] == {note: 2}
    assert f"note: {note}: 2 pair(s)" in scoring.format_summary(run.stats.summary())
    assert strict_json(scoring.meta_path(out).read_text())["notes"] == {note: 2}
    assert read_csv(out)[1]["error"] == ""  # a note is not an error
    scores = list(scoring.iter_scores([(ref / "1.png", dist / "1.png")], ["psnr"]))
    assert scores[0].notes == (note,)
