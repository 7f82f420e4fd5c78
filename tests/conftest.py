"""Shared fixtures: small deterministic images written in many formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _outside_the_source_tree(tmp_path_factory, monkeypatch):
    """Run every test from an empty folder. From the repository root, a child ``python``
    would import the source folder ``iqa/`` (which lacks ``iqa.cli``, installed from ``cli/``)
    instead of the installed package; tests must exercise what users install."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def samples_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "samples"


@pytest.fixture(scope="session")
def squeeze_weights(tmp_path_factory) -> Path:
    """A torchvision SqueezeNet 1.1 state dict with seeded random weights: no download, and
    features that differ between images, so LPIPS values are far from zero."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "squeezenet_random.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def comparison(tmp_path_factory) -> Path:
    """``iqa compare``'s output folder for 40 small images (five with names that HTML and
    URLs take for syntax), three methods, PSNR and SSIM."""
    import iqa
    from report_images import HOSTILE_NAMES, make_images

    root = tmp_path_factory.mktemp("comparison")
    f = make_images(root / "images", 40, names=list(HOSTILE_NAMES))
    out = root / "out"
    iqa.compare(f["reference"], {m: f[m] for m in ("good", "bad", "same")}, output=out, metrics=["psnr", "ssim"],
                n_resamples=1000)
    return out


@pytest.fixture(scope="session")
def comparison_report(comparison, tmp_path_factory) -> Path:
    """``index.html`` of the report of :func:`comparison` (galleries of 3)."""
    import iqa

    return iqa.report(comparison, tmp_path_factory.mktemp("report") / "report", gallery_size=3)


@pytest.fixture(scope="session")
def clip_archive(tmp_path_factory) -> Path:
    """A generated float16 TorchScript CLIP archive (OpenAI's file format) with ViT-L/14@336px's
    interface and a small body (``clip_weights.SMALL``), shared by the CLIP and CMMD tests."""
    import clip_weights as cw

    return cw.torchscript_file(tmp_path_factory.mktemp("clip"))
