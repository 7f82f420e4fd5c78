"""Packaging and import-time promises: light imports, lazy exports, the wheel's contents."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import iqa

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_does_not_load_torch_or_scipy():
    out = _fresh("import sys, iqa; print('torch' in sys.modules, 'scipy' in sys.modules)")
    assert out == "False False"


def test_numpy_metrics_need_no_torch():
    code = (
        "import sys, numpy as np, iqa; a = np.arange(4096, dtype=np.uint8).reshape(64, 64); "
        "iqa.psnr(a, a // 2); iqa.ssim(a, a // 2); print('torch' in sys.modules)"
    )
    assert _fresh(code) == "False"


def test_help_does_not_load_torch():
    code = (
        "import sys; from click.testing import CliRunner; from iqa.cli import main; "
        "CliRunner().invoke(main, ['--help']); print('torch' in sys.modules)"
    )
    assert _fresh(code) == "False"


def test_all_is_sorted_and_resolves():
    assert iqa.__all__ == sorted(iqa.__all__)
    for name in iqa.__all__:
        assert getattr(iqa, name) is not None
    with pytest.raises(AttributeError):
        iqa.no_such_metric  # noqa: B018


@pytest.mark.slow
def test_wheel_has_no_top_level_cli(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("iqa", "cli"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("iqa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "iqa/cli/__init__.py" in names and "iqa/cli/app.py" in names
    assert not any(n.startswith("cli/") for n in names)
    # Every module of the tree is installed (a subpackage missing from pyproject's package
    # list would be left out of the wheel silently): iqa/ as is, cli/ as iqa/cli/.
    tree = [f"iqa/{p.relative_to(src / 'iqa').as_posix()}" for p in (src / "iqa").rglob("*.py")]
    tree += [f"iqa/cli/{p.relative_to(src / 'cli').as_posix()}" for p in (src / "cli").rglob("*.py")]
    assert "iqa/metrics/ssim.py" in tree and "iqa/scoring/engine.py" in tree
    assert sorted(set(tree) - set(names)) == []
    # The report's page, style and script are package data.
    assets = [f"iqa/compare/report_assets/{p.name}" for p in (src / "iqa" / "compare" / "report_assets").iterdir()]
    assert "iqa/compare/report_assets/report.js" in assets
    assert sorted(set(assets) - set(names)) == []
