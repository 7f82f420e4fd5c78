"""``iqa evaluate`` and ``iqa.evaluate``: several set metrics in one pass, reusable ``.npz``
features, refusal of mixed extractors and modes, the provenance, and the metrics' values
against references we did not write (prdc, pytorch-fid's Fréchet function) on the same
features. DINOv2 ViT-S/14 weights are generated in Meta's layout (``dinov2_weights``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import dinov2_weights as dw  # tests/ is on sys.path
import fid_weights as fw
import iqa
from iqa.cli import main
from iqa.distribution.statistics import FIDStatistics
from iqa.features.pipeline import DinoV2Features

N = 5  # images per set: few (a ViT-S forward each), enough for k = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("evaluate")
    weights = dw.weights_file(tmp_path_factory.getbasetemp(), "vits14", seed=1)
    for name, kind, seed in (("real", "smooth", 61), ("gen", "noisy", 62)):
        (root / name).mkdir()
        for i, img in enumerate(fw.synthetic_images(N, 32, seed, kind)):
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    runner = CliRunner()
    npz = {}
    for name in ("real", "gen"):
        out = root / f"{name}.npz"
        res = runner.invoke(main, ["stats", str(root / name), "--extractor", "dinov2-vits14", "--keep-features",
                                   "--weights", str(weights), "--workers", "0", "-o", str(out)])
        assert res.exit_code == 0, res.output
        npz[name] = out
    return root, weights, npz


def _evaluate(args):
    res = CliRunner().invoke(main, ["evaluate", *map(str, args), "--format", "json"])
    return res, (json.loads(res.stdout) if res.exit_code == 0 else None)


ALL = "fd,kid,precision,recall,density,coverage"


def test_values_match_prdc_on_the_same_features(setup, capsys):
    """PRDC against prdc; FD and KID against the functions on feature arrays (themselves
    tested against pytorch-fid and torch-fidelity) on the features the files hold."""
    from prdc import compute_prdc

    root, weights, npz = setup
    res, doc = _evaluate([npz["real"], npz["gen"], "-m", ALL, "--extractor", "dinov2-vits14", "--nearest-k", "3",
                          "--subset-size", "6"])
    assert res.exit_code == 0, res.output
    real, gen = (FIDStatistics.load(npz[n]).features for n in ("real", "gen"))
    ref = compute_prdc(real, gen, nearest_k=3)
    capsys.readouterr()
    for name in ("precision", "recall", "density", "coverage"):
        assert doc[name] == pytest.approx(float(ref[name]), abs=1e-12), name  # counts: identical
    assert 0 < doc["precision"] < 1 or 0 < doc["recall"] < 1  # not a trivial comparison
    # FD from the accumulated sums vs from the features: 5 images in 384-d give singular
    # covariances, whose square root amplifies round-off: 1e-6 relative.
    assert doc["fd"] == pytest.approx(iqa.fd_features(real, gen), rel=1e-6) and doc["fd"] > 1
    with pytest.warns(iqa.IQAWarning, match="subset size reduced"):
        kid = iqa.kid_features(real, gen, subset_size=6)
    assert (doc["kid"], doc["kid_std"]) == pytest.approx((kid.mean, kid.std), rel=1e-12)
    space = doc["provenance"]["feature_spaces"][0]
    assert (space["extractor"], space["mode"], space["dims"]) == ("dinov2-vits14", "dgm-eval", 384)
    assert space["real"]["n"] == space["generated"]["n"] == N
    assert len(space["weights_sha256"]) == 64
    assert doc["provenance"]["options"]["precision"]["nearest_k"] == 3


def test_one_pass_over_folders_equals_the_reused_npz_files(setup, monkeypatch):
    """Folders in, each image decoded once although two networks' statistics are made from it."""
    import iqa.features.pipeline as pipeline

    root, weights, npz = setup
    decoded = []
    real_decode = pipeline.file_to_uint8
    monkeypatch.setattr(pipeline, "file_to_uint8", lambda path, *a: decoded.append(path) or real_decode(path, *a))
    # route eigh: FID's 2048-d singular covariances through sqrtm would take most of the time
    kw = dict(metrics="fd,precision,recall,density,coverage,kid", extractor="dinov2-vits14", nearest_k=3, subset_size=5,
              route="eigh")
    inception = fw.weights_file(root.parent)
    with pytest.warns(iqa.IQAWarning):  # singular covariances, KID subsets reduced to 5
        result = iqa.evaluate(root / "real", root / "gen", weights={"dinov2-vits14": weights, "inception-fid": inception},
                              workers=0, **{**kw, "metrics": kw["metrics"] + ",fid"})
        again = iqa.evaluate(npz["real"], npz["gen"], **kw)
    assert len(decoded) == 2 * N == len(set(decoded))
    spaces = result.provenance["feature_spaces"]
    assert [s["extractor"] for s in spaces] == ["inception", "dinov2-vits14"] and result["fid"] > 0
    del result.values["fid"]
    assert result.values == pytest.approx(again.values, rel=1e-12)
    assert result["precision"] == result.values["precision"]


