"""Motion VAE end to end on small slices of the real LAFAN1-H1 data, and every bad-input path."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from daps.trainer import CheckpointError, _check_schedule, atomic_torch_save, load_checkpoint
from motion_vae.codec import decode_codes, encode_clip, read_codes_csv, write_codes_csv
from envs.lafan1 import DataError, default_data_root, load_clip_csv, resolve_clip_dir
from motion_vae.dataset import load_motion_dataset
from motion_vae.evaluate import evaluate_checkpoint
from motion_vae.models import load_motion_vae
from motion_vae.config import MotionVAEConfig
from motion_vae.config import preset_config
from motion_vae.train import train_motion_vae

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")

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


@pytest.fixture(scope="module")
def data():
    return load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("run")
    train_motion_vae(tiny_config(steps=2), run, device="cpu", progress=False, data=data)
    return run / "checkpoint.pt"


def run_cli(*args, cwd=None):
    exe = [sys.executable, "-c", "from daps.cli import main; main()"]
    return subprocess.run(exe + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_dataset_standardised_with_training_stats(data):
    x = np.concatenate(data.train.clips)
    assert np.allclose(x.mean(0), 0, atol=1e-3) and np.allclose(x.std(0), 1, atol=1e-2)
    assert data.stats.num_features == len(data.feature_names) == x.shape[1]
    assert data.train.sample(np.random.default_rng(0), 5).shape == (5, 32, x.shape[1])
    assert np.array_equal(data.val.fixed(16, seed=0), data.val.fixed(16, seed=0))


@pytest.mark.slow
def test_short_training_run_lowers_validation_loss(tmp_path, data):
    cfg = tiny_config(steps=200, eval_every=0)
    cfg.optim.lr = 3e-3
    # the thread count changes the float rounding and so the sampled codes: pinned, so the run does
    # not depend on what earlier tests set (at 120 steps one thread gave 226 nats of code
    # information, two 1244; at 200 steps 550 and 1620)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    finally:
        torch.set_num_threads(threads)
    rows = list(csv_rows(tmp_path / "metrics.csv"))
    first = np.mean([float(r["log_p"]) for r in rows[:5]])
    assert m["log_p"] > first + 500, (first, m["log_p"])  # training log p rises
    assert m["val/log_p"] > m["val/log_p_mean_reference"]  # beats predicting the mean
    assert 0.2 < m["ess_frac"] <= 1.0
    # the encoder learned codes that say which segment it saw: near-uniform (Xavier) codes at
    # step 0 carry nothing, so only the DAPS encoder update can open this gap
    untrained = float(next(csv_rows(tmp_path / "eval.csv"))["code_info_nats"])
    assert m["val/code_info_nats"] > max(300, 5 * abs(untrained)), (untrained, m["val/code_info_nats"])


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


def test_resume_after_kill_continues_exactly(tmp_path, data):
    cfg = tiny_config(steps=4)
    full = tmp_path / "full"
    train_motion_vae(cfg, full, device="cpu", progress=False, data=data)

    killed = tmp_path / "killed"

    class Killed(Exception):
        pass

    calls = {"n": 0}
    real_sample = data.train.sample

    def dying_sample(rng, batch):  # the process "dies" while drawing the batch of step 3
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return real_sample(rng, batch)

    data.train.sample = dying_sample
    try:
        with pytest.raises(Killed):
            train_motion_vae(cfg, killed, device="cpu", progress=False, data=data)
    finally:
        data.train.sample = real_sample
    assert load_checkpoint(killed / "checkpoint.pt", "motion_vae")["step"] == 2
    train_motion_vae(cfg, killed, device="cpu", progress=False, data=data, resume=True)
    a, b = torch.load(full / "checkpoint.pt", weights_only=True), torch.load(killed / "checkpoint.pt", weights_only=True)
    assert b["step"] == 4
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k
    assert torch.allclose(a["objective"]["log_eta"], b["objective"]["log_eta"])
    assert [r["step"] for r in csv_rows(killed / "metrics.csv")] == ["1", "2", "3", "4"]


def test_resume_refuses_another_config(tmp_path, data, trained):
    run = trained.parent
    with pytest.raises(CheckpointError, match="another config"):
        train_motion_vae(tiny_config(steps=2, batch_size=4), run, device="cpu", progress=False, data=data, resume=True)


def test_resume_may_change_the_schedule(tmp_path, data):
    """A longer run, another learning-rate decay: the same run continues; a warm start whose end
    the checkpoint has passed cannot move (`daps.trainer.SCHEDULE_FIELDS`)."""
    run = tmp_path / "run"
    train_motion_vae(tiny_config(steps=2), run, device="cpu", progress=False, data=data)
    longer = tiny_config(steps=4)
    longer.optim.decay_steps = 2
    train_motion_vae(longer, run, device="cpu", progress=False, data=data, resume=True)
    ckpt = load_checkpoint(run / "checkpoint.pt", "motion_vae")
    assert ckpt["step"] == 4 and ckpt["config"]["optim"]["decay_steps"] == 2  # the new schedule is the run's now
    old, new = ({"daps": {"st_warmup_steps": n}} for n in (10, 6))
    _check_schedule(run, old, new, step=5)  # still warming up under both: fine
    for step in (6, 10):
        with pytest.raises(CheckpointError, match="past the warm start's end"):
            _check_schedule(run, old, new, step=step)


def test_encode_decode_round_trip_shapes(trained):
    model, cfg, stats, _ = load_motion_vae(trained)
    rows = load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:100]
    codes = encode_clip(model, stats, rows)
    assert codes.shape == (4, 64) and codes.min() >= 0 and codes.max() < 64  # 3 segments + the padded tail
    assert np.array_equal(codes, encode_clip(model, stats, rows))  # seeded: deterministic
    greedy = encode_clip(model, stats, rows, greedy=True)
    assert np.array_equal(greedy[:3], encode_clip(model, stats, rows[:96], greedy=True))  # padding leaves whole segments alone
    out = decode_codes(model, stats, codes, rows)
    assert out.shape == (128, 26) and np.isfinite(out).all()
    assert np.allclose(out[0, :2], rows[0, :2])  # root starts where the clip starts


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


# ---------------------------------------------------------------- bad input, through the CLI
BAD_CSVS = {
    "columns.csv": ("0," * 24 + "0\n", "line 1: expected 26 columns, got 25"),
    "word.csv": (",".join(["0"] * 25 + ["abc"]) + "\n", "line 1: column 25 is not a number"),
    "nan.csv": (",".join(["0"] * 6 + ["1"] + ["0"] * 18 + ["nan"]) + "\n", "line 1: column 25 is not finite"),
    "empty.csv": ("", "file is empty"),
    "short.csv": ((",".join(["0"] * 6 + ["1"] + ["0"] * 19) + "\n") * 5, "clip has 5 frames, need at least 32"),
}


@pytest.mark.parametrize("name", list(BAD_CSVS))
def test_encode_rejects_bad_clip_file(tmp_path, trained, name):
    text, message = BAD_CSVS[name]
    clip = tmp_path / name
    clip.write_text(text)
    out = tmp_path / "codes.csv"
    r = run_cli("motion-vae", "encode", "--ckpt", str(trained), "--clip", str(clip), "--out", str(out), "--device", "cpu")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and message in lines[0], r.stderr
    assert not out.exists()


def test_train_with_missing_data_folder(tmp_path):
    run = tmp_path / "run"
    r = run_cli("motion-vae", "train", "--run-dir", str(run), "--data", str(tmp_path / "nowhere"), "--steps", "1")
    assert r.returncode == 2 and "nowhere" in r.stderr and "not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not run.exists()


def test_train_with_a_bad_clip_names_it(tmp_path):
    root = tmp_path / "lafan" / "h1"
    root.mkdir(parents=True)
    src = resolve_clip_dir(None)
    for name in ["dance2_subject2", "fight1_subject2", "run2_subject1", "walk2_subject4"]:
        os.symlink(src / f"{name}.csv", root / f"{name}.csv")
    (root / "walk1_subject1.csv").write_text(BAD_CSVS["nan.csv"][0] * 40)
    run = tmp_path / "run"
    r = run_cli("motion-vae", "train", "--run-dir", str(run), "--data", str(root.parent), "--steps", "1")
    assert r.returncode == 2 and "walk1_subject1.csv line 1" in r.stderr and not run.exists()


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


def test_decode_rejects_bad_codes(tmp_path, trained):
    bad = tmp_path / "codes.csv"
    bad.write_text(",".join(["1"] * 64) + "\n" + ",".join(["1"] * 63 + ["64"]) + "\n")
    out = tmp_path / "traj.csv"
    r = run_cli("motion-vae", "decode", "--ckpt", str(trained), "--codes", str(bad), "--out", str(out), "--device", "cpu")
    assert r.returncode == 2 and "codes.csv line 2: code 64 outside [0, 64)" in r.stderr and not out.exists()
    with pytest.raises(DataError, match="expected 64 codes, got 3"):
        bad.write_text("1,2,3\n")
        read_codes_csv(bad, 64, 64)
    with pytest.raises(DataError, match="100 frames do not fit 1 segments"):
        bad.write_text("# frames: 100\n" + ",".join(["1"] * 64) + "\n")
        read_codes_csv(bad, 64, 64)


def test_cli_encode_then_decode(tmp_path, trained):
    clip = resolve_clip_dir(None) / "walk2_subject4.csv"
    codes, traj = tmp_path / "codes.csv", tmp_path / "traj.csv"
    r = run_cli("motion-vae", "encode", "--ckpt", str(trained), "--clip", str(clip), "--out", str(codes), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    z, num_frames = read_codes_csv(codes, 64, 64)
    n = len(load_clip_csv(clip))
    assert num_frames == n and len(z) == -(-n // 32)
    r = run_cli("motion-vae", "decode", "--ckpt", str(trained), "--codes", str(codes), "--out", str(traj), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert load_clip_csv(traj).shape == (n, 26)  # every frame back, the padded tail cut off
    write_codes_csv(tmp_path / "again.csv", z, num_frames)
    assert (tmp_path / "again.csv").read_text() == codes.read_text()


def test_resume_with_more_steps_extends_the_run(tmp_path, data):
    cfg = tiny_config(steps=2)
    train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    m = train_motion_vae(tiny_config(steps=4), tmp_path, device="cpu", progress=False, data=data, resume=True)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt", "motion_vae")
    assert ckpt["step"] == 4 and ckpt["config"]["steps"] == 4 and m["train_seconds"] >= ckpt["train_seconds"] - 1e-6
    with pytest.raises(CheckpointError, match="past the 3 steps"):
        train_motion_vae(tiny_config(steps=3), tmp_path, device="cpu", progress=False, data=data, resume=True)


def test_time_limit_stops_early_with_a_checkpoint(tmp_path, data):
    m = train_motion_vae(tiny_config(steps=10_000), tmp_path, device="cpu", progress=False, data=data, time_limit_s=1.0)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt", "motion_vae")
    assert 0 < ckpt["step"] < 10_000 and ckpt["train_seconds"] >= 1.0 and "val/joint_rmse_rad" in m
    rows = list(csv_rows(tmp_path / "eval.csv"))
    assert rows[-1]["step"] == str(ckpt["step"]) and float(rows[-1]["train_seconds"]) >= 1.0
    train_motion_vae(tiny_config(steps=10_000), tmp_path, device="cpu", progress=False, data=data, time_limit_s=1.0, resume=True)
    assert load_checkpoint(tmp_path / "checkpoint.pt", "motion_vae")["step"] == ckpt["step"]  # out of time: no extra step


@pytest.mark.parametrize("method", ["daps-na", "fsq", "vqvae", "gumbel", "grmck"])
def test_other_methods_train_evaluate_and_round_trip(tmp_path, data, method):
    from motion_vae.config import set_method

    cfg = set_method(tiny_config(), method)
    cfg.steps, cfg.model.fsq_levels, cfg.model.lattice = 2, (4, 4, 4), method == "daps-na"
    m = train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    assert np.isfinite(m["val/log_p"]) and np.isfinite(m["val/code_info_nats"])
    model, cfg2, stats, _ = load_motion_vae(tmp_path / "checkpoint.pt")
    assert cfg2.model.recognition == {"daps-na": "na", "fsq": "fsq", "vqvae": "vq", "gumbel": "ar", "grmck": "ar"}[method]
    assert cfg2.method == method and (cfg2.objective.get("beta") is not None) == (method in ("gumbel", "grmck"))
    rows = load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:70]
    codes = encode_clip(model, stats, rows)
    assert codes.shape == (3, 64) and decode_codes(model, stats, codes, rows).shape == (96, 26)
    with pytest.raises(ValueError, match="unknown method"):
        set_method(cfg, "vq")


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



def test_resume_refuses_an_exported_model(tmp_path, data, trained):
    from motion_vae.models import export_motion_vae

    export_motion_vae(trained, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="exported model"):  # no optimiser state to resume from
        train_motion_vae(tiny_config(steps=4), tmp_path, device="cpu", progress=False, data=data, resume=True)


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


def test_model_card_json_errors_name_the_file(tmp_path):
    from daps.shipped import read_card

    card = tmp_path / "m.md"
    card.write_text("# card\nno json here\n")
    with pytest.raises(ValueError, match="m.md: model card has no"):
        read_card(card)
    card.write_text("```json\n{bad\n```\n")
    with pytest.raises(ValueError, match="m.md: model card JSON is malformed"):
        read_card(card)


def test_model_card_counts_augmented_training_clips_apart():
    from motion_vae.card import _describe_train_clips

    assert _describe_train_clips(TRAIN) == f"{len(TRAIN)} clips"
    mirrored = TRAIN + [n + "~mirror" for n in TRAIN]
    assert _describe_train_clips(mirrored) == f"{len(TRAIN)} clips + {len(TRAIN)} mirror images"
    assert _describe_train_clips(mirrored + [n + "~speed0.8" for n in mirrored]).endswith(f"+ {2 * len(TRAIN)} speed replays")


def test_cli_export_and_roundtrip(tmp_path, trained):
    out = tmp_path / "m.pt"
    r = run_cli("motion-vae", "export", "--ckpt", str(trained), "--out", str(out))
    assert r.returncode == 0 and out.exists(), r.stderr
    clip = tmp_path / "short.csv"
    clip.write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:80]) + "\n")
    r = run_cli("motion-vae", "roundtrip", "--ckpt", str(out), "--clip", str(clip), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "80 frames" in r.stdout and all(name in r.stdout for name in ("round_trip", "still_frame", "mean_pose"))
    r = run_cli("motion-vae", "roundtrip", "--ckpt", str(tmp_path / "none.pt"), "--clip", str(clip))
    assert r.returncode == 2 and "none.pt: checkpoint not found" in r.stderr


def test_straight_through_warm_start_then_daps(tmp_path, data):
    """`--st-warmup-steps`: FSQ-style steps first (logged st_warmup = 1), DAPS after (eta moves)."""
    from motion_vae.config import set_method, set_st_warmup

    cfg = set_method(tiny_config(steps=4), "daps-na")
    cfg.model.fsq_levels, cfg.model.lattice = (4, 4, 4), True
    cfg = set_st_warmup(cfg, 2)
    train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    rows = list(csv_rows(tmp_path / "metrics.csv"))
    assert [r["st_warmup"] for r in rows] == ["1.0", "1.0", "0.0", "0.0"]
    assert rows[0]["eta"] == rows[1]["eta"] == rows[2]["eta"] != rows[3]["eta"]  # eta waits for DAPS
    assert load_checkpoint(tmp_path / "checkpoint.pt", "motion_vae")["config"]["daps"]["st_warmup_steps"] == 2
    assert set_method(cfg, "fsq").daps.st_warmup_steps == 0
    with pytest.raises(ValueError, match="lattice"):
        set_st_warmup(tiny_config(), 5)
    bad = tiny_config(steps=2)
    bad.daps.st_warmup_steps = 1
    with pytest.raises(ValueError, match="lattice"):
        train_motion_vae(bad, tmp_path / "bad", device="cpu", progress=False, data=data)


def test_learning_rate_decays_over_the_last_steps():
    from daps.trainer import OptimConfig, lr_factor

    o = OptimConfig(lr=1e-3, decay_steps=4, min_lr_factor=0.1)
    f = [lr_factor(s, 10, o) for s in range(10)]
    assert f[:6] == [1.0] * 6 and f[-1] == pytest.approx(0.1)  # constant, then down to the floor at the last step
    assert all(a > b for a, b in zip(f[5:], f[6:]))
    assert lr_factor(9, 10, OptimConfig()) == 1.0  # default: constant


def test_decay_reaches_the_optimiser_and_old_checkpoints_still_resume(tmp_path, data):
    cfg = tiny_config(steps=3)
    train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    ckpt_path = tmp_path / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    for k in ("decay_steps", "min_lr_factor"):  # a checkpoint written before these fields existed
        del ckpt["config"]["optim"][k]
    for k in ("arch", "conv_width", "conv_res_blocks"):
        del ckpt["config"]["model"][k]
    del ckpt["config"]["mirror"]
    torch.save(ckpt, ckpt_path)
    train_motion_vae(tiny_config(steps=5), tmp_path, device="cpu", progress=False, data=data, resume=True)
    assert load_checkpoint(ckpt_path, "motion_vae")["step"] == 5
    decayed = tiny_config(steps=4)
    decayed.optim.decay_steps, decayed.optim.min_lr_factor = 2, 0.25
    train_motion_vae(decayed, tmp_path / "decay", device="cpu", progress=False, data=data)
    groups = load_checkpoint(tmp_path / "decay" / "checkpoint.pt", "motion_vae")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.25 * decayed.optim.lr] * 2)


def test_mirrored_training_clips_are_added_and_validation_is_left_alone(data):
    from motion_vae.dataset import MIRROR_SUFFIX, clip_features
    from motion_vae.features import feature_layout, feature_names

    mirrored = load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600, mirror=True)
    assert mirrored.train.names == TRAIN + [n + MIRROR_SUFFIX for n in TRAIN] and mirrored.val.names == data.val.names
    raw = clip_features(resolve_clip_dir(None) / "walk1_subject1.csv", max_frames=100)
    flip = clip_features(resolve_clip_dir(None) / "walk1_subject1.csv", max_frames=100, mirror=True)
    col = {n: i for i, n in enumerate(feature_names())}
    blocks = {b.name: b for b in feature_layout()}
    vel = blocks["root_lin_vel"].start
    np.testing.assert_allclose(flip[:, vel : vel + 3], raw[:, vel : vel + 3] * [1, -1, 1], atol=1e-6)  # sideways velocity flips
    knee = [n for n in col if "knee" in n and n.startswith("joint_pos")]
    assert len(knee) == 2  # left and right knee angles trade places
    np.testing.assert_allclose(flip[:, col[knee[0]]], raw[:, col[knee[1]]], atol=1e-6)
    np.testing.assert_allclose(flip[:, 0], raw[:, 0], atol=1e-6)  # root height unchanged
    assert not np.allclose(flip, raw)


def test_speed_augmented_training_clips_and_parse_speeds(data):
    from motion_vae.config import parse_speeds
    from motion_vae.dataset import MIRROR_SUFFIX, SPEED_SUFFIX

    played = load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600, mirror=True, speeds=[0.8, 1.25])
    base = TRAIN + [n + MIRROR_SUFFIX for n in TRAIN]
    assert played.train.names == base + [f"{n}{SPEED_SUFFIX}{s}" for s in (0.8, 1.25) for n in base]
    assert played.val.names == data.val.names
    lengths = dict(zip(played.train.names, (len(c) for c in played.train.clips)))
    assert lengths[f"{TRAIN[0]}{SPEED_SUFFIX}0.8"] == 749 and lengths[f"{TRAIN[0]}{SPEED_SUFFIX}1.25"] == 480  # 600 frames at 0.8x / 1.25x
    assert parse_speeds("0.8, 1.25") == [0.8, 1.25] and parse_speeds("") == []
    for bad in ("1", "0.1", "fast", "0.8,0.8"):
        with pytest.raises(ValueError, match="speeds"):
            parse_speeds(bad)


@pytest.mark.parametrize("method", ["daps-na", "fsq"])
def test_conv_arch_trains_resumes_and_round_trips(tmp_path, data, method):
    from motion_vae.config import set_method

    cfg = set_method(tiny_config(), method)
    cfg.steps, cfg.model.fsq_levels, cfg.model.lattice = 2, (4, 4, 4), method == "daps-na"
    cfg.model.arch, cfg.model.conv_width, cfg.model.conv_res_blocks = "conv", 16, 1
    cfg.mirror = True
    m = train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    assert np.isfinite(m["val/log_p"])
    cfg.steps = 3
    train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data, resume=True)
    model, cfg2, stats, ckpt = load_motion_vae(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 3 and cfg2.model.arch == "conv" and cfg2.mirror
    assert not any("encoder.blocks" in k for k in ckpt["model"])  # the conv stack replaces the transformer
    rows = load_clip_csv(resolve_clip_dir(None) / "walk2_subject4.csv")[:70]
    codes = encode_clip(model, stats, rows)
    assert codes.shape == (3, 64) and decode_codes(model, stats, codes, rows).shape == (96, 26)
    with pytest.raises(ValueError, match="arch"):
        MotionVAEConfig(num_features=4, arch="lstm")


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


@pytest.mark.slow
def test_compare_writes_table_csv_and_curves_and_resumes(tmp_path, data, monkeypatch):
    mc = tiny_compare(monkeypatch, fsq=3, gumbel=3)
    res = mc.compare(["fsq", "gumbel"], 2, "cpu", tmp_path, segments=32, data=data, progress=False)
    assert [(r["method"], r["seed"], r["step"]) for r in res["runs"]] == [("fsq", 0, 3), ("fsq", 1, 3), ("gumbel", 0, 3), ("gumbel", 1, 3)]
    table = (tmp_path / "table.md").read_text().splitlines()
    fsq_row, gumbel_row = table[3].split(" | "), table[4].split(" | ")
    assert fsq_row[0] == "| fsq" and fsq_row[7] == "-" and "+-" in gumbel_row[7]  # beta-ELBO only where q is stochastic
    assert res["runs"][0]["joint_rmse_rad"] != res["runs"][1]["joint_rmse_rad"]  # seeds differ
    # the most likely code: FSQ's is its code; Gumbel's scored again from its checkpoint
    fsq0, gumbel0 = res["runs"][0], res["runs"][2]
    assert fsq0["greedy_joint_rmse_rad"] == fsq0["joint_rmse_rad"] and fsq0["greedy_log_p"] == fsq0["log_p"]
    assert gumbel0["greedy_log_p"] != gumbel0["log_p"] and (tmp_path / "runs/gumbel/seed0/greedy/eval.json").is_file()
    assert table[1].split(" | ")[3] == "joint RMSE rad, greedy code" and "+-" in gumbel_row[3]
    record = tmp_path / "runs/gumbel/seed0/result.json"
    rec = json.loads(record.read_text())
    want = rec["row"].pop("greedy_joint_rmse_rad")
    record.write_text(json.dumps(rec))  # as written before the column: scored again from its checkpoint
    assert mc.compare(["gumbel"], 2, "cpu", tmp_path, segments=32, progress=False, train_seeds=[])["runs"][0]["greedy_joint_rmse_rad"] == pytest.approx(want)
    record.write_text(json.dumps(rec))
    (tmp_path / "runs/gumbel/seed0/checkpoint.pt").rename(tmp_path / "kept.pt")  # a record kept alone: nothing to score
    assert "greedy_joint_rmse_rad" not in mc.compare(["gumbel"], 2, "cpu", tmp_path, segments=32, progress=False, train_seeds=[])["runs"][0]
    (tmp_path / "kept.pt").rename(tmp_path / "runs/gumbel/seed0/checkpoint.pt")
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "runs/gumbel/seed1/eval.json").exists()
    before = (tmp_path / "runs/fsq/seed0/checkpoint.pt").stat().st_mtime_ns
    mc.compare(["fsq"], 1, "cpu", tmp_path, segments=32, data=data, progress=False)  # complete runs are not trained again
    assert (tmp_path / "runs/fsq/seed0/checkpoint.pt").stat().st_mtime_ns == before


def test_compare_goes_on_from_run_records_without_checkpoints(tmp_path, data, monkeypatch):
    """A comparison kept as result.json records only (another sitting or machine) rebuilds its
    table from them without training or reading data; records of another budget are refused."""
    import shutil

    mc = tiny_compare(monkeypatch, fsq=3)
    first = mc.compare(["fsq"], 1, "cpu", tmp_path / "a", segments=32, data=data, progress=False)
    kept = tmp_path / "b/runs/fsq/seed0"
    kept.mkdir(parents=True)
    shutil.copy(tmp_path / "a/runs/fsq/seed0/result.json", kept)  # only the record travels
    monkeypatch.setattr(mc, "train_motion_vae", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    again = mc.compare(["fsq"], 1, "cpu", tmp_path / "b", segments=32, progress=False, data_root=tmp_path / "no_data")
    assert again["runs"] == first["runs"] and (tmp_path / "b/table.md").read_text() == (tmp_path / "a/table.md").read_text()
    assert not (kept / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="result.json: segments 32 in the record"):
        mc.compare(["fsq"], 1, "cpu", tmp_path / "b", segments=64, progress=False)
    with pytest.raises(ValueError, match="result.json: max_minutes None in the record"):
        mc.compare(["fsq"], 1, "cpu", tmp_path / "b", segments=32, max_minutes=5, progress=False)
    (kept / "result.json").write_text("{")
    with pytest.raises(ValueError, match="result.json: not a comparison run record"):
        mc.compare(["fsq"], 1, "cpu", tmp_path / "b", segments=32, progress=False)


def test_cli_compare_rejects_unknown_methods(tmp_path):
    r = run_cli("motion-vae", "compare", "--methods", "daps-na,vq", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "unknown method(s) vq" in r.stderr and not (tmp_path / "c").exists()
    r = run_cli("motion-vae", "compare", "--methods", "fsq", "--arch", "lstm", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "transformer or conv" in r.stderr and not (tmp_path / "c").exists()
    r = run_cli("motion-vae", "compare", "--methods", "fsq", "--seeds", "2", "--train-seeds", "2", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "seeds in 0 .. 1" in r.stderr and not (tmp_path / "c").exists()


def test_train_cli_refuses_a_bad_weight_decay(tmp_path):
    from typer.testing import CliRunner

    from motion_vae.cli import app

    for bad in ("-0.1", "nan"):
        r = CliRunner().invoke(app, ["train", "--weight-decay", bad, "--run-dir", str(tmp_path / "r")])
        assert r.exit_code != 0 and "--weight-decay" in r.output and not (tmp_path / "r").exists()


def test_tanh_bounded_lattice_trains_through_the_warm_start_and_reloads(tmp_path, data):
    """--lattice-bound tanh: a DAPS-NA lattice run warm-starts as FSQ and goes on with DAPS; the
    bound is stored in the checkpoint and rebuilt on load; other encoders refuse it."""
    from motion_vae.config import set_method

    cfg = set_method(tiny_config(), "daps-na")
    cfg.steps, cfg.model.fsq_levels, cfg.model.lattice = 3, (4, 4, 4), True
    cfg.model.arch, cfg.model.conv_width, cfg.model.conv_res_blocks = "conv", 16, 1
    cfg.model.lattice_bound, cfg.daps.st_warmup_steps = "tanh", 2
    m = train_motion_vae(cfg, tmp_path, device="cpu", progress=False, data=data)
    assert np.isfinite(m["val/log_p"])
    model, loaded, _, _ = load_motion_vae(tmp_path / "checkpoint.pt", "cpu")
    assert loaded.model.lattice_bound == "tanh" and model.recognition.head.bound == "tanh"
    with pytest.raises(ValueError, match="lattice_bound"):
        MotionVAEConfig(num_features=0, recognition="ar", lattice=True, lattice_bound="tanh")


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


def test_compare_split_over_processes_by_train_seeds(tmp_path, data, monkeypatch):
    """Two processes side by side, one seed each: each trains only its seed, its table holds the
    runs finished so far, and the last one's table holds both."""
    mc = tiny_compare(monkeypatch, fsq=2)
    first = mc.compare(["fsq"], 2, "cpu", tmp_path, segments=16, data=data, progress=False, train_seeds=[1])
    assert [r["seed"] for r in first["runs"]] == [1] and not (tmp_path / "runs/fsq/seed0").exists()
    row = (tmp_path / "table.md").read_text().splitlines()[3]
    assert row.startswith("| fsq (1 of 2 seeds) |") and "+-" not in row  # one seed: its values, no error bar
    both = mc.compare(["fsq"], 2, "cpu", tmp_path, segments=16, data=data, progress=False, train_seeds=[0])
    assert [r["seed"] for r in both["runs"]] == [0, 1] and both["runs"][1] == first["runs"][0]
    assert (tmp_path / "table.md").read_text().splitlines()[3].startswith("| fsq | ")
    assert mc.compare(["fsq"], 2, "cpu", tmp_path, segments=16, progress=False, train_seeds=[])["runs"] == both["runs"]  # table only
    with pytest.raises(ValueError, match="no finished run"):
        mc.compare(["gumbel"], 2, "cpu", tmp_path, segments=16, progress=False, train_seeds=[])
    with pytest.raises(ValueError, match=r"train_seeds \[2\] must lie in 0 .. 1"):
        mc.compare(["fsq"], 2, "cpu", tmp_path, segments=16, data=data, progress=False, train_seeds=[2])


