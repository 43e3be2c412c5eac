"""Helpers of the motion VAE tests: the clips they use, a tiny config, the CLI, bad clip files."""
import subprocess
import sys

import pytest

from envs.lafan1 import default_data_root
from motion_vae.config import MotionVAEConfig, preset_config

NEEDS_DATA = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")
TRAIN, VAL = ["walk1_subject1", "run1_subject2"], ["walk2_subject4"]


def tiny_config(steps=4, **kw):
    """The paper's layout at a tiny size: 64 tokens over 32 frames, small vocab and width."""
    cfg = preset_config("cpu")
    cfg.model = MotionVAEConfig(num_features=0, vocab_size=64, embed_dim=32, num_heads=2, num_layers=1)
    cfg.batch_size, cfg.steps, cfg.log_every, cfg.eval_every, cfg.ckpt_every, cfg.val_segments = 8, steps, 1, 0, 2, 32
    cfg.daps.st_warmup_steps = 0  # the warm start belongs to the lattice encoder, not this AR one
    cfg.optim.decay_steps = 0  # a few steps at the full rate (the preset decays over its last 1500)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def run_cli(*args, cwd=None):
    exe = [sys.executable, "-c", "from daps.cli import main; main()"]
    return subprocess.run(exe + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


# ---------------------------------------------------------------- bad input, through the CLI
BAD_CSVS = {
    "columns.csv": ("0," * 24 + "0\n", "line 1: expected 26 columns, got 25"),
    "word.csv": (",".join(["0"] * 25 + ["abc"]) + "\n", "line 1: column 25 is not a number"),
    "nan.csv": (",".join(["0"] * 6 + ["1"] + ["0"] * 18 + ["nan"]) + "\n", "line 1: column 25 is not finite"),
    "empty.csv": ("", "file is empty"),
    "short.csv": ((",".join(["0"] * 6 + ["1"] + ["0"] * 19) + "\n") * 5, "clip has 5 frames, need at least 32"),
}


def tiny_compare(monkeypatch, **steps):
    """motion_vae.compare with every preset swapped for the tiny config (64 codes) and the `cpu`
    step budget of the named methods cut to the given counts."""
    import motion_vae.compare as mc
    from motion_vae.config import CPU_STEPS

    def tiny(name):
        cfg = tiny_config(val_segments=16)
        cfg.model.fsq_levels = (4, 4, 4)  # 64 codes, the tiny vocabulary
        return cfg

    monkeypatch.setattr(mc, "preset_config", tiny)
    for method, n in steps.items():
        monkeypatch.setitem(CPU_STEPS, method, n)
    return mc
