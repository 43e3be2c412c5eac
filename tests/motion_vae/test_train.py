"""Training the motion VAE on small slices of the real data: every method, resume, schedules, time limits."""
import numpy as np
import pytest
import torch

from daps.trainer import CheckpointError, _check_schedule, load_checkpoint
from envs.lafan1 import load_clip_csv, resolve_clip_dir
from motion_vae.codec import decode_codes, encode_clip
from motion_vae.config import MotionVAEConfig, preset_config
from motion_vae.models import load_motion_vae
from motion_vae.train import train_motion_vae
from motion_vae_support import NEEDS_DATA, csv_rows, tiny_config

pytestmark = NEEDS_DATA


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


def test_resume_refuses_an_exported_model(tmp_path, data, trained):
    from motion_vae.models import export_motion_vae

    export_motion_vae(trained, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="exported model"):  # no optimiser state to resume from
        train_motion_vae(tiny_config(steps=4), tmp_path, device="cpu", progress=False, data=data, resume=True)


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
