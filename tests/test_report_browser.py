"""iqa report in a real browser: Debian's Chromium driven through its own chromedriver.

One browser session for the whole module. The page is opened from disk (file://, as a user
opens it), its numbers are read back from the DOM and compared with the CSV files, sorting,
filtering and paging are used as a person would, and every image, plot and link must load
without a console error. Skipped (with the reason) only when Chromium, chromedriver or
selenium is missing; CI installs them (.ci/run).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from report_images import HOSTILE_NAMES, copy_method

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytest.importorskip("matplotlib", reason="iqa report needs matplotlib (the report extra)")
pytest.importorskip("selenium", reason="the browser tests need selenium (pip install -e '.[test]')")
if not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)):
    pytest.skip("the browser tests need Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)

N_IMAGES = 40  # the comparison fixture's
METRICS = ("psnr", "ssim")
METHODS = ("good", "bad", "same")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def site(comparison, comparison_report):
    return comparison, comparison_report


@pytest.fixture(scope="module")
def browser(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="iqa-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1300,1000",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never go to the network
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(site[1].resolve().as_uri())
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def js(driver, code: str, *args):
    return driver.execute_script(code, *args)


def table_rows(driver) -> list[dict]:
    return js(driver, """
        return Array.from(document.querySelectorAll('#image-rows tr')).map(tr => ({
          key: tr.getAttribute('data-key'),
          name: tr.querySelector('td.name').textContent,
          cells: Array.from(tr.querySelectorAll('td[data-metric]')).map(td => [
            td.getAttribute('data-method'), td.getAttribute('data-metric'), td.getAttribute('data-value'),
            td.textContent])
        }));""")


def set_page_size(driver, n: int) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "page-size")).select_by_value(str(n))


def test_page_is_drawn(browser):
    assert js(browser, "return document.body.getAttribute('data-ready')") == "true"


def test_summary_table_equals_summary_csv(browser, site):
    outdir, _ = site
    cells = js(browser, """
        return Array.from(document.querySelectorAll('#summary-table td[data-metric]')).map(td => ({
          method: td.getAttribute('data-method'), metric: td.getAttribute('data-metric'),
          mean: td.getAttribute('data-mean'), ci_low: td.getAttribute('data-ci-low'),
          ci_high: td.getAttribute('data-ci-high'), median: td.getAttribute('data-median'),
          std: td.getAttribute('data-std'), n: td.getAttribute('data-n'), diff: td.getAttribute('data-diff'),
          p_holm: td.getAttribute('data-p-holm'), best: td.getAttribute('data-best'),
          cls: td.className, shown: td.querySelector('.mean').textContent}));""")
    rows = {(r["method"], r["metric"]): r for r in read_csv(outdir / "summary.csv")}
    assert {(c["method"], c["metric"]) for c in cells} == set(rows)
    for c in cells:
        r = rows[(c["method"], c["metric"])]
        for col in ("mean", "ci_low", "ci_high", "median", "std"):
            assert float(c[col]) == float(r[col]), (c["method"], c["metric"], col)
        assert int(c["n"]) == int(r["n"])
        if r["diff"]:
            assert float(c["diff"]) == float(r["diff"]) and float(c["p_holm"]) == float(r["p_holm"])
        # What a person reads: the mean to five significant digits.
        shown = float(c["shown"].rstrip(" ★"))
        assert shown == pytest.approx(float(r["mean"]), rel=1e-4)
    # The best mean per metric (higher is better for both) is marked, and only it: the share
    # of infinite values first (inf is the best PSNR; "same" has one), then the finite mean.
    for metric in METRICS:
        best = max(METHODS, key=lambda m: (int(rows[(m, metric)]["n_inf"]) / int(rows[(m, metric)]["n"]),
                                           float(rows[(m, metric)]["mean"])))
        marked = [c["method"] for c in cells if c["metric"] == metric and c["best"] == "true"]
        assert marked == [best]
        assert [c for c in cells if c["method"] == best and c["metric"] == metric][0]["shown"].endswith("★")
    # "bad" is significantly worse than the baseline on both metrics, and marked so.
    for metric in METRICS:
        cell = next(c for c in cells if c["method"] == "bad" and c["metric"] == metric)
        assert "sig-worse" in cell["cls"].split() and float(rows[("bad", metric)]["p_holm"]) < 0.05


def test_image_table_equals_the_score_csvs(browser, site):
    outdir, _ = site
    set_page_size(browser, 500)
    rows = table_rows(browser)
    csvs = {m: {r["reference"]: r for r in read_csv(outdir / "scores" / f"{m}.csv")} for m in METHODS}
    assert sorted(r["key"] for r in rows) == sorted(csvs["good"]) and len(rows) == N_IMAGES
    for row in rows:
        assert row["name"] == row["key"]  # odd names shown as text, not markup
        assert len(row["cells"]) == len(METRICS) * len(METHODS)
        for method, metric, value, shown in row["cells"]:
            expected = float(csvs[method][row["key"]][metric])
            assert float(value) == expected, (row["key"], method, metric)
            assert shown == "inf" if math.isinf(expected) else float(shown) == pytest.approx(expected, rel=1e-4)
    set_page_size(browser, 50)


def test_sorting_by_a_column(browser, site):
    outdir, _ = site
    set_page_size(browser, 25)
    header = browser.find_element("css selector", '#image-table th[data-metric="psnr"][data-method="bad"]')
    values = sorted(float(r["psnr"]) for r in read_csv(outdir / "scores" / "bad.csv"))

    def column() -> list[float]:
        return [float(v) for r in table_rows(browser) for m, x, v, _ in r["cells"] if m == "bad" and x == "psnr"]

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert column() == values[:25]
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert column() == values[::-1][:25]
    name = browser.find_element("css selector", '#image-table th[data-col="-1"]')
    name.click()
    keys = [r["key"] for r in table_rows(browser)]
    assert keys == sorted(keys) and name.get_attribute("aria-sort") == "ascending"


def test_filtering_and_paging(browser, site):
    box = browser.find_element("id", "filter")
    box.clear()
    box.send_keys("IMG001")  # case-insensitive
    keys = [r["key"] for r in table_rows(browser)]
    assert keys and all("img001" in k.lower() for k in keys)
    assert len(keys) == sum("img001" in k.lower() for k in read_csv(site[0] / "scores" / "good.csv")
                            for k in [k["reference"]])
    box.clear()
    box.send_keys('"q" <x>&')
    assert [r["name"] for r in table_rows(browser)] == [HOSTILE_NAMES[0]]
    box.clear()  # clears the box without an input event: send the event a person's edit sends
    js(browser, "document.getElementById('filter').dispatchEvent(new Event('input'))")
    set_page_size(browser, 25)
    assert len(table_rows(browser)) == 25
    assert not browser.find_element("id", "prev-page").is_enabled()
    browser.find_element("id", "next-page").click()
    assert browser.find_element("id", "page-info").text == f"images 26–{N_IMAGES} of {N_IMAGES}"
    assert len(table_rows(browser)) == N_IMAGES - 25
    assert not browser.find_element("id", "next-page").is_enabled()
    browser.find_element("id", "prev-page").click()
    assert browser.find_element("id", "page-info").text == f"images 1–25 of {N_IMAGES}"


def test_every_image_plot_and_link_loads(browser, site):
    _, index = site
    # Show every row so that every link of the table is in the page.
    set_page_size(browser, 500)
    images = js(browser, """return Array.from(document.images).map(i => [i.getAttribute('src'),
        i.complete && i.naturalWidth > 0, i.className]);""")
    assert [src for src, ok, _ in images if not ok] == []
    assert sum(cls == "plot-img" for _, _, cls in images) == 2 * len(METRICS)
    assert sum(cls == "thumb" for _, _, cls in images) > 0
    assert not any(src.endswith("missing.svg") for src, _, _ in images)
    links = js(browser, "return Array.from(document.links).map(a => a.href);")
    files = [u for u in links if urlparse(u).path != urlparse(index.resolve().as_uri()).path]
    assert len(files) >= N_IMAGES * (1 + len(METHODS))
    broken = [u for u in files if not (urlparse(u).scheme == "file" and Path(unquote(urlparse(u).path)).is_file())]
    assert broken == []


def test_no_console_errors_and_a_screenshot(browser, site, tmp_path):
    browser.refresh()
    assert js(browser, "return document.body.getAttribute('data-ready')") == "true"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_missing_images_show_placeholders(browser, site, tmp_path):
    """A report whose images are partly gone: placeholders load, nothing links to a missing
    file, the warning is on the page, and the console stays clean."""
    import iqa

    scores = copy_method(site[0], "bad", tmp_path)
    for row in sorted(read_csv(scores), key=lambda r: float(r["psnr"]))[:2]:
        (tmp_path / "images" / "bad" / row["reference"]).unlink()
    with pytest.warns(iqa.IQAWarning, match=r"2 image file\(s\) not found"):
        index = iqa.report(scores, tmp_path / "report", gallery_size=2)
    browser.get(index.resolve().as_uri())
    try:
        images = js(browser, "return Array.from(document.images).map(i => [i.getAttribute('src'), "
                             "i.complete && i.naturalWidth > 0]);")
        assert [src for src, ok in images if not ok] == []
        assert sum(src == "assets/missing.svg" for src, _ in images) >= 2
        links = js(browser, "return Array.from(document.links).map(a => a.href);")
        gone = [u for u in links if urlparse(u).scheme == "file" and not Path(unquote(urlparse(u).path)).exists()]
        assert gone == []
        assert "2 image file(s) not found" in browser.find_element("id", "warnings").text
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.get(site[1].resolve().as_uri())  # back to the module's report


def test_significance_marks_follow_the_test_and_infinite_values(browser, site, tmp_path):
    """A method identical to the reference (PSNR inf on every image) and one identical on 30
    of 40 images (1 dB worse on the rest) are significantly better than the baseline: ▲, not
    the ▼ the sign of the finite mean difference would give; ★ goes to the all-inf method."""
    import warnings

    import iqa

    refs = [f"{i:02d}.png" for i in range(40)]
    columns = {"base": [30.0 + i / 100 for i in range(40)], "perfect": [math.inf] * 40,
               "most": [math.inf] * 30 + [29.0 + i / 100 for i in range(10)]}
    files = {}
    for name, psnr in columns.items():
        files[name] = tmp_path / f"{name}.csv"
        with open(files[name], "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["reference", "distorted", "psnr", "error"])
            w.writerows([r, r, repr(v), ""] for r, v in zip(refs, psnr))
    iqa.compare(None, files, output=tmp_path / "out", n_resamples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", iqa.IQAWarning)  # the images themselves do not exist
        index = iqa.report(tmp_path / "out", tmp_path / "report", gallery_size=0)
    browser.get(index.resolve().as_uri())
    try:
        cells = js(browser, """return Object.fromEntries(Array.from(
            document.querySelectorAll('#summary-table td[data-metric]')).map(td => [td.getAttribute('data-method'),
            {cls: td.className, best: td.getAttribute('data-best'), mean: td.querySelector('.mean').textContent,
             paired: (td.querySelector('.paired') || {}).textContent}]));""")
        for name in ("perfect", "most"):
            assert "sig-better" in cells[name]["cls"].split() and cells[name]["paired"].startswith("▲"), name
        assert cells["perfect"]["paired"].startswith("▲ Δ no finite difference")
        assert " over 10 finite" in cells["most"]["paired"]
        assert cells["perfect"]["mean"] == "inf ★"
        assert [n for n, c in cells.items() if c["best"] == "true"] == ["perfect"]
        legend = browser.find_element("css selector", "#summary .legend").text
        assert "every method scored" in legend and "Holm p ≤ 0.05" in legend
    finally:
        browser.get(site[1].resolve().as_uri())  # back to the module's report


def test_lower_is_better_marks(browser, site, tmp_path):
    """GMSD (lower is better): the best mark goes to the lowest mean, and a method that is
    significantly higher is marked worse."""
    import iqa

    from report_images import make_images

    f = make_images(tmp_path / "images", 12)
    out = tmp_path / "out"
    iqa.compare(f["reference"], {m: f[m] for m in ("bad", "good")}, output=out, metrics=["gmsd"], n_resamples=200)
    index = iqa.report(out, tmp_path / "report", gallery_size=0)
    browser.get(index.resolve().as_uri())
    try:
        cells = js(browser, """return Array.from(document.querySelectorAll('#summary-table td[data-metric]')).map(
            td => [td.getAttribute('data-method'), td.getAttribute('data-best'), td.className]);""")
        rows = {r["method"]: r for r in read_csv(out / "summary.csv")}
        assert float(rows["good"]["mean"]) < float(rows["bad"]["mean"])  # lower GMSD: closer to the reference
        assert [(m, b) for m, b, _ in cells] == [("bad", "false"), ("good", "true")]
        good_cls = cells[1][2].split()
        assert float(rows["good"]["p_holm"]) < 0.05 and "sig-better" in good_cls and "sig-worse" not in good_cls
    finally:
        browser.get(site[1].resolve().as_uri())
