"""Text descriptions of the LAFAN1-H1 motions: per clip (annotations.json) and per segment (rules).

How ``highlevel/annotations.json`` is made (``python -m highlevel.annotate`` rewrites it):

* Clip phrasings: the clip name's motion category (the part before the take number: ``walk``,
  ``run``, ``sprint``, ``dance``, ``fight``, ``fightAndSports``, ``jumps``, ``fallAndGetUp``, and
  for the full LAFAN1 set ``aiming``, ``ground``, ``pushAndStumble``, ``obstacles``, ...) gives
  3-5 hand-written phrasings of what such a take shows (:data:`CATEGORY_PHRASES`), plus two phrases
  built from the clip's measured quantities (:func:`clip_measures`): mean root speed -> "slowly /
  at a moderate pace / briskly / fast", mean |turn rate| -> "with many turns", share of segments
  with the pelvis below 0.75 m -> "often low to the ground"; then, for the clips whose renders
  show more than their name says, hand-written phrasings of what is seen (:data:`SEEN_IN_RENDERS`).
  Every clip was checked on a contact sheet of 10 kinematic frames spread over its length (the
  H1 posed from the CSV in MuJoCo), and the clips that looked unusual on 8 larger frames each
  (docs/highlevel.md, "How the annotations were made").
* Per-segment phrases (:func:`segment_phrase`, not stored: computed from each 32-frame segment):
  speed class from the root's horizontal displacement over the segment, direction of travel in
  the heading frame of its first frame (forward / backward / sideways), heading change (turn
  left / right above 0.6 rad/s) and mean pelvis height (crouch below 0.75 m, on the ground below
  0.45 m). E.g. "walk forward", "run forward while turning left", "turn right in place", "crouch".

The root (pelvis) stands in for the centre of mass throughout. Units: m, s, rad.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from daps.io import atomic_write_json
from envs.lafan1 import FPS, csv_to_qpos, list_clips, load_clip_csv, resolve_clip_dir
from motion_vae.features import heading_yaw

ANNOTATIONS_PATH = Path(__file__).resolve().parent / "annotations.json"

CATEGORY_PHRASES: dict[str, list[str]] = {
    "walk": ["walk", "walk around", "a person walking", "stroll around the room", "walk and change direction"],
    "run": ["run", "run around", "a person jogging", "jog in circles", "running"],
    "sprint": ["sprint", "sprint as fast as possible", "a fast run", "dash forward"],
    "dance": ["dance", "a person dancing", "dance freely with the arms", "move to music"],
    "fight": ["fight", "throw punches and kicks", "a person boxing", "martial arts moves"],
    "fightAndSports": ["fight and play sports", "punch, kick and swing", "sports moves and fighting", "throw and kick"],
    "jumps": ["jump", "jump in place and forward", "hop around", "a person jumping"],
    "fallAndGetUp": ["fall down and get up", "fall to the ground then stand up", "collapse and recover", "get up from the floor"],
    "aiming": ["aim", "aim a weapon while walking", "point and aim around", "walk carefully while aiming"],
    "ground": ["move on the ground", "crawl on the floor", "roll on the ground", "lie down and move"],
    "pushAndStumble": ["get pushed and stumble", "stumble and catch balance", "lose balance and recover"],
    "obstacles": ["step over obstacles", "walk over obstacles", "climb and step over things"],
    "multipleActions": ["do several things in a row", "a mix of actions"],
}
GENERIC_PHRASES = ["move around", "a person moving"]

# What the renders of these clips show beyond their category (contact sheets of the 40 H1 clips,
# 2026-12-01); the other clips look like their names.
SEEN_IN_RENDERS: dict[str, list[str]] = {
    "walk4_subject1": ["walk hunched over", "shuffle along bent forward at the waist"],
    "walk3_subject5": ["sneak along with bent knees", "walk crouched low"],
    "walk3_subject3": ["walk, then crawl on all fours"],
    "walk3_subject1": ["walk around and sit down on the floor"],
    "walk2_subject3": ["walk, squat down low and stand up again"],
    "jumps1_subject2": ["leap far forward", "jump and end up lying on the floor"],
}
# bent over at the waist although the pelvis stays high: no "mostly upright" phrase
NOT_UPRIGHT = {"walk4_subject1"}

# per-segment thresholds (m/s, rad/s, m)
STILL, SLOW, WALK, RUN = 0.25, 0.8, 1.6, 2.8
TURN = 0.6
CROUCH, GROUND = 0.75, 0.45


def clip_category(name: str) -> str:
    """Motion category of a clip name: ``walk1_subject5`` -> ``walk``, ``fallAndGetUp2_subject2`` -> ``fallAndGetUp``."""
    return re.sub(r"\d+$", "", name.split("_")[0])


def segment_measures(rows: np.ndarray) -> dict[str, float]:
    """Measured quantities of a segment of CSV rows (L, 26) at 30 Hz, L >= 2.

    Returns speed (m/s, horizontal root displacement / duration), direction (rad, of that
    displacement in the heading frame of the first frame; 0 = forward, + = left), yaw_rate
    (rad/s, unwrapped heading change / duration, + = left) and height (m, mean pelvis height).
    """
    if rows.ndim != 2 or len(rows) < 2:
        raise ValueError(f"segment_measures: need (L >= 2, 26) rows, got {rows.shape}")
    q = csv_to_qpos(rows)
    yaw = np.unwrap(heading_yaw(q[:, 3:7]))
    dur = (len(rows) - 1) / FPS
    d = rows[-1, :2] - rows[0, :2]
    c, s = np.cos(-yaw[0]), np.sin(-yaw[0])
    local = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
    return {
        "speed": float(np.linalg.norm(d) / dur),
        "direction": float(np.arctan2(local[1], local[0])),
        "yaw_rate": float((yaw[-1] - yaw[0]) / dur),
        "height": float(rows[:, 2].mean()),
    }


def segment_phrase(m: dict[str, float]) -> str:
    """Short command for measured quantities of one segment (see the module docstring)."""
    speed, yr, h = m["speed"], m["yaw_rate"], m["height"]
    turn = "turn left" if yr > TURN else "turn right" if yr < -TURN else ""
    if h < GROUND:
        return "move on the ground" if speed >= STILL else "lie on the ground"
    if speed < STILL:
        if h < CROUCH:
            return "crouch"
        return f"{turn} in place" if turn else "stand still"
    gait = "walk slowly" if speed < SLOW else "walk" if speed < WALK else "run" if speed < RUN else "sprint"
    if h < CROUCH:
        gait = "crouch and move"
    a = abs(m["direction"])
    way = "forward" if a < np.pi / 4 else "backward" if a > 3 * np.pi / 4 else ("to the left" if m["direction"] > 0 else "to the right")
    return f"{gait} {way}" + (f" while {turn.replace('turn', 'turning')}" if turn else "")


def clip_measures(rows: np.ndarray, segment_length: int = 32) -> dict[str, float]:
    """Clip summary from its consecutive segments: mean speed (m/s), mean |yaw rate| (rad/s),
    mean height (m) and the share of segments whose mean pelvis height is below 0.75 m."""
    segs = [segment_measures(rows[i : i + segment_length]) for i in range(0, len(rows) - segment_length + 1, segment_length)]
    if not segs:
        raise ValueError(f"clip of {len(rows)} frames is shorter than one segment ({segment_length})")
    return {
        "speed": round(float(np.mean([s["speed"] for s in segs])), 3),
        "turn_rate": round(float(np.mean([abs(s["yaw_rate"]) for s in segs])), 3),
        "height": round(float(np.mean([s["height"] for s in segs])), 3),
        "low_share": round(float(np.mean([s["height"] < CROUCH for s in segs])), 3),
    }


def clip_phrases(name: str, m: dict[str, float]) -> list[str]:
    """Phrasings of one clip: its category's phrases, two from the measured quantities, then
    what its render shows (:data:`SEEN_IN_RENDERS`, for some clips)."""
    cat = clip_category(name)
    base = CATEGORY_PHRASES.get(cat, GENERIC_PHRASES)
    pace = "slowly" if m["speed"] < 0.5 else "at a moderate pace" if m["speed"] < 0.9 else "briskly" if m["speed"] < 1.4 else "fast"
    extra = [f"{base[0]} {pace}"]
    bits = []
    if m["turn_rate"] > 0.7:
        bits.append("with many turns")
    if m["low_share"] > 0.2:
        bits.append("often low to the ground")
    if bits or name not in NOT_UPRIGHT:
        extra.append(f"{base[0]} {' and '.join(bits)}" if bits else f"{base[0]}, mostly upright")
    return list(base) + extra + SEEN_IN_RENDERS.get(name, [])


def build_annotations(root: str | Path | None = None) -> dict:
    """Annotation dict for every clip under the data root: {"about", "clips": {name: {...}}}."""
    clip_dir = resolve_clip_dir(root)
    clips = {}
    for name in list_clips(root):
        m = clip_measures(load_clip_csv(clip_dir / f"{name}.csv", min_frames=32))
        clips[name] = {"category": clip_category(name), "measured": m, "phrases": clip_phrases(name, m)}
    return {"about": "made by highlevel/annotate.py from clip names, measured root motion and renders; see its docstring",
            "clips": clips}


def load_annotations(path: str | Path | None = None) -> dict[str, list[str]]:
    """{clip name: phrasings} from an annotation file (default: the project's). One-line errors."""
    path = Path(path) if path is not None else ANNOTATIONS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found (python -m highlevel.annotate writes it)")
    try:
        data = json.loads(path.read_text())
        out = {k: list(v["phrases"]) for k, v in data["clips"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a valid annotation file ({type(e).__name__})") from None
    empty = [k for k, v in out.items() if not v or not all(isinstance(p, str) and p.strip() for p in v)]
    if empty:
        raise ValueError(f"{path}: clips without phrases: {', '.join(empty[:5])}")
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m highlevel.annotate [OUT]``: rewrite the annotation file from the data."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ANNOTATIONS_PATH
    data = build_annotations()
    atomic_write_json(out, data)
    print(f"wrote {out} ({len(data['clips'])} clips)")


if __name__ == "__main__":
    main()
