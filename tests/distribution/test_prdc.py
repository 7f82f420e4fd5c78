"""Precision, recall, density, coverage and the Fréchet distance on feature arrays, against
prdc 0.2 (dgm-eval's copy is identical), torch-fidelity 0.4's precision/recall and
pytorch-fid's Fréchet function, on the same features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqa.distribution.frechet import fd_features
from iqa.distribution.prdc import prdc_features
from iqa.errors import ShapeError


def _sets(n_real=300, n_gen=260, d=12, seed=0):
    """Two overlapping Gaussian clouds: every value well inside (0, 1), far from trivial."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d)).astype(np.float32)
    gen = (rng.normal(size=(n_gen, d)) * 1.3 + 0.4).astype(np.float32)
    return real, gen


def _borderline(real, gen, k, rel=1e-6):
    """Pairs whose distance is within ``rel`` (relative) of a radius: the only places where
    float32 (prdc, torch-fidelity) and float64 (iqa) comparisons may disagree."""
    def radii(x):
        d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
        return np.sort(d, 1)[:, k]

    cross = np.sqrt(((real[:, None, :].astype(np.float64) - gen[None]) ** 2).sum(-1))
    rr, rg = radii(real), radii(gen)
    near = (np.abs(cross - rr[:, None]) <= rel * rr[:, None]) | (np.abs(cross - rg[None]) <= rel * rg[None])
    return int(near.sum())


@pytest.mark.parametrize("k", [5, 3])
def test_matches_prdc(k, capsys):
    from prdc import compute_prdc

    real, gen = _sets()
    ref = compute_prdc(real, gen, nearest_k=k)
    ours = prdc_features(real, gen, nearest_k=k)
    capsys.readouterr()  # prdc prints the set sizes
    slack = _borderline(real, gen, k)
    assert slack <= 2  # random features: ties are (almost) never within 1e-6
    for name in ("precision", "recall", "coverage"):
        n = len(gen) if name == "precision" else len(real)
        # counts identical except for borderline pairs (each can flip one point)
        assert abs(getattr(ours, name) - float(ref[name])) * n <= slack + 1e-9, name
    assert abs(ours.density - float(ref["density"])) * len(gen) * k <= slack + 1e-9
    assert 0.2 < ours.precision < 0.99 and 0.2 < ours.recall < 0.99  # far from trivial
    assert 0.2 < ours.coverage < 0.99 and 0.1 < ours.density < 1.5


def test_matches_torch_fidelity_precision_recall_with_k3_inclusive():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real, gen = _sets(seed=3)
    # torch-fidelity: features_1 is the generated set, features_2 the real one.
    p, r = calculate_precision_recall_full(torch.from_numpy(gen).double(), torch.from_numpy(real).double(), 3)
    ours = prdc_features(real, gen, nearest_k=3, inclusive=True)
    slack = _borderline(real, gen, 3)
    # torch-fidelity averages in float32 (.float().mean()): 1e-6 absolute covers its rounding.
    assert abs(ours.precision - p) * len(gen) <= slack + 1e-6 * len(gen)
    assert abs(ours.recall - r) * len(real) <= slack + 1e-6 * len(real)


def _lattice():
    """Points on an integer lattice with duplicates: many distances equal a radius exactly."""
    rng = np.random.default_rng(7)
    real = rng.integers(0, 4, size=(60, 2)).astype(np.float32)
    gen = rng.integers(0, 4, size=(50, 2)).astype(np.float32)
    gen[:10] = real[:10]  # exact duplicates across the sets too
    return real, gen


def test_strict_and_inclusive_comparisons_at_exact_ties(capsys):
    from prdc import compute_prdc
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real, gen = _lattice()
    strict = prdc_features(real, gen, nearest_k=3)
    inclusive = prdc_features(real, gen, nearest_k=3, inclusive=True)
    ref = compute_prdc(real, gen, nearest_k=3)
    capsys.readouterr()
    p, r = calculate_precision_recall_full(torch.from_numpy(gen), torch.from_numpy(real), 3)
    # Integer features: every distance is exact in both, so the counts agree exactly.
    assert strict.as_dict() == pytest.approx({k: float(v) for k, v in ref.items()}, abs=1e-12)
    assert (inclusive.precision, inclusive.recall) == pytest.approx((p, r), abs=1e-6)  # its float32 mean
    # The ties matter here: the two conventions are far apart (not a round-off effect).
    assert inclusive.recall - strict.recall > 0.1 or inclusive.precision - strict.precision > 0.1


def test_blocks_do_not_change_the_counts():
    real, gen = _sets(n_real=90, n_gen=70, seed=5)
    whole = prdc_features(real, gen, nearest_k=4, chunk=4096)
    assert prdc_features(real, gen, nearest_k=4, chunk=7) == whole
    assert prdc_features(torch.from_numpy(real).double(), gen, nearest_k=4, chunk=16) == whole


def test_refuses_too_few_points_and_mismatched_dimensions():
    real, gen = _sets(n_real=5, n_gen=40)
    with pytest.raises(ShapeError, match="real: 5 points; nearest_k=5 needs at least 6"):
        prdc_features(real, gen)
    with pytest.raises(ShapeError, match="dimensions differ"):
        prdc_features(gen, gen[:, :3])


# pytorch-fid 0.3.0 calls scipy.linalg.sqrtm(..., disp=False), deprecated in SciPy 1.16.
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_fd_matches_pytorch_fid_on_features():
    from pytorch_fid.fid_score import calculate_frechet_distance

    real, gen = _sets(n_real=400, n_gen=350, d=16, seed=11)
    ref = calculate_frechet_distance(real.astype(np.float64).mean(0), np.cov(real.astype(np.float64), rowvar=False),
                                     gen.astype(np.float64).mean(0), np.cov(gen.astype(np.float64), rowvar=False))
    ours = fd_features(real, gen)
    assert ours > 1  # far above round-off
    assert ours == pytest.approx(ref, rel=1e-10)  # the same float64 computation
    assert fd_features(torch.from_numpy(real), gen, route="eigh") == pytest.approx(ref, rel=1e-8)
