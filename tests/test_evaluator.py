"""``iqa.Evaluator``: tensors in, the same numbers as ``iqa evaluate`` on folders.

Inception at 64-d (the network stops after its first block: cheap) keeps these tests small;
the moments, kept features and metrics are those of every feature space. The Inception Score
through the evaluator is in test_distributed.py (two processes against one) and
tests/metrics/test_is.py (against torch-fidelity).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fid_weights as fw  # tests/ is on sys.path
import iqa

METRICS = "fd,kid,precision,recall,density,coverage"


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from PIL import Image

    weights = fw.weights_file(tmp_path_factory.getbasetemp())
    root = tmp_path_factory.mktemp("evaluator")
    out = {"weights": weights}
    for name, kind, seed, n in (("real", "smooth", 71, 9), ("gen", "noisy", 72, 8)):
        imgs = fw.synthetic_images(n, 40, seed, kind)
        (root / name).mkdir()
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
        out[name] = torch.from_numpy(imgs).permute(0, 3, 1, 2)  # uint8 N×3×H×W
        out[name + "_dir"] = root / name
    return out


def _evaluator(sets, **kw):
    return iqa.Evaluator(METRICS, extractor="inception", dims=64, nearest_k=3, subset_size=4, route="eigh",
                         weights={"inception-fid": sets["weights"]}, workers=0, **kw)


def _compute(ev):
    with pytest.warns(iqa.IQAWarning):  # 8 images in 64-d: singular covariances
        return ev.compute()


def test_tensors_equal_the_folder_path_bit_for_bit(sets):
    """The same uint8 images as PNG files (decoded) and as tensors: identical features."""
    with pytest.warns(iqa.IQAWarning):
        folder = iqa.evaluate(sets["real_dir"], sets["gen_dir"], metrics=METRICS, extractor="inception", dims=64,
                              nearest_k=3, subset_size=4, route="eigh", weights={"inception-fid": sets["weights"]},
                              workers=0)
    ev = _evaluator(sets)
    ev.update(real=sets["real"])
    for i in range(0, 8, 3):  # a generator's batches
        ev.update(generated=sets["gen"][i : i + 3])
    got = _compute(ev)
    for (a_real, a_gen), (b_real, b_gen) in zip(folder.statistics, got.statistics):
        assert np.array_equal(a_real.features, b_real.features) and np.array_equal(a_gen.features, b_gen.features)
    assert got.values == pytest.approx(folder.values, rel=1e-12)  # moments summed in another order
    assert 0 < got["precision"] < 1 or 0 < got["recall"] < 1
    assert got.provenance["feature_spaces"][0]["generated"]["n"] == 8 and got["fd"] > 1


def test_split_and_merge_equal_one_pass(sets):
    one = _evaluator(sets).update(real=sets["real"], generated=sets["gen"])
    a = _evaluator(sets).update(real=sets["real"][:4], generated=sets["gen"][:5])
    b = _evaluator(sets).update(real=sets["real"][4:], generated=sets["gen"][5:])
    merged = _compute(a.merge(b))
    want = _compute(one)
    # Same features; moments summed in another order, and the square root of 8-image singular
    # covariances amplifies that round-off (measured 2e-9 relative): 1e-6 for FD.
    assert merged["fd"] == pytest.approx(want["fd"], rel=1e-6)
    del merged.values["fd"], want.values["fd"]
    assert merged.values == pytest.approx(want.values, rel=1e-12)
    assert merged.statistics[0][0].n == 9
    with pytest.raises(iqa.IQAError, match="different metrics or options"):
        a.merge(iqa.Evaluator("fd", extractor="inception", dims=64, weights={"inception-fid": sets["weights"]}))
    with pytest.raises(iqa.IQAError, match="into itself"):
        a.merge(a)
    assert a.counts() == {"real": 9, "generated": 8}  # unchanged


def test_save_and_load_round_trip_and_a_real_set_reused(sets, tmp_path):
    full = _evaluator(sets).update(real=sets["real"], generated=sets["gen"])
    want = _compute(full)
    path = full.save(tmp_path / "state.npz")
    again = _compute(_evaluator(sets).load(path))
    assert again.values == want.values
    assert np.array_equal(again.statistics[0][1].features, want.statistics[0][1].features)
    # The real set once, saved; each later evaluation loads it and adds generated images.
    real_only = _evaluator(sets).update(real=sets["real"]).save(tmp_path / "real.npz")
    with np.load(real_only, allow_pickle=False) as f:  # no pickles: plain arrays and a JSON header
        assert all(f[k].dtype != object for k in f.files) and "evaluator" in f.files
    reused = _evaluator(sets).load(real_only).update(generated=sets["gen"])
    assert reused.counts() == {"real": 9, "generated": 8}
    assert _compute(reused).values == pytest.approx(want.values, rel=1e-12)


def test_float_input_agrees_with_uint8(sets):
    """Floats in [0, 1] (the default data_range) or [0, 255] with data_range=255: the same
    pixels as uint8, so the same features (pytorch-fid mode divides by the peak in float32)."""
    want = _compute(_evaluator(sets).update(real=sets["real"], generated=sets["gen"]))
    unit = _compute(_evaluator(sets).update(real=sets["real"].float() / 255, generated=sets["gen"].double() / 255))
    assert unit.values == pytest.approx(want.values, rel=1e-12)
    wide = _evaluator(sets, data_range=255).update(real=sets["real"].float(), generated=sets["gen"].float())
    assert _compute(wide).values == pytest.approx(want.values, rel=1e-12)
    # NumPy batches are channels-last, as everywhere in iqa.
    nhwc = _evaluator(sets).update(real=sets["real"].permute(0, 2, 3, 1).numpy(), generated=sets["gen"])
    assert _compute(nhwc).values == pytest.approx(want.values, rel=1e-12)
    # Floats outside the evaluator's range are refused (its default 1 is nobody's choice):
    # [0, 255] floats, and [-1, 1] (a generator's tanh output); 1 % over still passes.
    for wrong in (sets["real"].float(), sets["real"].float() / 127.5 - 1):
        with pytest.raises(iqa.RangeError, match=r"outside the data range \[0, 1\].*pass the Evaluator's data_range"):
            _evaluator(sets).update(real=wrong)
    assert _evaluator(sets).update(real=sets["real"].float() / 255 * 1.009).counts() == {"real": 9, "generated": 0}
    # One (images, labels) batch, as a DataLoader yields it, and a loader of them.
    labels = torch.arange(8)
    pairs = _evaluator(sets).update(real=(sets["real"], torch.arange(9)), generated=(sets["gen"], labels))
    loader = _evaluator(sets).update(real=sets["real"], generated=[(sets["gen"][:5], labels[:5]),
                                                                    (sets["gen"][5:], labels[5:])])
    assert _compute(pairs).values == pytest.approx(want.values, rel=1e-12)
    batched = _compute(loader).values  # moments summed in two batches: FD to 1e-6 (see the merge test)
    assert batched.pop("fd") == pytest.approx(want["fd"], rel=1e-6)
    assert batched == pytest.approx({k: v for k, v in want.values.items() if k != "fd"}, rel=1e-12)


def test_errors_name_the_problem(sets, tmp_path):
    ev = _evaluator(sets).update(real=sets["real"])
    with pytest.raises(iqa.IQAError, match=r"the generated set has 0 image\(s\).*update\(generated=\.\.\.\)"):
        ev.compute()
    only_is = iqa.Evaluator("isc", weights={"inception-fid": sets["weights"]})
    assert only_is.roles == ("generated",)
    with pytest.raises(iqa.OptionError, match=r"no metric of this evaluator \(is\) uses a real set"):
        only_is.update(real=sets["real"])
    stats = tmp_path / "stats.npz"
    st = iqa.FIDStatistics(dims=4)
    st.update(np.eye(4))
    st.save(stats)
    with pytest.raises(iqa.ImageLoadError, match="not a state written by Evaluator.save"):
        ev.load(stats)
    other = iqa.Evaluator("fd", extractor="inception", dims=192, weights={"inception-fid": sets["weights"]})
    path = ev.save(tmp_path / "state.npz")
    with pytest.raises(iqa.IQAError, match="holds none of the feature spaces this evaluator needs"):
        other.load(path)
    fd_only = iqa.Evaluator("fd", extractor="inception", dims=64, weights={"inception-fid": sets["weights"]})
    fd_state = fd_only.update(real=sets["real"]).save(tmp_path / "fd.npz")
    with pytest.raises(iqa.IQAError, match="hold no features, which kid, precision"):
        _evaluator(sets).load(fd_state)  # moments only: not enough for KID and PRDC


def test_a_damaged_state_file_is_refused_naming_it(sets, tmp_path):
    path = _evaluator(sets).update(real=sets["real"]).save(tmp_path / "state.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    bad = tmp_path / "bad-header.npz"
    np.savez(bad, **{**arrays, "evaluator": np.str_('{"iqa_evaluator_format": 1, "states": [{"role": "real"}]}')})
    with pytest.raises(iqa.ImageLoadError, match=r"bad-header\.npz: .*'evaluator' header is malformed"):
        _evaluator(sets).load(bad)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(iqa.ImageLoadError, match=r"truncated\.npz: .*truncated or corrupt"):
        _evaluator(sets).load(truncated)
    nan = tmp_path / "nan.npz"
    key = next(k for k in arrays if k.endswith("/sum"))
    np.savez(nan, **{**arrays, key: np.full_like(arrays[key], np.nan)})
    with pytest.raises(iqa.ImageLoadError, match=r"nan\.npz: .*NaN or infinite"):
        _evaluator(sets).load(nan)


def test_every_set_metric_of_the_registry_goes_through_the_evaluator():
    from iqa.registry import METRICS

    names = [s.name for s in METRICS.values() if s.kind != "pair"]
    assert {"fid", "kid", "fd", "fd-dinov2", "cmmd", "precision", "is"} <= set(names)
    ev = iqa.Evaluator(names)  # networks load on first use: nothing is read here
    assert ev.roles == ("real", "generated")
    assert [METRICS[n].name for n in ev.metrics] == names
