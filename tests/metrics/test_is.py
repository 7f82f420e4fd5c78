"""Inception Score against torch-fidelity 0.4's ISC with the same generated Inception weights.

torch-fidelity loads its Inception file (``weights-inception-2015-12-05-6726825d.pth``, the
same state-dict layout as pytorch-fid's) from ``feature_extractor_weights_path``: the tests
give it the seeded stand-in of ``fid_weights`` (whose classifier has a non-zero bias, so that
using it changes the score) and compare its whole pipeline (folder → TF1 resize → network →
``logits_unbiased`` → ``isc_features_to_metric``) with iqa's. Each deliberately wrong detail
(the bias, the split rule, no permutation) moves the score far beyond the tolerance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import fid_weights as fw  # tests/ is on sys.path
import iqa
from iqa.cli import main

# 15 images (each costs a full Inception pass): a remainder (15 % 10) for the split rule; three
# kinds so that class distributions differ.
N = 15


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    from PIL import Image

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    weights = fw.weights_file(tmp_path_factory.getbasetemp())
    imgs = np.concatenate([fw.synthetic_images(5, 40, 3, "noisy"), fw.synthetic_images(5, 40, 4, "smooth"),
                           fw.synthetic_images(5, 40, 5, "stripes")])
    folder = tmp_path_factory.mktemp("is") / "gen"
    folder.mkdir()
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    # torch-fidelity's own network and TF1 resize on the uint8 images (its forward takes uint8).
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                      feature_extractor_weights_path=str(weights))
    (logits,) = net(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())
    return {"weights": weights, "images": imgs, "folder": folder, "logits": logits, "bias": net.fc.bias.detach()}


def _isc(logits, **kw):
    from torch_fidelity.metric_isc import isc_features_to_metric

    r = isc_features_to_metric(logits, **kw)
    return r["inception_score_mean"], r["inception_score_std"]


def test_matches_torch_fidelity_isc_on_tensors_and_folders_whatever_the_batching(gen):
    """``iqa.inception_score`` on uint8 tensors (4 images a batch) and ``iqa evaluate FOLDER
    -m isc`` (PNG files, one batch) against torch-fidelity's network + ISC (one batch)."""
    u8 = torch.from_numpy(gen["images"]).permute(0, 3, 1, 2)
    mean, std = iqa.inception_score(u8, weights=gen["weights"], batch_size=4)
    ref = _isc(gen["logits"])
    # Same pool3 features; iqa's logits product is float64 (rounded once), torch-fidelity's
    # float32, whose rounding depends on its batch: measured 5e-8 (mean) and 3e-7 (std) relative
    # here (6e-7 for the std on 25 such images); 1e-6 relative.
    assert (mean, std) == pytest.approx(ref, rel=1e-6)
    # Not a trivial comparison: the splits differ, and the score is above its floor of 1.
    assert mean > 1.05 and std > 0.01
    args = ["evaluate", str(gen["folder"]), "-m", "isc", "--weights", str(gen["weights"]), "--workers", "0",
            "--format", "json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["is"], doc["is_std"]) == (mean, std)  # the same logits, whatever the batching
    space = doc["provenance"]["feature_spaces"][0]
    assert (space["extractor"], space["mode"], space["dims"], space["real"]) == ("inception", "tf", 1008, None)
    assert doc["provenance"]["options"]["is"]["splits"] == 10


def test_kernel_matches_torch_fidelity_on_the_same_logits(gen):
    logits = gen["logits"]
    r = iqa.inception_score_features(logits)
    # float64 softmax both sides (torch's vs NumPy's log-sum-exp): 1e-12 relative.
    assert (r.mean, r.std) == pytest.approx(_isc(logits), rel=1e-12)
    assert len(r.scores) == 10 and r.seed == 2020
    for splits, seed in ((5, 1), (3, 7)):
        got = iqa.inception_score_features(logits, splits=splits, seed=seed)
        assert (got.mean, got.std) == pytest.approx(_isc(logits, splits=splits, rng_seed=seed), rel=1e-12)
    unshuffled = iqa.inception_score_features(logits, shuffle=False)
    assert (unshuffled.mean, unshuffled.std) == pytest.approx(_isc(logits, shuffle=False), rel=1e-12)


def test_the_logits_bias_changes_the_score_by_far_more_than_the_tolerance(gen):
    """The TF original and torch-fidelity ≥ 0.3 leave the classifier's bias out."""
    logits = gen["logits"]
    right = iqa.inception_score_features(logits).mean
    biased = iqa.inception_score_features(logits + gen["bias"]).mean
    assert abs(biased - right) / right > 1e-4  # measured 8e-4 on 25 such images: 100× the tolerance


def test_the_split_rule_changes_the_score_by_far_more_than_the_tolerance(gen):
    """dgm-eval cuts at k·(N // splits) and drops the remainder (5 of 15 images here)."""
    logits = gen["logits"].double()
    right = iqa.inception_score_features(logits)
    perm = np.random.RandomState(2020).permutation(N)
    p = torch.softmax(logits[perm], dim=1).numpy()
    size = N // 10
    scores = []
    for k in range(10):
        part = p[k * size:(k + 1) * size]
        kl = (part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    assert abs(np.mean(scores) - right.mean) / right.mean > 1e-3
    assert abs(np.std(scores) - right.std) / right.std > 1e-2


def test_shuffling_changes_the_score_by_far_more_than_the_tolerance(gen):
    """The original TF code keeps the input order: another split of the same images."""
    logits = gen["logits"]
    a, b = iqa.inception_score_features(logits), iqa.inception_score_features(logits, shuffle=False)
    assert abs(a.std - b.std) / a.std > 1e-2


def test_float32_softmax_stays_within_the_tolerance(gen):
    """dgm-eval and the TF original take the softmax in float32: on these logits that moves
    the score by ~1e-7 relative, below the parity tolerance; iqa (as torch-fidelity) uses float64."""
    logits = gen["logits"]
    right = iqa.inception_score_features(logits).mean
    p32 = torch.softmax(logits.float(), dim=1).double()
    f32 = iqa.inception_score_features(torch.log(p32)).mean  # log of the float32 probabilities
    assert f32 != right and abs(f32 - right) / right < 1e-5


def test_fewer_images_than_splits_is_refused(gen):
    with pytest.raises(iqa.ShapeError, match="needs at least 10 images, got 9"):
        iqa.inception_score_features(gen["logits"][:9])
    for bad in (np.nan, -np.inf):
        logits = gen["logits"].detach().clone()
        logits[4, 7] = bad
        with pytest.raises(iqa.RangeError, match="logits contain NaN or infinite values"):
            iqa.inception_score_features(logits)


def test_evaluate_with_one_source_needs_one_set_metrics(gen):
    res = CliRunner().invoke(main, ["evaluate", str(gen["folder"]), "-m", "fid,is"])
    assert res.exit_code == 2 and "fid compares two sets: give a real and a generated set" in res.output
    from iqa.registry import get

    assert get("isc").name == "is" and get("is").kind == "one-set"


@settings(max_examples=30, deadline=None)
@given(n=st.integers(10, 40), classes=st.integers(2, 50), seed=st.integers(0, 2**16), scale=st.floats(0.1, 20))
def test_properties_bounds_identity_and_the_class_count(n, classes, seed, scale):
    """1 ≤ IS ≤ the number of classes; identical predictions give 1; n images, each surely
    a different class, in one split give n."""
    logits = np.random.default_rng(seed).normal(size=(n, classes)) * scale
    r = iqa.inception_score_features(logits)
    assert all(1 - 1e-12 <= s <= classes * (1 + 1e-12) for s in r.scores)
    same = iqa.inception_score_features(np.repeat(logits[:1], n, axis=0))
    assert same.mean == pytest.approx(1.0, abs=1e-12) and same.std == pytest.approx(0.0, abs=1e-12)
    one_hot = np.full((n, n), -60.0)
    np.fill_diagonal(one_hot, 60.0)
    assert iqa.inception_score_features(one_hot, splits=1).mean == pytest.approx(n, rel=1e-9)
