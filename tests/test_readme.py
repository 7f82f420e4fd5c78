"""The README's promises: every `iqa` line in its shell blocks runs as written, and CI runs
the README's test command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", README, flags=re.S):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def iqa_commands() -> list[str]:
    out = []
    for line in shell_lines():
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("iqa "):
                out.append(part)
    return out


def test_readme_has_commands():
    assert len(iqa_commands()) >= 5


@pytest.mark.parametrize("command", iqa_commands())
def test_readme_iqa_line_runs(command, tmp_path):
    shutil.copytree(ROOT / "data" / "samples", tmp_path / "data" / "samples")
    exe = shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))
    args = shlex.split(command)
    proc = subprocess.run([exe, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() or list(tmp_path.glob("*.csv")), "the command printed nothing"


def test_ci_runs_the_readme_test_command():
    test_command = next(line for line in shell_lines() if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci]
