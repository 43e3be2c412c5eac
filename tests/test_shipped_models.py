"""The models shipped in models/ load safely and still measure what their cards say."""
import pytest
import torch

from daps.trainer import CHECKPOINT_FORMAT
from envs.lafan1 import default_data_root
from daps.shipped import LOWLEVEL, MOTION_VAE, read_card, shipped_path
from motion_vae.card import SLICE, slice_metrics
from motion_vae.models import load_motion_vae

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")


def test_default_motion_vae_matches_its_card():
    path = shipped_path(MOTION_VAE)
    card = read_card(path.with_suffix(".md"))
    assert card["model_file"] == path.name and card["size_bytes"] == path.stat().st_size
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and data, no pickled objects
    assert raw["format"] == CHECKPOINT_FORMAT and raw["exported"] and "optimizer" not in raw
    assert raw["step"] == card["steps"]
    m = slice_metrics(path)
    assert m["slice_segments"] == SLICE == card["slice_segments"]
    assert m["slice_joint_rmse_rad"] == pytest.approx(card["slice_joint_rmse_rad"], abs=2e-3)
    assert m["slice_log_p"] == pytest.approx(card["slice_log_p"], rel=1e-2)


def test_default_motion_vae_is_what_commands_load_without_a_checkpoint():
    model, cfg, stats, ckpt = load_motion_vae(None)
    assert cfg.model.block_size == 64 and cfg.model.vocab_size == 1024 and stats.num_features == cfg.model.num_features
    assert next(model.parameters()).dtype == torch.float32
    assert ckpt["extra"]["val_clips"] == ["dance2_subject2", "fight1_subject2", "run2_subject1", "walk2_subject4"]


def test_default_lowlevel_policy_matches_its_card():
    from lowlevel.card import slice_metrics as ll_slice
    from lowlevel.checkpoint import EXPORT_KIND
    from daps.io import file_sha256

    path = shipped_path(LOWLEVEL)
    if not path.is_file():
        pytest.skip("no shipped low-level policy (models/lowlevel.pt)")
    card = read_card(path.with_suffix(".md"))
    assert card["model_file"] == path.name and card["size_bytes"] == path.stat().st_size
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if raw.get("format") == "daps-tracker-v1":  # the balancing tracker (lowlevel.tracker)
        from lowlevel.tracker_card import slice_metrics as tracker_slice

        assert raw["num_timesteps"] == card["env_steps"] and "optimizer" not in raw
        assert card["motion_vae_sha256"] == file_sha256(shipped_path(MOTION_VAE))
        m = tracker_slice(path)
        assert m["slice_starts"] == card["slice_starts"] and m["slice_seconds"] == card["slice_seconds"]
        assert m["slice_seconds_tracked"] == pytest.approx(card["slice_seconds_tracked"], abs=0.05)
        assert m["slice_joint_error_rad"] == pytest.approx(card["slice_joint_error_rad"], abs=5e-3)
        return
    assert raw["kind"] == EXPORT_KIND and raw["num_timesteps"] == card["env_steps"]
    assert card["motion_vae_sha256"] == file_sha256(shipped_path(MOTION_VAE))  # trained on the shipped motion VAE's codes
    m = ll_slice(path)
    assert m["slice_starts"] == card["slice_starts"] and m["slice_seconds"] == card["slice_seconds"]
    # deterministic policy in a deterministic simulator: equal on this machine, close elsewhere
    assert m["slice_seconds_tracked"] == pytest.approx(card["slice_seconds_tracked"], abs=0.05)
    assert m["slice_joint_error_rad"] == pytest.approx(card["slice_joint_error_rad"], abs=5e-3)
