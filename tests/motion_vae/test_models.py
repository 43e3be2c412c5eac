"""Loading and exporting trained motion VAEs: damaged and foreign files, the slim export."""
import pytest
import torch

from daps.trainer import CheckpointError, atomic_torch_save
from motion_vae.models import load_motion_vae
from motion_vae_support import NEEDS_DATA, run_cli

pytestmark = NEEDS_DATA


def test_corrupt_and_foreign_checkpoints(tmp_path, trained):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(trained.read_bytes()[:5000])
    r = run_cli("motion-vae", "eval", "--ckpt", str(corrupt), "--out", str(tmp_path / "ev"), "--device", "cpu")
    assert r.returncode == 2 and "corrupt.pt" in r.stderr and "not a readable checkpoint" in r.stderr
    assert not (tmp_path / "ev" / "eval.json").exists()

    ckpt = torch.load(trained, weights_only=True)
    ckpt["config"]["model"]["vocab_size"] = 128  # weights no longer fit the config
    foreign = tmp_path / "foreign.pt"
    atomic_torch_save(ckpt, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: checkpoint does not match its config"):
        load_motion_vae(foreign)

    ckpt["kind"] = "lowlevel_policy"
    atomic_torch_save(ckpt, foreign)
    r = run_cli("motion-vae", "encode", "--ckpt", str(foreign), "--clip", "x.csv", "--out", str(tmp_path / "c.csv"))
    assert r.returncode == 2 and "expected 'motion_vae'" in r.stderr


def test_export_is_slim_half_precision_and_loads_like_the_checkpoint(tmp_path, trained):
    from motion_vae.models import export_motion_vae

    out = export_motion_vae(trained, tmp_path / "m.pt")
    raw = torch.load(out, weights_only=True)
    assert "optimizer" not in raw and "rng" not in raw
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    assert out.stat().st_size < trained.stat().st_size / 2
    a, _, _, _ = load_motion_vae(trained)
    b, _, _, _ = load_motion_vae(out)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert vb.dtype == va.dtype and torch.allclose(va, vb, atol=2e-3 * (1 + va.abs().max().item())), k
