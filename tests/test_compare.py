"""The statistics of ``iqa.compare`` against scipy and hand-computed cases, and the Python API
on generated score files (n >= 30 where a test decides significance)."""

from __future__ import annotations

import csv
import io
import json
import math
import zlib

import numpy as np
import pytest
import scipy.stats

import iqa
from iqa.compare.run import SUMMARY_COLUMNS, Comparison, compare
from iqa.compare.stats import Bootstrap, holm, outcomes, paired_statistics, signed_rank_differences, summary_statistics
from iqa.errors import IQAError, OptionError

N_RESAMPLES = 2000  # fewer than the default 10,000: these tests check conventions, not precision


def boot(method: str = "bca", seed: int = 0) -> Bootstrap:
    return Bootstrap(method=method, n_resamples=N_RESAMPLES, seed=seed)


def write_scores(path, refs, columns: dict[str, list[float | None]]) -> str:
    """A score file as ``iqa score`` writes it (CSV; inf as 'inf', a failed cell empty)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "distorted", *columns, "error"])
        for i, ref in enumerate(refs):
            cells = [columns[c][i] for c in columns]
            failed = [c for c, v in zip(columns, cells) if v is None]
            w.writerow([ref, ref, *("" if v is None else repr(float(v)) for v in cells),
                        "; ".join(f"{c}: failed" for c in failed)])
    return str(path)


@pytest.fixture
def three_methods(tmp_path, rng):
    """40 images; ``good`` is 0.5 dB better than ``base`` on average (sd 0.5), ``same`` equals
    ``base``; LPIPS (lower is better) moves the other way for ``good``."""
    n = 40
    refs = [f"img{i:03d}.png" for i in range(n)]
    psnr = rng.normal(30, 2, n)
    lpips = rng.uniform(0.1, 0.4, n)
    good_psnr = psnr + rng.normal(0.5, 0.5, n)
    good_lpips = lpips - rng.uniform(0.01, 0.05, n)
    files = {
        "base": write_scores(tmp_path / "base.csv", refs, {"psnr": list(psnr), "lpips": list(lpips)}),
        "good": write_scores(tmp_path / "good.csv", refs, {"psnr": list(good_psnr), "lpips": list(good_lpips)}),
        "same": write_scores(tmp_path / "same.csv", refs, {"psnr": list(psnr), "lpips": list(lpips)}),
    }
    return files, {"psnr": psnr, "lpips": lpips, "good_psnr": good_psnr, "good_lpips": good_lpips}


# ---------------------------------------------------------------------------------------
# stats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_interval_is_scipy_bootstrap_with_the_recorded_generator(rng, method):
    x = rng.gamma(2.0, 1.5, 50)  # skewed, so BCa and percentile differ
    got = summary_statistics(x, boot(method, seed=7), "mean/m/psnr")
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=N_RESAMPLES, method={"bca": "BCa"}.get(method, method),
                                rng=np.random.default_rng([7, zlib.crc32(b"mean/m/psnr")]))
    # Same generator, same resamples: equal but for the order of float sums in batches.
    assert got["ci_low"] == pytest.approx(ref.confidence_interval.low, rel=1e-12)
    assert got["ci_high"] == pytest.approx(ref.confidence_interval.high, rel=1e-12)
    assert got["ci_method"] == {"bca": "BCa"}.get(method, method)
    assert got["mean"] == pytest.approx(x.mean(), rel=1e-15)
    assert got["median"] == pytest.approx(np.median(x), rel=1e-15)
    assert got["std"] == pytest.approx(x.std(ddof=1), rel=1e-14)


def test_percentile_interval_by_hand(rng):
    """Independent of scipy: draw the resamples, take their means' 2.5 and 97.5 percentiles."""
    x = rng.normal(10, 3, 35)
    got = summary_statistics(x, boot("percentile", seed=3), "lbl")
    idx = np.random.default_rng([3, zlib.crc32(b"lbl")]).integers(0, x.size, (N_RESAMPLES, x.size))
    means = x[idx].mean(axis=1)
    assert got["ci_low"] == pytest.approx(np.percentile(means, 2.5), rel=1e-12)
    assert got["ci_high"] == pytest.approx(np.percentile(means, 97.5), rel=1e-12)


