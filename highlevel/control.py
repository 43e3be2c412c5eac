"""Controllability of the high-level policy, kinematic.

1. A motion-type classifier on real 32-frame segments. Labels: the clip name's category merged
   into CATEGORIES (walk; run = run + sprint; dance; fight = fight + fightAndSports; jumps;
   fallAndGetUp). Features of a segment (`segment_features`, 214 numbers): mean and standard
   deviation over its 32 frames of the motion VAE's 104 per-frame features (computed on the
   segment alone: root height and tilt, heading-frame root velocities, joint angles and
   velocities, body positions relative to the pelvis; all independent of where the robot stands
   and faces) plus the mean |root velocity| and |angular velocity| (6). Model: multinomial
   logistic regression in torch (standardised features, class-balanced cross-entropy, L2 1e-2,
   picked among 1e-4 ... 3e-2 on the held-out clips; a 64-unit MLP scored 0.60 there against 0.57),
   trained on the TRAINING clips' segments only (stride `stride` frames). Validation: the
   held-out clips (envs.lafan1.VAL_CLIPS; they cover walk, run, dance, fight), plus, for the
   categories without a held-out clip (jumps, fallAndGetUp), one training clip each left out of
   a second classifier fitted on the rest (`LEAVE_OUT`); and the held-out clips' segments
   decoded from their true codes by the motion VAE (how the classifier reads VAE output, which
   is what it labels below).
2. Per category (STUDY_CATEGORIES), two phrase sets: phrasings the prior was trained with
   (TRAINING_PHRASES) and 10 unseen paraphrases (PARAPHRASES; checked against annotations.json
   and the measured segment phrases). `rollouts` kinematic rollouts of `segments` segments per
   set, spread over its phrases in turn, at the command's settings: guidance, candidates and,
   with text_goal, each prompt's goal inferred from its text (`highlevel.goal`; out-of-data
   prompts run on text alone). Each segment after the first (the first starts from a standing
   pose without history) is labelled. Root-motion categories (walk, run, stand, turn left, turn
   right, walk backward, walk sideways, crouch) by its measured root motion (`root_label`; a
   rollout's label is its most common segment label); style categories (dance, fight, jumps,
   fallAndGetUp) by the classifier (a rollout's label is the argmax of its segments' summed
   log-probabilities). Accuracy and confusion row per category and set, against the "prompt
   ignored" baseline: the share of text-free rollouts (text and COM masked) given that label.
3. Speed / turn commands (SPEED_TURN): prompt + COM goal (--speed, --turn of `daps command`),
   `rollouts` each; achieved root speed (net horizontal displacement / time, m/s) and turn rate
   (net heading change / time, rad/s) over segments 1 ... S-1, mean and standard deviation, also
   with the text alone (COM goal masked) for comparison.

The pelvis stands in for the centre of mass. Writes OUT/control.json and OUT/control.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from daps.io import atomic_write_json, atomic_write_text
from highlevel.sampling import Sampling

SEG = 32
CATEGORIES = ("walk", "run", "dance", "fight", "jumps", "fallAndGetUp")
MERGE = {"walk": "walk", "run": "run", "sprint": "run", "dance": "dance", "fight": "fight", "fightAndSports": "fight",
         "jumps": "jumps", "fallAndGetUp": "fallAndGetUp"}
# The study's categories. Root-motion categories are labelled by the measured root motion of each
# generated segment (`root_label`); style categories by the clip-name classifier (CATEGORIES).
ROOT_CATEGORIES = ("walk", "run", "stand", "turn left", "turn right", "walk backward", "walk sideways", "crouch")
ROOT_LABELS = ROOT_CATEGORIES + ("other",)
STYLE_CATEGORIES = ("dance", "fight", "jumps", "fallAndGetUp")
STUDY_CATEGORIES = ROOT_CATEGORIES + STYLE_CATEGORIES
# root-motion thresholds (m/s, rad/s, m): see root_label
STAND_SPEED, WALK_SPEED, RUN_SPEED = 0.25, 0.4, 1.6
TURN_RATE, WALK_TURN = 0.3, 0.5
CROUCH_HEIGHT = 0.75
# phrasings the prior was trained with (clip phrasings of highlevel/annotations.json or measured segment phrases)
TRAINING_PHRASES = {
    "walk": ["walk forward", "walk", "a person walking"],
    "run": ["run forward", "run", "running"],
    "stand": ["stand still"],
    "turn left": ["turn left in place", "walk forward while turning left"],
    "turn right": ["turn right in place", "walk forward while turning right"],
    "walk backward": ["walk backward", "walk slowly backward"],
    "walk sideways": ["walk to the left", "walk to the right"],
    "crouch": ["crouch", "crouch and move forward", "walk crouched low"],
    "dance": ["dance", "a person dancing", "move to music"],
    "fight": ["fight", "a person boxing", "throw punches and kicks"],
    "jumps": ["jump", "hop around", "a person jumping"],
    "fallAndGetUp": ["fall down and get up", "get up from the floor", "collapse and recover"],
}
# 10 phrasings per category that the prior never saw (checked against annotations.json and the
# measured segment phrases before every study)
PARAPHRASES = {
    "walk": ["walk ahead", "take a walk forward", "stroll ahead", "go forward on foot", "walk straight ahead",
             "step forward at a normal pace", "walk along", "head forward walking", "amble forward", "walk onward"],
    "run": ["jog forward", "run ahead", "go for a run", "run straight ahead", "jog along at a steady pace",
            "dash ahead", "run quickly forward", "start running", "break into a run", "race forward"],
    "stand": ["stand in place", "stay still", "hold still", "remain standing", "stand and wait", "don't move",
              "stand motionless", "keep standing still", "stand quietly", "be still"],
    "turn left": ["turn to the left", "rotate left", "spin to the left", "turn around to your left", "face left",
                  "pivot left", "turn left on the spot", "rotate to the left in place", "make a left turn", "turn towards the left"],
    "turn right": ["turn to the right", "rotate right", "spin to the right", "turn around to your right", "face right",
                   "pivot right", "turn right on the spot", "rotate to the right in place", "make a right turn", "turn towards the right"],
    "walk backward": ["walk backwards", "step backward", "back up", "move backwards", "retreat backwards",
                      "walk in reverse", "take steps back", "go backwards on foot", "reverse slowly", "back away"],
    "walk sideways": ["step sideways", "walk sideways", "sidestep to the left", "sidestep to the right", "shuffle sideways",
                      "move sideways", "side step", "strafe left", "strafe right", "walk to the side"],
    "crouch": ["squat down", "crouch down low", "duck down", "get low", "bend your knees and squat",
               "sneak while crouching", "stay low to the ground", "kneel down", "hunker down", "crouch and hide"],
    "dance": ["groove to the beat", "dance to the music", "bust a move", "do a dance", "dance energetically",
              "sway to the rhythm", "perform a dance routine", "boogie", "dance around happily", "show some dance moves"],
    "fight": ["spar with an opponent", "punch and kick", "box", "throw a punch", "kickbox", "fight an enemy",
              "do karate", "strike with your fists", "attack with kicks", "practise boxing"],
    "jumps": ["leap up into the air again and again", "jump up and down", "hop in place", "leap forward", "do some jumps",
              "bounce on your feet", "jump high", "skip and hop", "jump forward", "hop on the spot"],
    "fallAndGetUp": ["trip, hit the floor and climb back to your feet", "fall over and stand back up", "tumble down and rise again",
                     "drop to the floor and get back up", "fall and recover", "collapse then stand",
                     "stumble to the ground and get up", "lie down and rise", "fall onto the floor and stand again",
                     "go down and come back up"],
}
# training clips left out of a second classifier, for the categories without a held-out clip
LEAVE_OUT = ("jumps1_subject5", "fallAndGetUp3_subject1")
SPEED_TURN = (  # (prompt, commanded speed m/s, commanded turn rad/s, + = left)
    ("walk forward", 0.5, 0.0),
    ("walk forward", 1.0, 0.0),
    ("run forward", 2.0, 0.0),
    ("run forward", 3.0, 0.0),
    ("walk forward while turning left", 1.0, 1.0),
    ("walk forward while turning right", 1.0, -1.0),
    ("turn left in place", 0.0, 1.0),
    ("turn right in place", 0.0, -1.0),
)


def clip_label(name: str) -> str | None:
    """Category (one of CATEGORIES) of a clip name like 'fightAndSports1_subject4'; None if other."""
    from highlevel.annotate import clip_category

    return MERGE.get(clip_category(name))


def root_label(speed: float, direction: float, turn: float, height: float) -> str:
    """Root-motion label (one of ROOT_LABELS) of one segment from `highlevel.annotate.segment_measures`:
    speed (m/s), direction of travel in the first frame's heading frame (rad, 0 = forward, + = left),
    turn rate (rad/s, + = left), mean pelvis height (m). First match wins:
    crouch: height < 0.75; run: speed > 1.6; stand: speed < 0.25 and |turn| < 0.3;
    with |turn| < 0.5 and speed >= 0.25: walk backward (direction beyond 135 deg), walk sideways
    (45-135 deg), walk (forward, speed >= 0.4); turn left / right: turn > +0.3 / < -0.3; else other.
    """
    if height < CROUCH_HEIGHT:
        return "crouch"
    if speed > RUN_SPEED:
        return "run"
    if speed < STAND_SPEED and abs(turn) < TURN_RATE:
        return "stand"
    a = abs(direction)
    if abs(turn) < WALK_TURN and speed >= STAND_SPEED:
        if a > 3 * np.pi / 4:
            return "walk backward"
        if a > np.pi / 4:
            return "walk sideways"
        if speed >= WALK_SPEED:
            return "walk"
    if turn > TURN_RATE:
        return "turn left"
    if turn < -TURN_RATE:
        return "turn right"
    return "other"


def root_labels(rows: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Root labels of rollouts rows (B, segments*32, 26): per scored segment j = 1 .. segments-1
    (measured over its 32 frames and the frame before) (B, segments-1) and per rollout (B,): the
    most common segment label (ties: the first in ROOT_LABELS). Indices into ROOT_LABELS."""
    from highlevel.annotate import segment_measures

    seg = np.empty((len(rows), segments - 1), np.int64)
    for b, r in enumerate(rows):
        for j in range(1, segments):
            m = segment_measures(r[SEG * j - 1 : SEG * (j + 1)])
            seg[b, j - 1] = ROOT_LABELS.index(root_label(m["speed"], m["direction"], m["yaw_rate"], m["height"]))
    return np.array([np.bincount(x, minlength=len(ROOT_LABELS)).argmax() for x in seg]), seg