@pytest.mark.parametrize("option, value", [("--arch", "mlp"), ("--precision", "fp16"), ("--lattice-bound", "sphere"),
                                           ("--speeds", "fast"), ("--root-height-variance", "-1")])
def test_cli_train_refuses_a_bad_option_in_one_line_before_any_work(option, value, tmp_path):
    from typer.testing import CliRunner

    from motion_vae.cli import app

    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--preset", "cpu", "--run-dir", str(run), option, value])
    assert r.exit_code == 2, r.output
    assert option in r.output and value in r.output
    assert not run.exists()  # no partial output


@pytest.mark.parametrize("method", ["daps", "daps-na", "fsq", "vqvae", "gumbel", "grmck"])
def test_every_method_on_the_cpu_long_model_steps_in_bf16(method, data):
    """One loss + backward of each method on the `cpu-long` model (conv stacks; DAPS on the AR
    lattice encoder, DAPS-NA on the tanh lattice, both its warm start and
    DAPS) under bfloat16 autocast, at a smaller width: finite losses and gradients."""
    from daps.trainer import precision_context
    from motion_vae.config import preset_config, set_method
    from motion_vae.models import build_motion_vae
    from motion_vae.train import build_run_objective

    torch.manual_seed(0)
    cfg = set_method(preset_config("cpu-long"), method)
    cfg.model.num_features = data.stats.num_features
    cfg.model.vocab_size, cfg.model.fsq_levels, cfg.model.embed_dim, cfg.model.num_heads = 64, (4, 4, 4), 32, 2
    cfg.model.conv_width, cfg.model.conv_res_blocks = 32, 1
    model = build_motion_vae(cfg.model)
    objective = build_run_objective(cfg, model)
    x = torch.from_numpy(data.train.sample(np.random.default_rng(0), 4))
    for step in sorted({0, cfg.daps.st_warmup_steps}):  # DAPS-NA: the warm start, then DAPS
        model.zero_grad()
        with precision_context("cpu", "bf16"):
            loss, loss_eta, metrics = objective.loss(model, x, step, cfg.steps, torch.Generator().manual_seed(0))
        (loss + loss_eta).backward()
        assert torch.isfinite(loss) and np.isfinite(metrics["log_p"]), (method, step)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), (method, step)
