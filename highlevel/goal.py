"""Text -> centre-of-mass goal (root speed m/s, turn rate rad/s), learned from the annotated data.

Every training pair's target segment (the 32-frame segments of `highlevel.dataset`: each training
clip cut at start offsets 0 and 16 frames, segments j >= 1) carries texts: its clip's phrasings
(highlevel/annotations.json) and its own measured phrase (`highlevel.annotate.segment_phrase`).
Each text's *typical* motion is the median root speed (horizontal displacement / duration) and
median turn rate (heading change / duration, + = left) of the segments it is attached to
(`segment_measures`). The table (text -> median speed, median turn, segment count) is small
and derived from the data: highlevel/goals.json, rewritten by `python -m highlevel.goal`.

For a prompt (`GoalMap.infer`): cosine similarity of its MiniLM embedding (`highlevel.text`) to
every text of the table; the goal is the mean of the K nearest texts' typical (speed, turn),
weighted by exp((similarity - best) / TAU), so an exact or near-exact match dominates and a
prompt between several texts gets their blend. When the best similarity is below OUT_OF_DATA
the prompt describes nothing the data holds (e.g. "do a backflip"): it is flagged, and callers
report the nearest texts instead of turning it into one of them.

The pelvis (root) stands in for the centre of mass. Units: m, s, rad.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daps.io import atomic_write_json

GOALS_PATH = Path(__file__).resolve().parent / "goals.json"
SEG = 32
OFFSETS = (0, 16)  # the pairs' segment grids (highlevel.dataset.cached_pairs' default)
K = 5  # nearest texts blended
TAU = 0.02  # similarity scale of the blend weights
MOVING = 0.25  # m/s: segments this fast give the direction of travel
MIN_SEGMENTS = 20  # texts attached to fewer segments (rare measured phrases) have no reliable typical motion
# best cosine similarity below which a prompt is outside the data. Calibrated on the shipped
# table (docs/highlevel.md): motions the data holds, in new words, mostly score 0.55-0.95
# ("stroll ahead" 0.73, "jog forward" 0.78, "walk backwards" 0.96, "remain standing" 0.85);
# motions it does not hold score 0.25-0.50 ("do a backflip" 0.50, "swim" 0.50, "ride a bicycle"
# 0.36, "cook dinner" 0.26). Terse or idiomatic phrasings of held motions fall below too
# ("be still" 0.44, "boogie" 0.47, "box" 0.35): those run on text alone.
OUT_OF_DATA = 0.52
LOW = 0.85  # m: pelvis heights below this are shown in the goal line (upright LAFAN1 ~0.95-1.0)
# MiniLM puts "turn left" and "turn right" close together (cosine 0.93): a neighbour naming the
# opposite side or way (and not the prompt's own) is left out of the blend
OPPOSITE = {"left": "right", "right": "left", "backward": "forward", "forward": "backward"}


def training_segments(root=None, clips: list[str] | None = None, offsets=OFFSETS, max_frames: int | None = None):
    """Yield (clip name, measured phrase, segment_measures dict) for every training pair's target
    segment: each clip (default: the training split) cut into 32-frame segments at each offset,
    segments j >= 1 (frames o + 32 j ... o + 32 j + 31), as `highlevel.dataset.build_pairs`."""
    from envs.lafan1 import load_clip_csv, resolve_clip_dir, split_clips
    from highlevel.annotate import segment_measures, segment_phrase

    clip_dir = resolve_clip_dir(root)
    for name in clips if clips is not None else split_clips(root)[0]:
        rows = load_clip_csv(clip_dir / f"{name}.csv", min_frames=2 * SEG)[:max_frames]
        for o in offsets:
            for s in range(o + SEG, len(rows) - SEG + 1, SEG):
                m = segment_measures(rows[s : s + SEG])
                yield name, segment_phrase(m), m


def build_goal_table(root=None, clips: list[str] | None = None, max_frames: int | None = None) -> dict:
    """{"about", "texts": {text: {"speed": median m/s, "turn": median rad/s, "direction": rad (0 =
    forward, + = left; speed-weighted circular mean over the segments moving at >= 0.25 m/s),
    "height": median pelvis height m, "segments": n}}} over
    the training pairs' target segments (`training_segments`); each segment counts for its clip's
    phrasings and its measured phrase; texts of fewer than MIN_SEGMENTS segments are left out. Raises DataError (envs.lafan1) for bad or missing data,
    ValueError when no segment is found."""
    from highlevel.annotate import load_annotations

    ann = load_annotations()
    per: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, phrase, m in training_segments(root, clips, max_frames=max_frames):
        for t in [*ann.get(name, []), phrase]:
            per.setdefault(t, []).append((m["speed"], m["yaw_rate"], m["direction"], m["height"]))
    if not per:
        raise ValueError("no training segments: clips need at least 64 frames")
    texts = {}
    for t, vs in sorted(per.items()):
        if len(vs) < MIN_SEGMENTS:
            continue
        v = np.asarray(vs)
        moving = v[:, 0] >= MOVING  # the direction of travel of a standing root is noise
        w = v[moving, 0]
        d = float(np.arctan2((w * np.sin(v[moving, 2])).sum(), (w * np.cos(v[moving, 2])).sum())) if moving.any() else 0.0
        texts[t] = {"speed": round(float(np.median(v[:, 0])), 3), "turn": round(float(np.median(v[:, 1])), 3),
                    "direction": round(d, 3), "height": round(float(np.median(v[:, 3])), 3), "segments": len(vs)}
    return {"about": "made by highlevel/goal.py from the training clips: median root speed (m/s) and turn rate "
                     "(rad/s, + = left) of the target segments each text is attached to", "texts": texts}


def load_goal_table(path: str | Path | None = None) -> dict:
    """{text: {"speed", "turn", "direction", "height", "segments"}} from a goal file (default highlevel/goals.json).
    FileNotFoundError / ValueError (one line naming the file) when missing or malformed."""
    path = Path(path) if path is not None else GOALS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: goal table not found (python -m highlevel.goal writes it)")
    try:
        texts = json.loads(path.read_text())["texts"]
        ok = bool(texts) and all(np.isfinite([v["speed"], v["turn"], v["direction"], v["height"]]).all() and int(v["segments"]) > 0
                                 for v in texts.values())
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{path}: not a goal table (texts with finite speed, turn and a segment count)")
    return texts


@dataclass
class TextGoal:
    """A prompt's goal: speed (m/s), turn (rad/s, + = left), direction of travel (rad, 0 =
    forward, + = left), pelvis height (m), the nearest known texts [(text, cosine similarity)]
    best first, and in_data (best similarity >= the threshold)."""

    prompt: str
    speed: float
    turn: float
    direction: float = 0.0
    height: float = 1.0
    nearest: list = field(default_factory=list)
    in_data: bool = True

    def goal(self) -> tuple | None:
        """(speed, turn, direction, height) for `daps command`, or None when out of the data."""
        return (self.speed, self.turn, self.direction, self.height) if self.in_data else None

    def describe(self, n: int = 3) -> str:
        """One line for the console, e.g. goal from text: 1.05 m/s, +0.00 rad/s (nearest: 'walk forward' 0.83, ...)."""
        near = ", ".join(f"'{t}' {s:.2f}" for t, s in self.nearest[:n])
        if self.in_data:
            a = abs(self.direction)
            way = "" if a < np.pi / 4 or self.speed < MOVING else ", backward" if a > 3 * np.pi / 4 else \
                  (", to the left" if self.direction > 0 else ", to the right")
            low = f", pelvis at {self.height:.2f} m" if self.height < LOW else ""
            return f"goal from text: {self.speed:.2f} m/s{way}, {self.turn:+.2f} rad/s{low} (nearest: {near})"
        return (f"'{self.prompt}' is outside what the data holds (best similarity {self.nearest[0][1]:.2f} < "
                f"{OUT_OF_DATA}); nearest known: {near}; no goal from text (give --speed/--turn for one)")


def _words(text: str) -> set:
    return {w.removesuffix("s") if w in ("backwards", "forwards") else w for w in re.findall(r"[a-z]+", text.lower())}


def conflicts(prompt: str, texts: list[str]) -> np.ndarray:
    """(N,) bool: texts that name a side or way opposite to one the prompt names (OPPOSITE) and
    not the prompt's own, e.g. "walk forward while turning right" for "turn left"."""
    pw = _words(prompt)
    named = [(w, OPPOSITE[w]) for w in pw if w in OPPOSITE and OPPOSITE[w] not in pw]
    out = np.zeros(len(texts), bool)
    for i, t in enumerate(texts):
        tw = _words(t)
        out[i] = any(o in tw and w not in tw for w, o in named)
    return out


