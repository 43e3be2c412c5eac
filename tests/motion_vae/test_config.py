"""Motion VAE configs: the presets' schedules, checkpoints of older layouts, per-column variance."""
import subprocess
import sys

import pytest
import torch

from motion_vae.config import MotionVAEConfig, preset_config
from motion_vae_support import NEEDS_DATA

pytestmark = NEEDS_DATA


def test_cpu_presets_end_with_their_decaying_daps_phase():
    from motion_vae.config import set_method

    cpu, long = preset_config("cpu"), preset_config("cpu-long")
    for cfg in (cpu, long):
        assert cfg.model.arch == "conv" and cfg.method == "daps-na" and cfg.model.lattice
        assert cfg.model.lattice_bound == "tanh" and cfg.daps.st_warmup_steps < cfg.steps
    assert cpu.steps == cpu.daps.st_warmup_steps + cpu.optim.decay_steps  # warm start, then DAPS as the rates fall
    assert long.optim.decay_steps == long.steps and long.mirror and not cpu.mirror  # rates fall over the whole run
    assert long.model.root_height_variance == 0.25 / 16 and cpu.model.root_height_variance is None
    assert set_method(preset_config("cpu-long"), "fsq").model.root_height_variance == 0.25 / 16  # compared alike
    # the AR-encoder methods get what fits the time budget, their beta and rates ending inside it
    gumbel, fsq = set_method(long, "gumbel"), set_method(long, "fsq")
    assert gumbel.steps == gumbel.optim.decay_steps == 5_000 and gumbel.objective["beta"]["final"] == 0.01 and gumbel.eval_every == 312
    assert fsq.steps == fsq.optim.decay_steps == 42_000 and long.steps == 42_000  # the preset itself is unchanged
    daps_ar = set_method(long, "daps")
    assert daps_ar.steps == 2_000 and daps_ar.eval_every == 125 and fsq.eval_every == long.eval_every == 2_500  # ~16 curve points each
    assert daps_ar.model.aligned_input and not gumbel.model.aligned_input and not set_method(cpu, "daps").model.aligned_input
    for method in ("daps", "fsq", "vqvae", "gumbel", "grmck"):  # the bound is DAPS-NA's; the others build
        assert set_method(preset_config("cpu"), method).model.lattice_bound == "box"


def test_checkpoints_without_a_method_field_are_daps_or_fsq():
    from motion_vae.config import MotionTrainConfig, method_name, set_method

    for method, legacy in (("daps-na", "daps-na"), ("fsq", "fsq"), ("daps", "daps")):
        d = set_method(preset_config("cpu"), method).to_dict()
        del d["method"], d["objective"]  # as written before the fields existed
        assert method_name(MotionTrainConfig.from_dict(d)) == legacy
    assert preset_config("cpu").beta_final == 1.0 and set_method(preset_config("cpu"), "gumbel").beta_final == 0.01


def test_root_height_variance_weights_one_column_and_is_validated(tmp_path):
    """root_height_variance: sigma^2 of column 0 (root height) alone; log p stays a normalised
    Gaussian (nats); bad values are refused by the config and the CLI."""
    import math

    from motion_vae.config import MotionVAEConfig
    from motion_vae.models import build_motion_vae

    cfg = MotionVAEConfig(num_features=5, vocab_size=16, embed_dim=16, num_heads=2, num_layers=1, root_height_variance=0.01)
    lik = build_motion_vae(cfg).likelihood
    x, mu = torch.randn(3, 4, 5), torch.randn(3, 2, 4, 5)
    var = torch.tensor([0.01, 0.25, 0.25, 0.25, 0.25])
    want = (-0.5 * (x.unsqueeze(1) - mu).square() / var - 0.5 * torch.log(2 * math.pi * var)).flatten(2).sum(-1)
    torch.testing.assert_close(lik.log_prob(x, mu), want)
    assert lik.log_var(mu)[..., 0].exp().allclose(torch.tensor(0.01)) and not any(
        "channel_variance" in k for k in build_motion_vae(cfg).state_dict())  # from the config, not stored
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="root_height_variance"):
            MotionVAEConfig(num_features=5, root_height_variance=bad)
    r = subprocess.run([sys.executable, "-m", "daps.cli", "motion-vae", "train", "--root-height-variance", "-1",
                        "--run-dir", str(tmp_path / "r")], capture_output=True, text=True)
    assert r.returncode != 0 and "root_height_variance" in r.stderr and not (tmp_path / "r").exists()
