"""CMMD on embeddings against scikit-learn's RBF kernel, its estimator's details, and
``iqa cmmd`` / ``iqa evaluate -m cmmd`` on folders with generated CLIP weights (``clip_weights``)
against open_clip's embeddings of the same images and the authors' formula.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_weights as cw  # tests/ is on sys.path
import fid_weights as fw
import iqa
from iqa.cli import main
from iqa.distribution import cmmd as cmmd_module
from iqa.distribution.cmmd import cmmd_features
from iqa.errors import OptionError, RangeError, ShapeError

#: float64 throughout, sums in another order than scikit-learn's: 1e-12 relative.
TOL = 1e-12


def _sklearn_cmmd(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics.pairwise import rbf_kernel

    g = 1 / 200  # γ = 1/(2σ²), σ = 10
    return 1000 * (rbf_kernel(x, x, gamma=g).mean() + rbf_kernel(y, y, gamma=g).mean()
                   - 2 * rbf_kernel(x, y, gamma=g).mean())


def _embeddings(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Unit vectors clustered as CLIP embeddings are (pairwise cosines ~0.5-0.9)."""
    rng = np.random.default_rng(seed)
    centre = np.random.default_rng(0).normal(size=64)
    x = centre + rng.normal(scale=0.6, size=(n, 64)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_matches_sklearn_rbf_kernel_in_float64():
    x, y = _embeddings(40, 1), _embeddings(27, 2, shift=0.2)
    want = _sklearn_cmmd(x, y)
    assert cmmd_features(x, y) == pytest.approx(want, rel=TOL)
    assert want > 0.1  # far from 0: the comparison is not trivial
    assert cmmd_features(torch.from_numpy(x), torch.from_numpy(y).float()) == pytest.approx(
        _sklearn_cmmd(x, y.astype(np.float32).astype(np.float64)), rel=TOL)


def test_blocks_do_not_change_the_value(monkeypatch):
    x, y = _embeddings(33, 3), _embeddings(20, 4, shift=0.1)
    whole = cmmd_features(x, y)
    monkeypatch.setattr(cmmd_module, "BLOCK_ELEMENTS", 50)  # a few rows per block
    assert cmmd_features(x, y) == pytest.approx(whole, rel=TOL)


def test_the_diagonals_are_included():
    """Wrong detail: the unbiased estimator (diagonals of Kxx and Kyy left out) differs by
    far more than the tolerance."""
    from sklearn.metrics.pairwise import rbf_kernel

    x, y = _embeddings(30, 5), _embeddings(30, 6, shift=0.1)
    kxx, kyy, kxy = (rbf_kernel(a, b, gamma=1 / 200) for a, b in ((x, x), (y, y), (x, y)))
    n = len(x)
    unbiased = 1000 * ((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())
    ours = cmmd_features(x, y)
    assert abs(ours - unbiased) > 1e6 * TOL * abs(ours)


def test_identity_symmetry_and_errors():
    x, y = _embeddings(10, 7), _embeddings(12, 8)
    assert cmmd_features(x, x) == pytest.approx(0, abs=1e-12)
    assert cmmd_features(x, y) == pytest.approx(cmmd_features(y, x), rel=TOL)
    with pytest.raises(ShapeError, match="N1×d and N2×d"):
        cmmd_features(x, y[:, :5])
    with pytest.raises(ShapeError, match="at least one embedding"):
        cmmd_features(x[:0], y)
    with pytest.raises(OptionError, match="sigma"):
        cmmd_features(x, y, sigma=0)
    for bad in (np.nan, np.inf):
        y_bad = np.array(y)
        y_bad[3, 2] = bad
        with pytest.raises(RangeError, match="features2 contains NaN or infinite values"):
            cmmd_features(x, y_bad)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("cmmd")
    for name, kind, seed, size in (("real", "smooth", 71, (40, 52)), ("gen", "stripes", 72, (48, 36))):
        (root / name).mkdir()
        for i, img in enumerate(fw.synthetic_images(5, max(size), seed, kind)):
            Image.fromarray(img[: size[0], : size[1]]).save(root / name / f"{i:02d}.png")
    return root


def _open_clip_embeddings(folder) -> np.ndarray:
    """open_clip's normalised embeddings of the authors' preprocessing of each file."""
    from PIL import Image

    from iqa.features.preprocess import CLIP_MEAN, CLIP_STD

    model = cw.open_clip_model(cw.make_state_dict())
    xs = []
    for f in sorted(folder.iterdir()):
        im = Image.open(f)
        im.load()
        w, h = im.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((336, 336), resample=Image.BICUBIC)
        x = (np.asarray(im).astype(np.float32) / 255.0 - np.float32(CLIP_MEAN)) / np.float32(CLIP_STD)
        xs.append(torch.from_numpy(x).permute(2, 0, 1))
    with torch.inference_mode():
        return model.encode_image(torch.stack(xs), normalize=True).double().numpy()


def test_cli_cmmd_and_evaluate_match_open_clip_and_the_authors_formula(folders, clip_archive):
    pytest.importorskip("open_clip")
    real, gen = folders / "real", folders / "gen"
    want = _sklearn_cmmd(_open_clip_embeddings(real), _open_clip_embeddings(gen))
    runner = CliRunner()
    common = ["--weights", str(clip_archive), "--workers", "0"]
    res = runner.invoke(main, ["cmmd", str(real), str(gen), *common])
    assert res.exit_code == 0, res.output
    # Embeddings agree to ~1e-6 (float32 network); CMMD is a difference of kernel means:
    # 1e-4 relative.
    assert float(res.stdout) == pytest.approx(want, rel=1e-4) and want > 0.05
    res = runner.invoke(main, ["cmmd", str(real), str(gen), *common, "--format", "json"])
    doc = json.loads(res.stdout)
    assert doc["metric"] == "cmmd" and doc["value"] == float(runner.invoke(main, ["cmmd", str(real), str(gen),
                                                                                  *common]).stdout)
    assert doc["options"]["extractor"] == "clip-vitl14-336" and doc["options"]["mode"] == "cmmd"
    assert doc["inputs"][0]["n"] == 5 and len(doc["inputs"][0]["weights_sha256"]) == 64
    res = runner.invoke(main, ["evaluate", str(real), str(gen), "-m", "cmmd", *common, "--format", "json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["cmmd"] == pytest.approx(doc["value"], rel=1e-12)
    space = ev["provenance"]["feature_spaces"][0]
    assert (space["extractor"], space["mode"], space["dims"]) == ("clip-vitl14-336", "cmmd", 768)
    assert iqa.cmmd(real, gen, weights=clip_archive, workers=0) == pytest.approx(doc["value"], rel=1e-12)


def test_cli_cmmd_refuses_a_non_clip_extractor(folders, clip_archive):
    res = CliRunner().invoke(main, ["cmmd", str(folders / "real"), str(folders / "gen"), "--extractor", "inception"])
    assert res.exit_code == 2 and "clip-vitl14-336" in res.output


def test_tensors_and_arrays_give_the_folders_value(folders, clip_archive):
    """The same images as uint8 tensors (N×3×H×W), float tensors in [0, 1] and NumPy batches
    (N×H×W×3) go through the same preprocessing as the files: the same CMMD."""
    from PIL import Image

    sets = [np.stack([np.asarray(Image.open(f)) for f in sorted((folders / n).iterdir())]) for n in ("real", "gen")]
    from_files = iqa.cmmd(folders / "real", folders / "gen", weights=clip_archive, workers=0)
    u8 = [torch.from_numpy(a).permute(0, 3, 1, 2) for a in sets]
    assert iqa.cmmd(*u8, weights=clip_archive) == pytest.approx(from_files, rel=1e-12)
    assert iqa.cmmd(*[t.double() / 255 for t in u8], weights=clip_archive, data_range=1.0) == pytest.approx(
        from_files, rel=1e-12)
    assert iqa.cmmd(*sets, weights=clip_archive) == pytest.approx(from_files, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), m=st.integers(1, 12), seed=st.integers(0, 2**16), scale=st.floats(0.01, 30))
def test_properties_nonnegative_symmetric_order_free(n, m, seed, scale):
    """A squared norm of a mean embedding difference: ≥ 0 (up to round-off), symmetric, and
    independent of the order of the rows, for any scale of the features."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(scale=scale, size=(n, 8)), rng.normal(scale=scale, size=(m, 8)) + 0.1
    v = cmmd_features(x, y)
    assert v >= -1e-9
    assert cmmd_features(y, x) == pytest.approx(v, rel=1e-9, abs=1e-12)
    assert cmmd_features(x[::-1], y[rng.permutation(m)]) == pytest.approx(v, rel=1e-9, abs=1e-12)