class GoalMap:
    """Prompt -> `TextGoal` by similarity to the goal table's texts (module docstring).

    table: {text: {"speed", "turn", ...}} (default `load_goal_table()`); cache: an
    `highlevel.text.EmbeddingCache` (default: in memory; the encoder loads for texts not cached).
    """

    def __init__(self, table: dict | None = None, cache=None, k: int = K, tau: float = TAU, threshold: float = OUT_OF_DATA):
        from highlevel.text import EmbeddingCache

        table = load_goal_table() if table is None else table
        self.texts = list(table)
        self.speed = np.array([table[t]["speed"] for t in self.texts], np.float64)
        self.turn = np.array([table[t]["turn"] for t in self.texts], np.float64)
        self.direction = np.array([table[t].get("direction", 0.0) for t in self.texts], np.float64)
        self.height = np.array([table[t].get("height", 1.0) for t in self.texts], np.float64)
        self.cache = cache if cache is not None else EmbeddingCache()
        self.emb = self.cache.encode(self.texts)  # (N, 384), unit norm
        self.k, self.tau, self.threshold = k, tau, threshold

    def infer(self, prompt: str) -> TextGoal:
        """The goal of one prompt (ValueError for an empty one). Out-of-data prompts get the
        blend too (speed, turn), flagged in_data=False: callers should not use it silently."""
        return self.infer_many([prompt])[0]

    def infer_many(self, prompts: list[str]) -> list[TextGoal]:
        """`infer` for several prompts with one encoder call."""
        sims = self.cache.encode([p.strip() for p in prompts]) @ self.emb.T  # (P, N) cosine (unit vectors)
        out = []
        for p, s in zip(prompts, sims):
            order = np.argsort(-s)
            ok = ~conflicts(p, [self.texts[i] for i in order])
            idx = (order[ok] if ok.any() else order)[: self.k]
            w = np.exp((s[idx] - s[idx[0]]) / self.tau)
            w /= w.sum()
            d = float(np.arctan2(w @ np.sin(self.direction[idx]), w @ np.cos(self.direction[idx])))
            out.append(TextGoal(p.strip(), round(float(w @ self.speed[idx]), 3), round(float(w @ self.turn[idx]), 3),
                                round(d, 3), round(float(w @ self.height[idx]), 3),
                                [(self.texts[i], round(float(s[i]), 3)) for i in order[: self.k]], bool(s[order[0]] >= self.threshold)))
        return out