def check_unseen(phrases: dict) -> None:
    """RuntimeError naming the clashes when any phrase of {category: [phrases]} is a training text
    (a clip phrasing of highlevel/annotations.json or a measured segment phrase)."""
    from highlevel.annotate import load_annotations
    from highlevel.goal import load_goal_table

    seen = {p.lower() for ps in load_annotations().values() for p in ps} | {t.lower() for t in load_goal_table()}
    clash = [p for ps in phrases.values() for p in ps if p.lower() in seen]
    if clash:
        raise RuntimeError(f"study prompts appear among the training texts, so they are not unseen: {clash}")


def segment_features(rows: np.ndarray) -> np.ndarray:
    """Features (n, 214) float32 of n consecutive segments: rows (n*32, 26) CSV rows or (n, 32, 26).

    Each segment's per-frame features (motion_vae.features.compute_features, 104 columns) are
    computed on the segment alone, then summarised: mean (104), standard deviation (104), mean
    |root linear velocity| (3, m/s) and |root angular velocity| (3, rad/s), heading frame.
    """
    from envs.lafan1 import csv_to_qpos
    from motion_vae.features import compute_features

    rows = np.asarray(rows, np.float64)
    segs = rows.reshape(-1, SEG, rows.shape[-1])
    out = []
    for s in segs:
        f = compute_features(csv_to_qpos(s))
        out.append(np.concatenate([f.mean(0), f.std(0), np.abs(f[:, 7:13]).mean(0)]))
    return np.asarray(out, np.float32).reshape(len(segs), -1)


