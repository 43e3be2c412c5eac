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
MIN_SEGMENTS = 20  # texts attached to fewer segments (rare measured phrases) have no reliable typical motion
# best cosine similarity below which a prompt is outside the data. Calibrated on the shipped
# table (docs/highlevel.md): motions the data holds, in new words, score 0.55-0.85 ("stroll
# ahead" 0.60, "jog forward" 0.68, "spin to the left" 0.57); motions it does not hold score
# 0.33-0.50 ("do a backflip" 0.48, "swim" 0.41, "ride a bicycle" 0.45, "sit on a chair" 0.50).
OUT_OF_DATA = 0.52


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
    """{"about", "texts": {text: {"speed": median m/s, "turn": median rad/s, "segments": n}}} over
    the training pairs' target segments (`training_segments`); each segment counts for its clip's
    phrasings and its measured phrase; texts of fewer than MIN_SEGMENTS segments are left out. Raises DataError (envs.lafan1) for bad or missing data,
    ValueError when no segment is found."""
    from highlevel.annotate import load_annotations

    ann = load_annotations()
    per: dict[str, list[tuple[float, float]]] = {}
    for name, phrase, m in training_segments(root, clips, max_frames=max_frames):
        for t in [*ann.get(name, []), phrase]:
            per.setdefault(t, []).append((m["speed"], m["yaw_rate"]))
    if not per:
        raise ValueError("no training segments: clips need at least 64 frames")
    texts = {t: {"speed": round(float(np.median([v[0] for v in vs])), 3), "turn": round(float(np.median([v[1] for v in vs])), 3),
                 "segments": len(vs)} for t, vs in sorted(per.items()) if len(vs) >= MIN_SEGMENTS}
    return {"about": "made by highlevel/goal.py from the training clips: median root speed (m/s) and turn rate "
                     "(rad/s, + = left) of the target segments each text is attached to", "texts": texts}


def load_goal_table(path: str | Path | None = None) -> dict:
    """{text: {"speed", "turn", "segments"}} from a goal file (default highlevel/goals.json).
    FileNotFoundError / ValueError (one line naming the file) when missing or malformed."""
    path = Path(path) if path is not None else GOALS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: goal table not found (python -m highlevel.goal writes it)")
    try:
        texts = json.loads(path.read_text())["texts"]
        ok = bool(texts) and all(np.isfinite([v["speed"], v["turn"]]).all() and int(v["segments"]) > 0 for v in texts.values())
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{path}: not a goal table (texts with finite speed, turn and a segment count)")
    return texts


@dataclass
class TextGoal:
    """A prompt's goal: speed (m/s), turn (rad/s, + = left), the nearest known texts
    [(text, cosine similarity)] best first, and in_data (best similarity >= the threshold)."""

    prompt: str
    speed: float
    turn: float
    nearest: list = field(default_factory=list)
    in_data: bool = True

    def describe(self, n: int = 3) -> str:
        """One line for the console, e.g. goal from text: 1.05 m/s, +0.00 rad/s (nearest: 'walk forward' 0.83, ...)."""
        near = ", ".join(f"'{t}' {s:.2f}" for t, s in self.nearest[:n])
        if self.in_data:
            return f"goal from text: {self.speed:.2f} m/s, {self.turn:+.2f} rad/s (nearest: {near})"
        return (f"'{self.prompt}' is outside what the data holds (best similarity {self.nearest[0][1]:.2f} < "
                f"{OUT_OF_DATA}); nearest known: {near}; no goal from text (give --speed/--turn for one)")


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
            idx = np.argsort(-s)[: self.k]
            w = np.exp((s[idx] - s[idx[0]]) / self.tau)
            w /= w.sum()
            out.append(TextGoal(p.strip(), round(float(w @ self.speed[idx]), 3), round(float(w @ self.turn[idx]), 3),
                                [(self.texts[i], round(float(s[i]), 3)) for i in idx], bool(s[idx[0]] >= self.threshold)))
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
    """Per prompt, (speed m/s, turn rad/s) inferred from its text, or None when the prompt is
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
        out.append((g.speed, g.turn) if g is not None and g.in_data else None)
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