def test_bootstrap_memory_is_batched(rng, monkeypatch):
    calls = []
    real = scipy.stats.bootstrap

    def spy(*args, **kwargs):
        calls.append(kwargs["batch"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.stats, "bootstrap", spy)
    x = rng.normal(size=5000)
    got = Bootstrap(n_resamples=N_RESAMPLES).interval(x, "big")
    assert calls and all(b * x.size <= (1 << 20) for b in calls)  # ≤ 1M values per batch, not 10M
    assert got[0] < x.mean() < got[1]


def test_seeded_results_are_reproducible_and_the_seed_matters(rng):
    x = rng.normal(size=40)
    a = summary_statistics(x, boot(seed=1), "l")
    assert summary_statistics(x, boot(seed=1), "l") == a
    assert summary_statistics(x, boot(seed=2), "l")["ci_low"] != a["ci_low"]


def test_degenerate_samples():
    b = boot()
    empty = summary_statistics([], b, "e")
    assert empty == {"n": 0, "n_inf": 0, "mean": None, "median": None, "std": None, "ci_low": None,
                     "ci_high": None, "ci_method": None}
    one = summary_statistics([3.5], b, "o")
    assert (one["mean"], one["std"], one["ci_low"], one["ci_high"]) == (3.5, None, None, None)
    const = summary_statistics([0.25] * 30, b, "c")  # scipy alone: NaN interval and a warning
    assert (const["ci_low"], const["ci_high"], const["std"], const["ci_method"]) == (0.25, 0.25, 0.0, "constant")


def test_infinite_values_are_counted_and_left_out_of_the_mean():
    s = summary_statistics([30.0, math.inf, 32.0, math.inf, 34.0], boot(), "i")
    assert (s["n"], s["n_inf"], s["mean"], s["median"]) == (5, 2, 32.0, 32.0)
    only_inf = summary_statistics([math.inf, math.inf], boot(), "i")
    assert (only_inf["n"], only_inf["n_inf"], only_inf["mean"]) == (2, 2, None)
    with pytest.raises(ValueError, match="NaN"):
        summary_statistics([1.0, math.nan], boot(), "i")


def test_known_difference_is_significant_and_matches_scipy(rng):
    x = rng.normal(30, 2, 40)
    y = x + rng.normal(0.5, 0.5, 40)
    p = paired_statistics(y, x, True, boot(), "diff/y/psnr")
    assert p["n"] == p["n_diff"] == 40
    assert p["diff"] == pytest.approx((y - x).mean(), rel=1e-13)
    assert 0 < p["ci_low"] < p["diff"] < p["ci_high"]
    assert p["p_value"] == scipy.stats.wilcoxon(y - x, zero_method="zsplit").pvalue
    assert p["p_value"] < 1e-4
    assert p["wins"] == int((y > x).sum()) and p["win_rate"] == pytest.approx(p["wins"] / 40)
    ref = scipy.stats.bootstrap((y - x,), np.mean, n_resamples=N_RESAMPLES,
                                rng=np.random.default_rng([0, zlib.crc32(b"diff/y/psnr")]))
    assert p["ci_low"] == pytest.approx(ref.confidence_interval.low, rel=1e-12)


def test_identical_methods_give_p_one(rng):
    x = rng.normal(30, 2, 40)
    p = paired_statistics(x, x.copy(), True, boot(), "d")
    assert p["p_value"] == 1.0
    assert (p["diff"], p["ci_low"], p["ci_high"]) == (0.0, 0.0, 0.0)
    assert (p["wins"], p["ties"], p["losses"]) == (0, 40, 0)


def test_zero_differences_are_split_not_dropped(rng):
    x = rng.normal(size=40)
    y = x + rng.normal(0.3, 1.0, 40)
    y[:12] = x[:12]  # 12 ties
    got = paired_statistics(y, x, True, boot(), "d")["p_value"]
    assert got == scipy.stats.wilcoxon(y - x, zero_method="zsplit").pvalue
    assert got != pytest.approx(scipy.stats.wilcoxon(y - x, zero_method="wilcox").pvalue, rel=1e-3)


def test_direction_of_better():
    hi, lo = [31.0, 30.0, 29.0], [30.0, 30.0, 30.0]
    assert outcomes(hi, lo, higher_is_better=True) == (1, 1, 1)
    assert outcomes([0.1, 0.3], [0.2, 0.2], higher_is_better=False) == (1, 0, 1)
    assert outcomes([0.1, 0.1], [0.2, 0.2], higher_is_better=False) == (2, 0, 0)


def test_infinite_psnr_in_paired_differences():
    inf = math.inf
    a = np.array([inf, inf, 31.0, 30.0, 28.0])
    b = np.array([inf, 35.0, inf, 29.0, 29.5])
    p = paired_statistics(a, b, True, boot(), "d")
    # inf - inf ties; inf beats 35 (win); 31 loses to inf; then one win and one loss.
    assert (p["wins"], p["ties"], p["losses"]) == (2, 1, 2)
    assert (p["n"], p["n_diff"], p["n_inf"]) == (5, 2, 3)
    assert p["diff"] == pytest.approx(((30 - 29) + (28 - 29.5)) / 2)
    d = signed_rank_differences(a, b)
    assert list(d) == [0.0, 2.5, -2.5, 1.0, -1.5]  # ±(largest finite |d| + 1) keeps the ranks
    assert p["p_value"] == scipy.stats.wilcoxon(d, zero_method="zsplit").pvalue


def test_direction_follows_the_test_not_the_finite_mean():
    """30 images identical to the reference (inf) beat the baseline; 10 finite ones lose by
    more than the finite mean can see: the test says better, and so must the direction."""
    inf = math.inf
    base = np.full(40, 30.0)
    most = np.concatenate([np.full(30, inf), np.full(10, 29.0)])
    p = paired_statistics(most, base, True, boot(), "d")
    assert p["diff"] == -1.0 and (p["wins"], p["losses"]) == (30, 10)
    assert p["direction"] == "better"
    d = signed_rank_differences(most, base)
    # The same sign as scipy's one-sided tests say: 'greater' is the smaller p-value.
    greater = scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="greater").pvalue
    less = scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="less").pvalue
    assert greater < less
    # Lower-is-better flips the word, not the statistic; all inf (identical to the reference)
    # is better with no finite difference at all.
    assert paired_statistics(most, base, False, boot(), "d")["direction"] == "worse"
    perfect = paired_statistics(np.full(40, inf), base, True, boot(), "d")
    assert perfect["diff"] is None and perfect["direction"] == "better" and perfect["n_diff"] == 0
    same = paired_statistics(base, base, True, boot(), "d")
    assert same["direction"] is None and same["p_value"] == 1.0
    assert paired_statistics([inf], [30.0], True, boot(), "d")["direction"] is None  # no test, no direction


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, None, 0.04]) == pytest.approx([0.04, None, 0.04])  # None is outside the family
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_holm_equals_its_definition_on_random_families(rng):
    """Against the definition written out: p_holm(i) = max over j <= i of min(1, (m - j + 1) p(j))."""
    for m in (1, 2, 5, 13):
        p = list(rng.uniform(0, 0.2, m))
        order = sorted(range(m), key=lambda i: p[i])
        expected = [0.0] * m
        for rank, i in enumerate(order):
            expected[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
        assert holm(p) == pytest.approx(expected, rel=1e-15)


def test_bootstrap_options_are_checked():
    for kw, word in [({"method": "bc"}, "ci_method"), ({"n_resamples": 10}, "n_resamples"),
                     ({"seed": -1}, "seed"), ({"confidence": 95.0}, "confidence")]:
        with pytest.raises(OptionError, match=word):
            Bootstrap(**kw)


# ---------------------------------------------------------------------------------------
# compare() on score files
# ---------------------------------------------------------------------------------------


def test_compare_score_files(three_methods, tmp_path):
    files, truth = three_methods
    c = compare(None, files, output=tmp_path / "out", n_resamples=N_RESAMPLES)
    assert isinstance(c, Comparison) and c.baseline == "base" and c.metrics == ["psnr", "lpips"]
    assert c.summary["good"]["psnr"]["mean"] == pytest.approx(truth["good_psnr"].mean(), rel=1e-13)
    good = c.paired["good"]
    assert good["psnr"]["significant"] and good["psnr"]["diff"] > 0 and good["psnr"]["win_rate"] > 0.7
    # LPIPS: lower is better, so the lower values of `good` are wins.
    assert good["lpips"]["diff"] < 0 and good["lpips"]["win_rate"] == 1.0 and good["lpips"]["significant"]
    same = c.paired["same"]
    assert same["psnr"]["p_value"] == 1.0 and same["psnr"]["tie_rate"] == 1.0 and not same["psnr"]["significant"]
    ps = [c.paired[m][k]["p_value"] for m in ("good", "same") for k in ("psnr", "lpips")]
    assert [c.paired[m][k]["p_holm"] for m in ("good", "same") for k in ("psnr", "lpips")] == holm(ps)
    info = {m["column"]: m for m in c.metadata["metrics"]}
    assert info["psnr"]["direction"] == "higher" and info["lpips"]["direction"] == "lower"
    assert info["psnr"]["value_range"] == [0.0, None] and info["psnr"]["unit"] == "dB"
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc == c.to_dict() and doc["format"] == "iqa-compare/1" and doc["n_common"] == 40
    assert Comparison.load(tmp_path / "out").to_dict() == doc
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "summary.csv").read_text())))
    assert [list(r) for r in rows[:1]] == [list(SUMMARY_COLUMNS)] and len(rows) == 6
    row = next(r for r in rows if r["method"] == "good" and r["metric"] == "psnr")
    assert float(row["diff"]) == good["psnr"]["diff"] and int(row["n_paired"]) == 40
    assert next(r for r in rows if r["method"] == "base")["p_value"] == ""