def test_npz_of_another_extractor_or_mode_is_refused(setup, tmp_path):
    root, weights, npz = setup
    res, doc = _evaluate([npz["real"], npz["gen"], "-m", "precision", "--nearest-k", "3"])  # --extractor: the files'
    assert res.exit_code == 0 and doc["provenance"]["feature_spaces"][0]["extractor"] == "dinov2-vits14"
    res, _ = _evaluate([npz["real"], npz["gen"], "-m", "precision", "--extractor", "dinov2-vitl14"])
    assert res.exit_code == 1
    assert "holds dinov2-vits14 features, but dinov2-vitl14 was asked for" in res.output
    assert "--extractor dinov2-vits14" in res.output and "Traceback" not in res.output
    tf = tmp_path / "gen-tf.npz"
    r = CliRunner().invoke(main, ["stats", str(root / "gen"), "--extractor", "dinov2-vits14", "--mode", "tf",
                                  "--keep-features", "--feature-dtype", "float16", "--weights", str(weights),
                                  "--workers", "0", "-o", str(tf)])
    assert r.exit_code == 0, r.output
    with np.load(tf) as f:
        assert f["feats"].dtype == np.float16 and str(f["extractor"]) == "dinov2-vits14" and str(f["mode"]) == "tf"
    res, _ = _evaluate([npz["real"], tf, "-m", "fd", "--extractor", "dinov2-vits14"])
    assert res.exit_code == 1 and "different preprocessing modes ('dgm-eval' and 'tf')" in res.output


