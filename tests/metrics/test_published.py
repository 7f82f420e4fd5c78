"""Published values from implementations we did not write, checked on every run.

The IPOL anchors: ``imdiff`` (Lisani et al., IPOL 2011, https://www.ipol.im/pub/art/2011/g_lmii/)
run on scikit-image's ``data.camera()`` against a noisy copy made with NumPy's legacy seed 5
(``np.clip(cam + 20 * np.random.randn(*cam.shape), 0, 255).astype(np.uint8)``). Values computed
by Gregory Lee in September 2020 (scikit-image PR #4913) and used in scikit-image's own
``test_simple_metrics.py`` and ``test_structural_similarity.py`` with the tolerances kept here:
PSNR to 1e-4 dB, mean SSIM to 1.5e-3 (imdiff's Gaussian window is not exactly iqa's).
They are a sanity anchor, not a convention test: the convention tests compare with
scikit-image and pytorch-msssim at 1e-9 and tighter.

Optional: the authors' ``msssim.m`` run by GNU Octave on odd sizes, with the file read from
``IQA_MSSSIM_M`` (research licence: it is not copied into this repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from skimage import data

import iqa

IPOL_PSNR = 22.409353363576034
IPOL_MSSIM = 0.357959091663361


def _camera_pair() -> tuple[np.ndarray, np.ndarray]:
    cam = data.camera()
    rng = np.random.RandomState(5)  # np.random.seed(5) then np.random.randn, as scikit-image's tests
    noisy = np.clip(cam + 20.0 * rng.randn(*cam.shape), 0, 255).astype(cam.dtype)
    return cam, noisy


def test_psnr_matches_ipol_imdiff():
    cam, noisy = _camera_pair()
    assert iqa.psnr(cam, noisy) == pytest.approx(IPOL_PSNR, abs=1e-4)  # observed 5e-7 dB


def test_ssim_matches_ipol_imdiff():
    cam, noisy = _camera_pair()
    assert iqa.ssim(cam, noisy) == pytest.approx(IPOL_MSSIM, abs=1.5e-3)  # observed 5e-6


def test_ipol_anchor_detects_a_wrong_data_range():
    # The anchor can fail: a data range of 1.0 for uint8 data (a common mistake) misses it.
    # The range check warns about that mistake too.
    cam, noisy = _camera_pair()
    with pytest.warns(iqa.RangeWarning, match="outside the data range"):
        wrong = iqa.ssim(cam.astype(np.float64), noisy.astype(np.float64), data_range=1.0)
    assert abs(wrong - IPOL_MSSIM) > 1e-2


_MSSSIM_M = os.environ.get("IQA_MSSSIM_M")


@pytest.mark.skipif(not _MSSSIM_M, reason="set IQA_MSSSIM_M to the authors' msssim.m (see tests/data/README.md)")
@pytest.mark.skipif(shutil.which("octave") is None, reason="GNU Octave (Debian: octave, octave-image) is not installed")
@pytest.mark.parametrize("shape", [(181, 203), (256, 257)])
def test_ms_ssim_matches_msssim_m_on_odd_sizes(tmp_path, shape):
    rng = np.random.default_rng(shape[0])
    ref = rng.integers(0, 256, shape, dtype=np.uint8)
    dist = np.clip(ref + rng.normal(0, 15, shape), 0, 255).astype(np.uint8)
    np.savetxt(tmp_path / "ref.txt", ref, fmt="%d")
    np.savetxt(tmp_path / "dist.txt", dist, fmt="%d")
    folder = os.path.dirname(os.path.abspath(_MSSSIM_M))
    script = (
        f"pkg load image; addpath('{folder}'); a = load('{tmp_path}/ref.txt'); b = load('{tmp_path}/dist.txt');"
        " printf('%.15g\\n', msssim(a, b));"
    )
    out = subprocess.run(["octave", "--no-gui", "--quiet", "--eval", script], capture_output=True, text=True,
                         timeout=120, check=True)
    # msssim.m filters with filter2 'valid' and imfilter 'symmetric' downsampling, as iqa; 1e-6
    # covers Octave's float64 filter order against OpenCV's.
    assert iqa.ms_ssim(ref, dist) == pytest.approx(float(out.stdout.split()[-1]), abs=1e-6)