def test_baseline_choice_flips_the_sign(three_methods):
    files, _ = three_methods
    c = compare(None, files, baseline="good", n_resamples=N_RESAMPLES)
    assert c.baseline == "good" and set(c.paired) == {"base", "same"}
    assert c.paired["base"]["psnr"]["diff"] < 0 and c.paired["base"]["lpips"]["diff"] > 0
    with pytest.raises(OptionError, match="baseline"):
        compare(None, files, baseline="nope")


def test_a_method_missing_images_is_paired_on_the_common_ones(tmp_path, rng):
    refs = [f"{i:02d}.png" for i in range(36)]
    a, b = rng.normal(30, 1, 36), rng.normal(31, 1, 36)
    fa = write_scores(tmp_path / "a.csv", refs, {"psnr": list(a)})
    fb = write_scores(tmp_path / "b.csv", refs[3:], {"psnr": list(b[3:])})  # b lacks 00..02
    c = compare(None, {"a": fa, "b": fb}, n_resamples=N_RESAMPLES)
    assert c.metadata["n_common"] == 33 and c.paired["b"]["psnr"]["n"] == 33
    methods = {m["name"]: m for m in c.metadata["methods"]}
    assert methods["b"]["missing"] == ["00.png", "01.png", "02.png"] and methods["a"]["missing"] == []
    assert c.summary["a"]["psnr"]["n"] == 36 and c.summary["b"]["psnr"]["n"] == 33  # each its own images
    assert c.paired["b"]["psnr"]["diff"] == pytest.approx((b[3:] - a[3:]).mean(), rel=1e-12)
    assert "b: 3 image(s) missing: 00.png, 01.png, 02.png" in c.format_table()