def test_an_explicit_mode_other_than_the_files_is_refused(setup):
    """Two dgm-eval files with --mode tf: refused (it was ignored and recorded as tf);
    without --mode the provenance names the files' own mode."""
    root, weights, npz = setup
    res, _ = _evaluate([npz["real"], npz["gen"], "-m", "fd", "--mode", "tf"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "made in mode dgm-eval were given, but mode tf was asked for" in res.output
    assert "--mode dgm-eval" in res.output
    res, doc = _evaluate([npz["real"], npz["gen"], "-m", "fd"])
    assert res.exit_code == 0 and doc["provenance"]["feature_spaces"][0]["mode"] == "dgm-eval"
    assert "pillow" in doc["provenance"]["versions"]


def test_npz_files_of_a_non_default_mode_are_taken_when_no_mode_is_asked_for(setup, tmp_path):
    """Two tf-mode files without --mode: their own mode (it was refused as if dgm-eval, the
    extractor's default, had been asked for); with --mode dgm-eval: refused."""
    root, weights, npz = setup
    files = []
    for name in ("real", "gen"):
        out = tmp_path / f"{name}-tf.npz"
        r = CliRunner().invoke(main, ["stats", str(root / name), "--extractor", "dinov2-vits14", "--mode", "tf",
                                      "--keep-features", "--weights", str(weights), "--workers", "0", "-o", str(out)])
        assert r.exit_code == 0, r.output
        files.append(out)
    res, doc = _evaluate([*files, "-m", "fd,precision", "--nearest-k", "3"])
    assert res.exit_code == 0, res.output
    assert doc["provenance"]["feature_spaces"][0]["mode"] == "tf" and doc["fd"] > 0
    res, _ = _evaluate([*files, "-m", "fd", "--mode", "dgm-eval"])
    assert res.exit_code == 1 and "made in mode tf were given, but mode dgm-eval was asked for" in res.output


def test_inclusive_counts_points_on_a_radius(tmp_path):
    """Duplicated features (4 points × 5 copies): every k-th neighbour distance is 0 at k = 3,
    so prdc's strict < finds nothing inside and <= (torch-fidelity's) everything."""
    from iqa.distribution.statistics import FIDStatistics

    feats = np.repeat(np.arange(4 * 384, dtype=np.float64).reshape(4, 384), 5, axis=0)  # ViT-S/14's 384-d
    files = []
    for name in ("a", "b"):
        st = FIDStatistics(dims=384, mode="dgm-eval", extractor="dinov2-vits14", keep_features=True)
        st.update(feats)
        files.append(st.save(tmp_path / f"{name}.npz"))
    args = [*files, "-m", "precision,recall", "--extractor", "dinov2-vits14", "--nearest-k", "3"]
    res, strict = _evaluate(args)
    assert res.exit_code == 0, res.output
    assert (strict["precision"], strict["recall"]) == (0.0, 0.0)
    res, inclusive = _evaluate([*args, "--inclusive"])
    assert res.exit_code == 0, res.output
    assert (inclusive["precision"], inclusive["recall"]) == (1.0, 1.0)
    assert inclusive["provenance"]["options"]["precision"]["comparison"].startswith("inclusive (<=)")


def test_one_npz_cannot_serve_two_feature_spaces(setup):
    root, weights, npz = setup
    res, _ = _evaluate([npz["real"], npz["gen"], "-m", "fid,fd", "--extractor", "dinov2-vits14"])
    assert res.exit_code == 1 and "holds dinov2-vits14 features, but inception was asked for" in res.output


def test_fd_dinov2_uses_vitl14_and_checks_the_file_size(setup):
    root, weights, npz = setup
    res, _ = _evaluate([root / "real", root / "gen", "-m", "fd-dinov2", "--weights", f"dinov2-vitl14={weights}"])
    assert res.exit_code == 1
    assert "dinov2-vitl14 has width 1024, depth 24, 16 heads" in res.output
    res, _ = _evaluate([root / "real", root / "gen", "-m", "fd-dinov2,precision", "--extractor", "dinov2-vits14",
                        "--weights", f"dinov2-vits14={weights}", "--mode", "edm2", "--nearest-k", "0"])
    assert res.exit_code == 2 and "--nearest-k must be an integer of at least 1" in res.output


def test_an_option_no_requested_metric_uses_is_a_usage_error(setup):
    """Never silently ignored: exit 2 naming the option and the metrics that would use it."""
    from iqa.cli.sets_cmd import _EVALUATE_OPTIONS
    from iqa.evaluation import OPTION_USERS, _KERNELS

    root, _, _ = setup
    for args, option in ((["-m", "is", "--dims", "64"], "--dims"), (["-m", "is", "--extractor", "inception"], "--extractor"),
                         (["-m", "fd-dinov2,cmmd", "--mode", "tf"], "--mode"), (["-m", "fid", "--nearest-k", "3"], "--nearest-k"),
                         (["-m", "kid", "--no-shuffle"], "--shuffle")):
        res, _ = _evaluate([root / "real", root / "gen", *args])
        assert res.exit_code == 2, (args, res.output)
        assert f"{option} is used by none of the requested metrics" in res.output, res.output
    assert set(OPTION_USERS) == {f.name for c in _EVALUATE_OPTIONS for f in c.cli_fields()}  # every option, once
    assert {m for users in OPTION_USERS.values() for m in users} <= set(_KERNELS)


def test_skipped_files_name_options_as_the_command_line_writes_them(setup, tmp_path):
    """The list of skipped files says --alpha drop, not Python's alpha='drop'."""
    from PIL import Image

    root, weights, _ = setup
    gen = tmp_path / "gen"
    gen.mkdir()
    for f in (root / "gen").iterdir():
        (gen / f.name).write_bytes(f.read_bytes())
    Image.new("RGBA", (32, 32), (10, 20, 30, 128)).save(gen / "t.png")
    res, _ = _evaluate([root / "real", gen, "-m", "fd", "--extractor", "dinov2-vits14", "--weights", str(weights),
                        "--workers", "0"])
    assert res.exit_code == 1, res.output  # scored without the unreadable file, which makes the exit status 1
    assert "t.png: has transparent pixels; pass --alpha drop to ignore" in res.stderr
    assert "alpha='drop'" not in res.stderr and "Traceback" not in res.output


def test_metrics_list_and_registry(setup):
    res = CliRunner().invoke(main, ["metrics"])
    for name in ("fd", "fd-dinov2", "precision", "recall", "density", "coverage"):
        assert iqa.registry.get(name).kind == "two-set"
        assert name in res.stdout
