"""Small comparisons for the report's tests: generated images, three methods with known
differences, scored by the real engine into a folder laid out as ``iqa compare`` writes it
(``summary.json``, ``summary.csv``, ``scores/NAME.csv`` and their sidecars).

The summary's statistics are computed here plainly (NumPy, scipy's bootstrap and Wilcoxon
test, Holm's step-down): the report shows the summary's numbers as they are, so what the
tests check is that the page holds exactly the files' numbers.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from helpers import write_png

#: Image names that an HTML page or a URL would take for syntax if not escaped.
HOSTILE_NAMES = ['a b "q" <x>&amp;.png', "#hash?x=1%20.png", "日本 é.png", "it's.png", "<script>x<!--.png"]


def make_images(root: Path, n: int, *, size: tuple[int, int] = (48, 40), seed: int = 0,
                names: list[str] | None = None) -> dict[str, Path]:
    """A reference folder and three methods' folders of ``n`` images each: ``good`` (light
    noise), ``bad`` (heavy noise) and ``same`` (the reference itself for the first image,
    else light noise), written as PNG. Returns the folders by name."""
    rng = np.random.default_rng(seed)
    h, w = size
    names = names if names is not None else []
    names = names + [f"img{i:04d}.png" for i in range(n - len(names))]
    folders = {k: root / k for k in ("reference", "good", "bad", "same")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, name in enumerate(names):
        base = np.stack([(xx * 5 + i * 7) % 256, (yy * 6 + i * 3) % 256, ((xx + yy) * 3 + i) % 256], axis=-1)
        base = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        write_png(folders["reference"] / name, base)
        for method, sd in (("good", 4.0), ("bad", 16.0), ("same", 4.0)):
            if method == "same" and i == 0:
                out = base
            else:
                out = np.clip(base + rng.normal(0, sd * (1 + (i % 3) / 2), base.shape), 0, 255).astype(np.uint8)
            write_png(folders[method] / name, out)
    return folders


def _stats(values: list[float]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    finite = v[np.isfinite(v)]

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    out = {"n": int(v.size), "n_inf": int(v.size - finite.size), "mean": None, "median": None, "std": None,
           "ci_low": None, "ci_high": None}
    if finite.size:
        out.update(mean=num(finite.mean()), median=num(np.median(finite)),
                   std=num(finite.std(ddof=1)) if finite.size > 1 else None)
    if finite.size > 2 and np.ptp(finite) > 0:
        from scipy.stats import bootstrap

        ci = bootstrap((finite,), np.mean, n_resamples=999, method="percentile", random_state=0).confidence_interval
        out.update(ci_low=num(ci.low), ci_high=num(ci.high))
    return out


def _paired(base: list[float], other: list[float], higher: bool) -> dict[str, Any]:
    from scipy.stats import bootstrap, wilcoxon

    d = []
    for a, b in zip(base, other):
        if a is None or b is None:
            continue
        d.append(0.0 if (math.isinf(a) and math.isinf(b)) else b - a)
    d = np.array(d, dtype=np.float64)
    fin = d[np.isfinite(d)]
    wins = int(np.sum(d > 0) if higher else np.sum(d < 0))
    ties = int(np.sum(d == 0))
    out = {"n": int(d.size), "diff": float(fin.mean()) if fin.size else None, "ci_low": None, "ci_high": None,
           "p_value": None, "p_holm": None, "significant": False, "wins": wins, "ties": ties,
           "losses": int(d.size) - wins - ties, "win_rate": wins / d.size, "tie_rate": ties / d.size,
           "loss_rate": (d.size - wins - ties) / d.size}
    if fin.size > 2 and np.ptp(fin) > 0:
        ci = bootstrap((fin,), np.mean, n_resamples=999, method="percentile", random_state=0).confidence_interval
        out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    out["p_value"] = float(wilcoxon(fin, zero_method="zsplit").pvalue) if fin.size else 1.0
    return out


def write_outdir(outdir: Path, reference: Path, methods: dict[str, Path], metrics: tuple[str, ...] = ("psnr", "ssim"),
                 baseline: str | None = None, **settings: Any) -> Path:
    """Score every method with the engine and write a comparison folder (the contract)."""
    from iqa import registry
    from iqa.scoring import ScoreSettings, pair_folders, score_to_file

    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "scores").mkdir(exist_ok=True)
    st = ScoreSettings.build(metrics, **settings)
    per: dict[str, dict[str, dict[str, Any]]] = {}
    entries = []
    for name, folder in methods.items():
        out = outdir / "scores" / f"{name}.csv"
        pairing = pair_folders(reference, folder)
        score_to_file(pairing.pairs, out, st, roots=(str(reference), str(folder)))
        with open(out, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        per[name] = {r["reference"]: r for r in rows}
        entries.append({"name": name, "source": os.path.abspath(folder), "scores": f"scores/{name}.csv",
                        "n_rows": len(rows), "n_failed": sum(1 for r in rows if r["error"]), "missing": []})
    union = sorted({k for rows in per.values() for k in rows})
    for e in entries:
        e["missing"] = [k for k in union if k not in per[e["name"]]]
    common = [k for k in union if all(k in rows for rows in per.values())]
    baseline = baseline or next(iter(methods))
    specs = [registry.get(m) for m in st.metrics]

    def val(row: dict[str, str] | None, m: str) -> float | None:
        return float(row[m]) if row and row.get(m) not in (None, "") else None

    summary = {n: {s.key: _stats([val(r, s.key) for r in per[n].values()]) for s in specs} for n in methods}
    paired = {
        n: {s.key: _paired([val(per[baseline].get(k), s.key) for k in common],
                           [val(per[n].get(k), s.key) for k in common], s.higher_is_better) for s in specs}
        for n in methods if n != baseline
    }
    flat = [(n, m) for n in paired for m in paired[n] if paired[n][m]["p_value"] is not None]
    order = sorted(flat, key=lambda nm: paired[nm[0]][nm[1]]["p_value"])
    running = 0.0
    for i, (n, m) in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * paired[n][m]["p_value"]))
        paired[n][m]["p_holm"] = running
        paired[n][m]["significant"] = running < 0.05
    doc = {
        "format": "iqa-compare/1",
        "iqa_version": "0.2.0",
        "created": "2026-12-02T07:00:00Z",
        "command": ["iqa", "compare", str(reference), *(f"{n}={p}" for n, p in methods.items()), "-o", str(outdir)],
        "reference": os.path.abspath(reference),
        "baseline": baseline,
        "metrics": [{"name": s.name, "column": s.key, "direction": "higher" if s.higher_is_better else "lower",
                     "unit": s.unit or None, "value_range": [None if math.isinf(v) else v for v in s.value_range]}
                    for s in specs],
        "methods": entries,
        "keys": "reference",
        "n_common": len(common),
        "statistics": {"confidence": 0.95, "bootstrap": {"method": "percentile", "n_resamples": 999, "seed": 0},
                       "test": "wilcoxon signed-rank, two-sided, zero_method=zsplit",
                       "adjustment": "holm over methods x metrics", "alpha": 0.05,
                       "inf": "PSNR inf (identical images) is left out of means; inf - inf is a tie"},
        "settings": st.provenance(),
        "summary": summary,
        "paired": paired,
    }
    (outdir / "summary.json").write_text(json.dumps(doc, indent=2, allow_nan=False), encoding="utf-8")
    cols = ["method", "metric", "n", "n_inf", "mean", "median", "std", "ci_low", "ci_high", "diff", "diff_ci_low",
            "diff_ci_high", "p_value", "p_holm", "win_rate", "tie_rate", "loss_rate", "n_paired"]
    with open(outdir / "summary.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for n in methods:
            for s in specs:
                a, p = summary[n][s.key], paired.get(n, {}).get(s.key, {})
                cells = [a["n"], a["n_inf"], a["mean"], a["median"], a["std"], a["ci_low"], a["ci_high"],
                         p.get("diff"), p.get("ci_low"), p.get("ci_high"), p.get("p_value"), p.get("p_holm"),
                         p.get("win_rate"), p.get("tie_rate"), p.get("loss_rate"), p.get("n")]
                w.writerow([n, s.key, *("" if c is None else repr(c) if isinstance(c, float) else c for c in cells)])
    return outdir