def test_failed_cells_leave_the_paired_set_of_that_metric_only(tmp_path, rng):
    refs = [f"{i:02d}.png" for i in range(30)]
    a = list(rng.normal(0.8, 0.05, 30))
    b = list(rng.normal(0.8, 0.05, 30))
    b_ms = list(b)
    b_ms[5] = None
    fa = write_scores(tmp_path / "a.csv", refs, {"ssim": a, "ms_ssim": a})
    fb = write_scores(tmp_path / "b.csv", refs, {"ssim": b, "ms_ssim": b_ms})
    c = compare(None, {"a": fa, "b": fb}, n_resamples=N_RESAMPLES)
    assert c.paired["b"]["ssim"]["n"] == 30 and c.paired["b"]["ms_ssim"]["n"] == 29
    assert c.metadata["n_common"] == 29
    b_info = next(m for m in c.metadata["methods"] if m["name"] == "b")
    assert b_info["failed"] == ["05.png"] and b_info["n_failed"] == 1 and b_info["missing"] == []


def test_an_empty_method_gives_nulls(tmp_path, rng):
    refs = [f"{i:02d}.png" for i in range(30)]
    fa = write_scores(tmp_path / "a.csv", refs, {"psnr": list(rng.normal(30, 1, 30))})
    fb = write_scores(tmp_path / "b.csv", refs, {"psnr": [None] * 30})
    c = compare(None, {"a": fa, "b": fb}, n_resamples=N_RESAMPLES)
    assert c.summary["b"]["psnr"]["n"] == 0 and c.summary["b"]["psnr"]["mean"] is None
    p = c.paired["b"]["psnr"]
    assert p["n"] == 0 and p["diff"] is None and p["p_value"] is None and p["p_holm"] is None
    assert not p["significant"]
    json.dumps(c.to_dict(), allow_nan=False)


