"""Evaluating a motion VAE: the report files, greedy codes, training segments, clip round trips."""
import json

import numpy as np
import pytest
import torch

from envs.lafan1 import load_clip_csv, resolve_clip_dir
from motion_vae.evaluate import evaluate_checkpoint
from motion_vae.models import load_motion_vae
from motion_vae_support import NEEDS_DATA, VAL

pytestmark = NEEDS_DATA


def test_evaluate_checkpoint_writes_json_and_png(tmp_path, trained):
    m = evaluate_checkpoint(trained, tmp_path, num_segments=20, device="cpu")
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["log_p"] == pytest.approx(m["log_p"])
    for key in ("beta_elbo", "elbo", "log_p", "l2", "psnr_db", "codebook_used", "code_perplexity", "joint_rmse_rad"):
        assert np.isfinite(saved[key]), key
    assert (tmp_path / "reconstruction.png").stat().st_size > 10_000
    assert not any(k.startswith("train/") for k in saved) and saved["train_segments"] == 0
    assert saved["greedy"] is False


def test_greedy_evaluation_scores_the_most_likely_code(trained):
    from motion_vae.evaluate import evaluate_segments

    model, cfg, stats, _ = load_motion_vae(trained)
    x = torch.randn(12, cfg.model.segment_length, stats.num_features)
    sampled = [evaluate_segments(model, x, stats, 1.0, seed=s) for s in (0, 1)]
    greedy = [evaluate_segments(model, x, stats, 1.0, seed=s, greedy=True) for s in (0, 1)]
    assert sampled[0]["log_p"] != sampled[1]["log_p"]  # the seed draws other codes
    assert greedy[0] == greedy[1]  # the most likely code does not depend on it


def test_evaluate_checkpoint_scores_training_segments_too(tmp_path, trained):
    m = evaluate_checkpoint(trained, tmp_path, num_segments=20, device="cpu", train_segments=16, clip_segments=8)
    assert m["train_segments"] == 16 and m["clip_segments"] == 8
    per_clip = [m[f"clip/{n}/joint_rmse_rad"] for n in VAL]
    assert all(np.isfinite(per_clip)) and len(set(per_clip)) == len(VAL)  # each validation clip on its own
    one = evaluate_checkpoint(trained, tmp_path / "one", num_segments=20, device="cpu", clip_segments=20)
    assert one[f"clip/{VAL[0]}/joint_rmse_rad"] == pytest.approx(one["joint_rmse_rad"])  # one clip: the same segments
    for key in ("log_p", "joint_rmse_rad", "code_perplexity"):
        assert np.isfinite(m[f"train/{key}"]) and m[f"train/{key}"] != m[key], key  # other segments, other figures


def test_clip_round_trip_reports_round_trip_and_references(trained):
    from motion_vae.evaluate import clip_round_trip

    model, cfg, stats, _ = load_motion_vae(trained)
    rows = load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:100]
    res = clip_round_trip(model, stats, rows)
    assert set(res) == {"round_trip", "anchored", "still_frame", "mean_pose"}
    assert res["mean_pose"]["root_xy_drift_m"] == 0 and res["mean_pose"]["root_height_rmse_m"] == 0
    # holding a segment's first frame: its drift is the true displacement since that frame
    assert 0 < res["still_frame"]["root_xy_drift_m"] < 1.0 and res["still_frame"]["joint_rmse_rad"] > 0
    assert all(np.isfinite(v) for e in res.values() for v in e.values())
