"""Shared fixtures: small deterministic images written in many formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def samples_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "samples"
