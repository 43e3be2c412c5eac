"""A regular (non-editable) `pip install .` carries the shipped models: `daps command` runs from a
folder outside the repository on the models the install put in the environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache")

pytestmark = pytest.mark.slow


def _venv(path: Path) -> Path:
    """A fresh virtual environment whose packages are this environment's (torch, mujoco, ...): made
    by the base interpreter with --system-site-packages, plus a .pth line naming this environment's
    site-packages (only a path: its .pth files, an editable install of this project among them, are
    not run). Returns its python; skips the test when no environment can be made here."""
    base = getattr(sys, "_base_executable", sys.executable)
    made = subprocess.run([base, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
                          capture_output=True, text=True)
    python = path / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()[-300:]}")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_outer_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_non_editable_install_runs_daps_command_on_its_own_models(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP_COPY)
    python = _venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAPS_MODELS_DIR", "PYTHONHOME")}
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                   env=env, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    shutil.rmtree(src)  # the install must not read the source tree it was built from

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import daps, daps.shipped as s; print(daps.__file__); print(s.models_dir())"],
                           env=env, cwd=elsewhere, capture_output=True, text=True, check=True).stdout.split()
    venv = (tmp_path / "venv").resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where  # the installed copy, not this checkout

    out = tmp_path / "out" / "walk.mp4"
    run = subprocess.run([tmp_path / "venv" / "bin" / "daps", "command", "walk forward", "--kinematic", "--seconds", "2",
                          "--out", str(out)], env=env, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert out.stat().st_size > 0
    report = json.loads(out.with_suffix(".json").read_text())
    for key in ("model", "motion_vae"):  # the models the install put in the environment
        assert Path(report[key]).resolve().is_relative_to(venv), report[key]
    assert report["frames"] == 60 and len(report["segments"]) == 2  # 2 s at 30 Hz, two 32-frame segments