def real_segments(clips: list[str], root=None, stride: int = SEG, max_frames: int | None = None,
                  cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (N, 214), labels (N,) int64 index into CATEGORIES, clip index (N,)) of the
    32-frame segments starting every `stride` frames of the given clips (first max_frames frames
    of each); clips outside CATEGORIES are skipped. Cached as .npz in cache_dir when given."""
    import hashlib

    from daps.io import atomic_write
    from envs.lafan1 import load_clip_csv, resolve_clip_dir

    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    clip_dir = resolve_clip_dir(root)
    key = json.dumps([str(clip_dir), clips, stride, max_frames, "v1"])
    path = Path(cache_dir) / f"classifier_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return z["x"], z["y"], z["clip"]
    xs, ys, cs = [], [], []
    for ci, name in enumerate(clips):
        lab = clip_label(name)
        if lab is None:
            continue
        rows = load_clip_csv(clip_dir / f"{name}.csv")[:max_frames]
        starts = range(0, len(rows) - SEG + 1, stride)
        if not len(starts):
            continue
        xs.append(segment_features(np.stack([rows[s : s + SEG] for s in starts])))
        ys.append(np.full(len(starts), CATEGORIES.index(lab)))
        cs.append(np.full(len(starts), ci))
    if not xs:
        raise ValueError("no labelled segments: the clips hold no category of " + ", ".join(CATEGORIES))
    x, y, c = np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(cs).astype(np.int64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, x=x, y=y, clip=c))
    return x, y, c


class MotionClassifier:
    """Multinomial logistic regression over segment features -> CATEGORIES.

    fit(x (N, D), y (N,)): standardises with the training mean/std, class-balanced cross-entropy
    (weights 1 / class frequency; classes absent from y get no weight), L2 weight_decay, full-batch
    L-BFGS. log_proba(x) -> (N, K) log-probabilities; predict(x) -> (N,) class indices.
    """

    def __init__(self, weight_decay: float = 1e-2, iters: int = 200, seed: int = 0):
        self.weight_decay, self.iters, self.seed = weight_decay, iters, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> "MotionClassifier":
        torch.manual_seed(self.seed)
        k = len(CATEGORIES)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xt, yt = torch.from_numpy((x - self.mu) / self.sd).float(), torch.from_numpy(y)
        counts = torch.bincount(yt, minlength=k).float()
        w = torch.where(counts > 0, counts.sum() / (k * counts.clamp_min(1)), torch.zeros_like(counts))
        self.lin = torch.nn.Linear(x.shape[1], k)
        opt = torch.optim.LBFGS(self.lin.parameters(), lr=1.0, max_iter=self.iters, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.lin(xt), yt, weight=w) + self.weight_decay * self.lin.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def log_proba(self, x: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy((np.asarray(x) - self.mu) / self.sd).float()
        return torch.log_softmax(self.lin(xt), -1).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.log_proba(x).argmax(-1)


def _per_category(y: np.ndarray, pred: np.ndarray) -> dict:
    out = {}
    for i, c in enumerate(CATEGORIES):
        m = y == i
        if m.any():
            out[c] = {"segments": int(m.sum()), "accuracy": round(float((pred[m] == i).mean()), 3)}
    return out


def train_classifier(root=None, stride: int = SEG, max_frames: int | None = None, cache_dir=None, vae=None, stats=None) -> tuple:
    """(classifier fitted on all training clips, validation report dict). See the module docstring."""
    from envs.lafan1 import split_clips

    train, val = split_clips(root)
    x, y, c = real_segments(train, root, stride, max_frames, cache_dir)
    xv, yv, cv = real_segments(val, root, SEG, max_frames, cache_dir)
    clf = MotionClassifier().fit(x, y)
    pv = clf.predict(xv)
    rep = {"train_clips": len(train), "train_segments": int(len(y)), "stride_frames": stride,
           "train_accuracy": round(float((clf.predict(x) == y).mean()), 3),
           "heldout_clips": val, "heldout_accuracy": round(float((pv == yv).mean()), 3),
           "heldout_per_category": _per_category(yv, pv)}
    left = [i for i, n in enumerate(train) if n in LEAVE_OUT]
    if left:
        keep = ~np.isin(c, left)
        if len(np.unique(y[keep])) > 1:
            clf2 = MotionClassifier().fit(x[keep], y[keep])
            p2 = clf2.predict(x[~keep])
            rep["left_out_clips"] = [train[i] for i in left]
            rep["left_out_per_category"] = _per_category(y[~keep], p2)
    if vae is not None:  # the held-out segments as the motion VAE returns them (true codes decoded)
        from envs.lafan1 import load_clip_csv, resolve_clip_dir
        from motion_vae.codec import decode_codes, encode_clip

        xs, ys = [], []
        for name in val:
            lab = clip_label(name)
            rows = load_clip_csv(resolve_clip_dir(root) / f"{name}.csv")[:max_frames]
            n = len(rows) // SEG
            if lab is None or n == 0:
                continue
            z = encode_clip(vae, stats, rows[: n * SEG], greedy=True)
            xs.append(segment_features(np.stack([decode_codes(vae, stats, zi[None]) for zi in z])))
            ys.append(np.full(len(z), CATEGORIES.index(lab)))
        if xs:
            xr, yr = np.concatenate(xs), np.concatenate(ys)
            pr = clf.predict(xr)
            rep["heldout_vae_decoded_accuracy"] = round(float((pr == yr).mean()), 3)
            rep["heldout_vae_decoded_per_category"] = _per_category(yr, pr)
    return clf, rep


def _mean_sd(v) -> dict:
    v = np.asarray(v, float)
    return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3)}


def run_control(ckpt: str | Path | None, out_dir: str | Path, rollouts: int = 10, segments: int = 5, seed: int = 0,
                temperature: float = Sampling.temperature, top_k: int = Sampling.top_k, stride: int = SEG, max_frames: int | None = None, root=None,
                text_cache=None, cache_dir: str | Path | None = None,
                speed_turn: tuple = SPEED_TURN, progress: bool = True, guidance: float = Sampling.guidance,
                candidates: int = Sampling.candidates,
                text_goal: bool = True, categories: tuple = STUDY_CATEGORIES) -> dict:
    """The whole study (module docstring); writes out_dir/control.json and control.md, returns the
    JSON. rollouts: per category and phrase set (training phrasings, paraphrases), spread over the
    set's phrases in turn. guidance: classifier-free guidance weight on text and COM (1 = none);
    candidates: code sequences drawn per segment of a rollout with a COM goal, the closest to the
    goal kept (defaults: `highlevel.sampling.Sampling`, as the command line's); text_goal: each prompt's goal inferred from its text (`highlevel.goal`; out-of-data
    prompts run on text alone), as `daps command` does. ckpt None: models/highlevel.pt. segments
    >= 2 (the first is not scored). text_cache: an EmbeddingCache or its .npz path (default
    cache_dir/text_embeddings.npz). speed_turn: () skips the speed/turn commands. ValueError /
    CheckpointError (one line) for bad values or files."""
    from highlevel.command import KinematicFollower, achieved, generate_batch
    from daps.shipped import HIGHLEVEL, shipped_path
    from highlevel.goal import GoalMap
    from highlevel.ship import default_cache_dir, load_highlevel
    from highlevel.text import EmbeddingCache
    from motion_vae.models import load_motion_vae

    if rollouts < 1:
        raise ValueError(f"--rollouts must be >= 1, got {rollouts}")
    if segments < 2:
        raise ValueError(f"--segments must be >= 2 (the first segment, from a standing start, is not scored), got {segments}")
    if temperature < 0 or top_k < 0:
        raise ValueError(f"--temperature and --top-k must be >= 0, got {temperature} and {top_k}")
    if not guidance >= 0:
        raise ValueError(f"--guidance must be >= 0, got {guidance}")
    if candidates < 1:
        raise ValueError(f"--candidates must be >= 1, got {candidates}")
    bad = [c for c in categories if c not in STUDY_CATEGORIES]
    if bad or not categories:
        raise ValueError(f"--categories: unknown {bad or 'none given'}; choose among {', '.join(STUDY_CATEGORIES)}")
    check_unseen(PARAPHRASES)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    path = Path(ckpt) if ckpt else shipped_path(HIGHLEVEL)
    prior, cfg, ck, vae_path = load_highlevel(path)
    vae, _, stats, _ = load_motion_vae(vae_path, "cpu")
    cache = Path(cache_dir) if cache_dir else default_cache_dir(path, ck)
    tc = text_cache if isinstance(text_cache, EmbeddingCache) else EmbeddingCache(text_cache or cache / "text_embeddings.npz")
    gm = GoalMap(cache=tc) if text_goal else None
    say = print if progress else (lambda *a, **k: None)
    say("classifier: features of real segments ...")
    clf, clf_rep = train_classifier(root, stride, max_frames, cache, vae, stats)
    say(f"classifier: held-out accuracy {clf_rep['heldout_accuracy']}")
    follower = KinematicFollower(vae, stats)

    def roll(emb, speed=None, turn=None, s=seed, n=rollouts, cand=candidates, direction=None, height=None):
        codes, rows = generate_batch(prior, follower, emb, segments, speed, turn, temperature, top_k, s, n, guidance, cand,
                                     direction=direction, height=height)
        return rows  # (B, S*32, 26)

    def style_label(rows):
        lp = clf.log_proba(segment_features(rows[:, SEG:].reshape(-1, SEG, rows.shape[-1]))).reshape(len(rows), segments - 1, -1)
        return lp.sum(1).argmax(-1), lp.argmax(-1)  # per rollout (B,), per segment (B, S-1)

    def both_labels(rows):
        return {"root": root_labels(rows, segments), "style": style_label(rows)}

    base = both_labels(roll(None, s=seed + 999, cand=1))
    base_share = {c: round(float((base["root"][0] == ROOT_LABELS.index(c)).mean()), 3) for c in ROOT_CATEGORIES}
    base_share.update({c: round(float((base["style"][0] == CATEGORIES.index(c)).mean()), 3) for c in STYLE_CATEGORIES})

    def run_set(ci, c, phrases, tag):
        per = [rollouts // len(phrases) + (i < rollouts % len(phrases)) for i in range(len(phrases))]
        goals = gm.infer_many(phrases) if gm is not None else [None] * len(phrases)
        embs = tc.encode(phrases)
        rows, used = [], []
        for i, (p, n, g) in enumerate(zip(phrases, per, goals)):
            if n == 0:
                continue
            sp, tu, di, he = (g.goal() if g is not None else None) or (None,) * 4
            rows.append(roll(embs[i], sp, tu, seed + 17 * ci + 1000 * i + (0 if tag == "training" else 500), n,
                             direction=di, height=he))
            used.append({"prompt": p, "rollouts": n, "goal_speed_m_s": sp, "goal_turn_rad_s": tu, "goal_direction_rad": di,
                         "goal_height_m": he,
                         "in_data": None if g is None else g.in_data, "nearest": None if g is None else g.nearest[:3]})
        rows = np.concatenate(rows)
        root = c in ROOT_CATEGORIES
        names = ROOT_LABELS if root else CATEGORIES
        lab, seg = root_labels(rows, segments) if root else style_label(rows)
        k = names.index(c)
        ach = [achieved(r[SEG - 1 :]) for r in rows]
        return {"rollouts": len(rows), "accuracy": round(float((lab == k).mean()), 3), "segment_accuracy": round(float((seg == k).mean()), 3),
                "labelled_by": "root motion" if root else "classifier",
                "confusion": {n: int((lab == j).sum()) for j, n in enumerate(names) if (lab == j).any()},
                "root_speed_m_s": _mean_sd([a["root_speed_m_s"] for a in ach]),
                "turn_rad_s": _mean_sd([a["turn_rate_rad_s"] for a in ach]),
                "mean_root_height_m": _mean_sd([a["mean_root_height_m"] for a in ach]), "prompts": used}

    cats = {}
    for ci, c in enumerate(categories):
        cats[c] = {"prompt_ignored_share": base_share[c],
                   "training": run_set(ci, c, TRAINING_PHRASES[c], "training"),
                   "paraphrases": run_set(ci, c, PARAPHRASES[c], "paraphrases")}
        say(f"{c:>13s}  training {cats[c]['training']['accuracy']:.2f} {cats[c]['training']['confusion']}  "
            f"paraphrases {cats[c]['paraphrases']['accuracy']:.2f} {cats[c]['paraphrases']['confusion']}")
    st = []
    emb_cache = {}
    for prompt, speed, turn in speed_turn:
        if prompt not in emb_cache:
            emb_cache[prompt] = tc.encode([prompt])[0]
        r_com = roll(emb_cache[prompt], speed, turn, seed + 5)
        r_txt = roll(emb_cache[prompt], None, None, seed + 5)
        a_com = [achieved(r[SEG - 1 :]) for r in r_com]
        a_txt = [achieved(r[SEG - 1 :]) for r in r_txt]
        st.append({"prompt": prompt, "commanded_speed_m_s": speed, "commanded_turn_rad_s": turn,
                   "speed_m_s": _mean_sd([a["root_speed_m_s"] for a in a_com]),
                   "turn_rad_s": _mean_sd([a["turn_rate_rad_s"] for a in a_com]),
                   "text_only_speed_m_s": _mean_sd([a["root_speed_m_s"] for a in a_txt]),
                   "text_only_turn_rad_s": _mean_sd([a["turn_rate_rad_s"] for a in a_txt])})
        say(f"{prompt!r} {speed} m/s {turn} rad/s -> {st[-1]['speed_m_s']['mean']} m/s {st[-1]['turn_rad_s']['mean']} rad/s")
    rec = {"model": str(path), "step": ck["step"], "motion_vae": str(vae_path), "rollouts": rollouts, "segments": segments,
           "scored_segments": f"1..{segments - 1}", "seed": seed, "temperature": temperature, "top_k": top_k,
           "guidance": guidance, "candidates": candidates, "text_goal": text_goal, "classifier": clf_rep,
           "thresholds": {"stand_speed_m_s": STAND_SPEED, "walk_speed_m_s": WALK_SPEED, "run_speed_m_s": RUN_SPEED,
                          "turn_rate_rad_s": TURN_RATE, "walk_turn_rad_s": WALK_TURN, "crouch_height_m": CROUCH_HEIGHT},
           "categories": cats, "overall": overall(cats), "speed_turn": st}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "control.json", rec)
    atomic_write_text(out_dir / "control.md", markdown(rec))
    return rec


def overall(cats: dict) -> dict:
    """Mean accuracies over the categories of a study record: all, and the root-motion targets
    (walk, run, stand, turn left, turn right), for the training phrasings and the paraphrases."""
    out = {}
    for tag in ("training", "paraphrases"):
        acc = {c: v[tag]["accuracy"] for c, v in cats.items()}
        core = [acc[c] for c in ROOT_CATEGORIES[:5] if c in acc]
        out[tag] = {"accuracy": round(float(np.mean(list(acc.values()))), 3),
                    "segment_accuracy": round(float(np.mean([v[tag]["segment_accuracy"] for v in cats.values()])), 3),
                    "walk_run_stand_turns": round(float(np.mean(core)), 3) if core else None}
    return out


def markdown(rec: dict) -> str:
    """The study's tables (Markdown) from its JSON record."""
    c = rec["classifier"]
    lines = [f"# Controllability, kinematic: `{rec['model']}` (step {rec['step']})", "",
             f"{rec['rollouts']} rollouts per category and phrase set, {rec['segments']} segments each (segments "
             f"{rec['scored_segments']} scored), temperature {rec['temperature']}, top-k {rec['top_k']}, guidance "
             f"{rec['guidance']}, candidates {rec['candidates']}, goal from text {'on' if rec.get('text_goal') else 'off'}, "
             f"seed {rec['seed']}.", "",
             f"Style categories labelled by the classifier (logistic regression, {c['train_segments']} segments of "
             f"{c['train_clips']} training clips; held-out clips {c['heldout_accuracy']:.2f}"
             + (f", their VAE-decoded segments {c['heldout_vae_decoded_accuracy']:.2f}" if "heldout_vae_decoded_accuracy" in c else "")
             + "); root-motion categories by the measured root motion of each segment (thresholds: "
             + ", ".join(f"{k} {v}" for k, v in rec["thresholds"].items()) + ").", "",
             "| category | labelled by | training phrasings | confusion (training) | paraphrases | confusion (paraphrases) | "
             "prompt-ignored share | root speed (m/s), paraphrases |",
             "|---|---|---|---|---|---|---|---|"]
    row = lambda d: ", ".join(f"{a} {n}" for a, n in sorted(d.items(), key=lambda t: -t[1]))  # noqa: E731
    for k, v in rec["categories"].items():
        t, p = v["training"], v["paraphrases"]
        lines.append(f"| {k} | {t['labelled_by']} | {t['accuracy']:.2f} | {row(t['confusion'])} | {p['accuracy']:.2f} | "
                     f"{row(p['confusion'])} | {v['prompt_ignored_share']:.2f} | "
                     f"{p['root_speed_m_s']['mean']:.2f} ± {p['root_speed_m_s']['sd']:.2f} |")
    o = rec["overall"]
    lines += [f"| **overall** | | **{o['training']['accuracy']:.2f}** | | **{o['paraphrases']['accuracy']:.2f}** | | | |",
              f"| walk, run, stand, turns | | {o['training']['walk_run_stand_turns'] or 0:.2f} | | "
              f"{o['paraphrases']['walk_run_stand_turns'] or 0:.2f} | | | |", ""]
    if rec["speed_turn"]:
        lines += ["| prompt | commanded speed (m/s) | achieved | text only | commanded turn (rad/s) | achieved | text only |",
                  "|---|---|---|---|---|---|---|"]
        for s in rec["speed_turn"]:
            f = lambda d: f"{d['mean']:.2f} ± {d['sd']:.2f}"  # noqa: E731
            lines.append(f"| \"{s['prompt']}\" | {s['commanded_speed_m_s']:.1f} | {f(s['speed_m_s'])} | {f(s['text_only_speed_m_s'])} | "
                         f"{s['commanded_turn_rad_s']:+.1f} | {f(s['turn_rad_s'])} | {f(s['text_only_turn_rad_s'])} |")
    return "\n".join(lines) + "\n"
