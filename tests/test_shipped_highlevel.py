"""The shipped high-level policy (models/highlevel.pt) loads safely, pins its motion VAE and still
measures what its card says. Skipped until the file is shipped."""
import pytest
import torch

from daps.trainer import CHECKPOINT_FORMAT
from envs.lafan1 import default_data_root
from daps.io import file_sha256
from daps.shipped import HIGHLEVEL, MOTION_VAE, read_card, shipped_path

pytestmark = [
    pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available"),
    pytest.mark.skipif(not shipped_path(HIGHLEVEL).is_file(), reason="no shipped models/highlevel.pt yet"),
]


def test_default_highlevel_matches_its_card():
    from highlevel.card import SLICE, slice_metrics

    path = shipped_path(HIGHLEVEL)
    card = read_card(path.with_suffix(".md"))
    assert card["model_file"] == path.name and card["size_bytes"] == path.stat().st_size
    assert path.stat().st_size < 5e6  # a few MB at most
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and data, no pickled objects
    assert raw["format"] == CHECKPOINT_FORMAT and raw["kind"] == "highlevel" and raw["exported"]
    assert "optimizer" not in raw and "rng" not in raw
    assert raw["step"] == card["steps"]
    # the motion VAE it was trained against is the one shipped beside it
    assert raw["extra"]["motion_vae_sha256"] == card["motion_vae_sha256"] == file_sha256(shipped_path(MOTION_VAE))
    m = slice_metrics(path)
    assert m["slice_pairs"] == card["slice_pairs"] and card["slice_pairs"] <= SLICE
    for k in ("text+com+history", "history only", "unconditional"):
        assert m[f"slice_nll/{k}"] == pytest.approx(card[f"slice_nll/{k}"], abs=2e-3), k
    assert m["slice_nll/text+com+history"] < m["slice_nll/unconditional"]


def test_default_highlevel_is_what_commands_load_without_a_checkpoint():
    from highlevel.ship import load_highlevel

    prior, cfg, ck, vae = load_highlevel(None)
    assert ck["exported"] and vae == shipped_path(MOTION_VAE)
    assert next(prior.parameters()).dtype == torch.float32 and cfg.prior.vocab_size == 1024 and cfg.prior.block_size == 64