def default_text_cache():
    """The embedding cache of the shipped models' texts (runs/highlevel_cache/text_embeddings.npz
    in the repository), or an in-memory one where that folder cannot be made."""
    from highlevel.ship import default_cache_dir
    from highlevel.text import EmbeddingCache

    folder = default_cache_dir("", {"exported": True})
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return EmbeddingCache()
    return EmbeddingCache(folder / "text_embeddings.npz")


def prompt_goals(prompts: list[str], text_cache=None, say=print) -> list:
    """Per prompt, (speed m/s, turn rad/s, direction rad, pelvis height m) inferred from its text, or None when the prompt is
    outside what the data holds (or empty: left to the command's own check); `say` gets one line
    per prompt (`TextGoal.describe`). text_cache: an .npz path or None (`default_text_cache`)."""
    from highlevel.text import EmbeddingCache

    gm = GoalMap(cache=EmbeddingCache(text_cache) if text_cache is not None else default_text_cache())
    keep = [p for p in prompts if p and p.strip()]
    goals = dict(zip(keep, gm.infer_many(keep))) if keep else {}
    out = []
    for p in prompts:
        g = goals.get(p)
        if g is not None:
            say((f'"{g.prompt}": ' if len(prompts) > 1 else "") + g.describe())
        out.append(g.goal() if g is not None else None)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m highlevel.goal [OUT]``: rewrite the goal table from the data (training clips)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else GOALS_PATH
    table = build_goal_table()
    atomic_write_json(out, table)
    print(f"wrote {out} ({len(table['texts'])} texts)")


if __name__ == "__main__":
    main()