def test_holm_family_in_the_table_counts_only_tests(tmp_path, rng):
    refs = [f"{i:02d}.png" for i in range(30)]
    fa = write_scores(tmp_path / "a.csv", refs, {"psnr": list(rng.normal(30, 1, 30)), "ssim": [0.5] * 30})
    fb = write_scores(tmp_path / "b.csv", refs, {"psnr": list(rng.normal(31, 1, 30)), "ssim": [None] * 30})
    c = compare(None, {"a": fa, "b": fb}, n_resamples=N_RESAMPLES)
    assert c.paired["b"]["ssim"]["p_value"] is None and c.paired["b"]["psnr"]["p_value"] is not None
    assert "p_holm: Holm over 1 test(s)" in c.format_table()
    assert c.paired["b"]["psnr"]["p_holm"] == c.paired["b"]["psnr"]["p_value"]  # a family of one


def test_summary_csv_has_every_paired_count_and_the_direction(tmp_path):
    """n_diff, the interval methods, significance, direction and the counts are in
    summary.csv as in summary.json; the text table shows n_diff and the test's direction."""
    refs = [f"{i:02d}.png" for i in range(40)]
    base = [30.0 + i / 100 for i in range(40)]
    most = [math.inf] * 30 + [29.0 + i / 100 for i in range(10)]
    c = compare(None, {"base": write_scores(tmp_path / "base.csv", refs, {"psnr": base}),
                       "most": write_scores(tmp_path / "most.csv", refs, {"psnr": most})},
                output=tmp_path / "out", n_resamples=N_RESAMPLES)
    with open(tmp_path / "out" / "summary.csv", newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    p = c.paired["most"]["psnr"]
    assert p["diff"] < 0 and p["significant"] and p["direction"] == "better"
    r = rows["most"]
    assert (r["n_paired"], r["n_diff"], r["wins"], r["ties"], r["losses"]) == ("40", "10", "30", "0", "10")
    assert (r["significant"], r["direction"], r["diff_ci_method"]) == ("True", "better", p["ci_method"])
    assert r["ci_method"] == c.summary["most"]["psnr"]["ci_method"]
    assert rows["base"]["direction"] == "" and rows["base"]["ci_method"] == c.summary["base"]["psnr"]["ci_method"]
    line = [t for t in c.format_table().splitlines() if t.startswith("most ")][-1]  # the paired table's
    assert line.split()[2:4] == ["40", "10"] and " better " in line and "30/0/10" in line
    assert c.metadata["statistics"]["std"].startswith("sample standard deviation (ddof=1)")


def test_psnr_inf_through_compare(tmp_path):
    refs = [f"{i:02d}.png" for i in range(30)]
    a = [math.inf] * 10 + [30.0 + i / 10 for i in range(20)]
    b = [math.inf] * 5 + [40.0] * 5 + [29.0 + i / 10 for i in range(20)]
    c = compare(None, {"b": write_scores(tmp_path / "b.csv", refs, {"psnr": b}),
                       "a": write_scores(tmp_path / "a.csv", refs, {"psnr": a})}, n_resamples=N_RESAMPLES)
    assert c.summary["a"]["psnr"]["n_inf"] == 10 and c.summary["a"]["psnr"]["n"] == 30
    assert c.summary["a"]["psnr"]["mean"] == pytest.approx(np.mean(a[10:]))
    p = c.paired["a"]["psnr"]
    assert (p["wins"], p["ties"], p["losses"]) == (25, 5, 0) and (p["n_diff"], p["n_inf"]) == (20, 10)
    assert p["diff"] == pytest.approx(1.0)
    assert "inf" in c.metadata["statistics"]["inf"]


def test_json_score_files_and_their_sidecar_settings(tmp_path, rng):
    refs = [f"{i:02d}.png" for i in range(30)]
    fa = write_scores(tmp_path / "a.csv", refs, {"psnr": list(rng.normal(30, 1, 30))})
    rows = [{"reference": r, "distorted": r, "psnr": v, "error": ""} for r, v in zip(refs, rng.normal(30, 1, 30))]
    rows[0]["psnr"] = "inf"
    (tmp_path / "b.json").write_text(json.dumps({"metadata": {"settings": {"crop_border": 4}},
                                                 "columns": list(rows[0]), "rows": rows}))
    (tmp_path / "a.csv.meta.json").write_text(json.dumps({"settings": {"crop_border": 0}, "status": "complete"}))
    with pytest.warns(iqa.IQAWarning, match="other settings .*crop_border"):
        c = compare(None, {"a": fa, "b": str(tmp_path / "b.json")}, n_resamples=N_RESAMPLES)
    assert c.summary["b"]["psnr"]["n_inf"] == 1
    assert c.metadata["settings"] == {"crop_border": 0}


@pytest.mark.parametrize("content, message", [
    ("reference,distorted,psnr,error\na.png,a.png,abc,\n", "a.csv:2: psnr is 'abc', not a number"),
    ("reference,distorted,psnr,error\na.png,a.png,nan,\n", "NaN"),
    ("ref,dist,psnr\na.png,a.png,1\n", "no 'reference' column"),
    ("reference,distorted,psnr,error\na.png,x.png,1,\na.png,y.png,2,\n", "reference a.png has two rows"),
    ("reference,distorted,error\na.png,a.png,\n", "no metric column in common"),
])
def test_bad_score_files_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "a.csv").write_text(content)
    with pytest.raises(IQAError, match=message):
        compare(None, {"a": str(tmp_path / "a.csv")})


def test_unfinished_score_file_is_refused(tmp_path):
    write_scores(tmp_path / "a.csv", ["x.png"], {"psnr": [30.0]})
    (tmp_path / "a.csv.meta.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(IQAError, match="has not finished"):
        compare(None, {"a": str(tmp_path / "a.csv")})


def test_bad_arguments(three_methods, tmp_path):
    files, _ = three_methods
    with pytest.raises(OptionError, match="method name"):
        compare(None, {"a/b": files["base"]})
    with pytest.raises(OptionError, match="alpha"):
        compare(None, files, alpha=1.5)
    with pytest.raises(OptionError, match="every method is a score file"):
        compare(None, files, data_range=255)
    with pytest.raises(IQAError, match="no such folder or score file"):
        compare(None, {"a": str(tmp_path / "nothing")})
    with pytest.raises(OptionError, match="output"):
        compare(str(tmp_path), {"a": str(tmp_path)})
    compare(None, files, output=tmp_path / "o", n_resamples=N_RESAMPLES)
    with pytest.raises(IQAError, match="already exists"):
        compare(None, files, output=tmp_path / "o", n_resamples=N_RESAMPLES)
    compare(None, files, output=tmp_path / "o", n_resamples=N_RESAMPLES, overwrite=True)
    (tmp_path / "p" / "summary.csv").mkdir(parents=True)
    with pytest.raises(IQAError, match="summary.csv: is a folder"):
        compare(None, files, output=tmp_path / "p", overwrite=True)


def test_to_pandas(three_methods):
    files, _ = three_methods
    c = compare(None, files, n_resamples=N_RESAMPLES)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            c.to_pandas()
        pytest.skip("pandas is not installed (optional): checked the error instead")
    df = c.to_pandas()
    assert list(df.columns) == list(SUMMARY_COLUMNS) and len(df) == 6
    assert df.set_index(["method", "metric"]).loc[("good", "psnr"), "diff"] == c.paired["good"]["psnr"]["diff"]


def test_public_name_and_callable_package(three_methods):
    import iqa.compare.stats  # binds the name iqa.compare to the package, as any submodule import does

    files, _ = three_methods
    c = iqa.compare(None, files, n_resamples=N_RESAMPLES)
    assert isinstance(c, iqa.Comparison) and c.methods == ["base", "good", "same"]


#: Which way is better for each pair metric, from the papers (not read from the registry).
BETTER = {"psnr": "higher", "ssim": "higher", "ms_ssim": "higher", "lpips": "lower", "dists": "lower",
          "vifp": "higher", "gmsd": "lower", "ms_gmsd": "lower", "fsim": "higher", "fsimc": "higher",
          "haarpsi": "higher"}


def test_every_pair_metric_compares_in_its_direction(tmp_path, rng):
    """Every pair metric of the registry goes through compare() with no code of its own; a
    method whose values are all larger wins on the higher-is-better metrics only."""
    keys = [s.key for s in iqa.registry.pair_metrics()]
    assert set(keys) == set(BETTER), "a new pair metric: say here which way is better"
    refs = [f"{i:02d}.png" for i in range(30)]
    low = {k: list(rng.uniform(0.2, 0.4, 30)) for k in keys}
    high = {k: [v + 0.1 for v in low[k]] for k in keys}
    c = compare(None, {"low": write_scores(tmp_path / "low.csv", refs, low),
                       "high": write_scores(tmp_path / "high.csv", refs, high)}, n_resamples=N_RESAMPLES)
    assert c.metrics == keys
    for k in keys:
        p = c.paired["high"][k]
        assert p["diff"] == pytest.approx(0.1) and p["significant"]
        assert p["win_rate"] == (1.0 if BETTER[k] == "higher" else 0.0), k
        assert next(m for m in c.metadata["metrics"] if m["column"] == k)["direction"] == BETTER[k]
