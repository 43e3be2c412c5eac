"""Tests of highlevel.goal (text -> root speed / turn goal) and the controllability study's root labels."""
import json

import numpy as np
import pytest

from highlevel.goal import GOALS_PATH, OUT_OF_DATA, GoalMap, build_goal_table, load_goal_table, prompt_goals

PROMPTS = ["walk forward", "stand still", "turn left", "turn right", "run forward", "stroll ahead", "do a backflip",
           "walk forward while turning left", "make a right turn", "walk backwards"]


@pytest.fixture(scope="module")
def goal_map(text_cache):
    return GoalMap(cache=text_cache)


def test_goal_table_shipped_is_small_and_sane():
    t = load_goal_table()
    assert GOALS_PATH.stat().st_size < 50_000 and len(t) > 50
    assert t["walk forward"]["speed"] > 0.8 > 0.25 > t["stand still"]["speed"]
    assert t["run forward"]["speed"] > 1.6
    assert t["turn left in place"]["turn"] > 0.6 > -0.6 > t["turn right in place"]["turn"]
    assert all(v["segments"] >= 20 for v in t.values())
    assert abs(t["walk backward"]["direction"]) > 2.8 and 1.0 < t["walk to the left"]["direction"] < 2.0
    assert t["crouch"]["height"] < 0.75 < 0.95 < t["stand still"]["height"]


def test_goal_table_rebuilt_from_clips(tmp_path):
    """The table is a function of the data: two training clips give texts of their own phrasings
    and measured phrases, each with the median of its segments."""
    table = build_goal_table(clips=["walk1_subject1", "dance1_subject1"], max_frames=600)["texts"]
    assert "dance" in table and "walk" in table and "stand still" in table
    assert table["walk"]["segments"] > 0 and all(np.isfinite([v["speed"], v["turn"]]).all() for v in table.values())


@pytest.mark.parametrize("content", ["{}", '{"texts": {"walk": {"speed": "fast"}}}', "not json",
                                     '{"texts": {"walk": {"speed": NaN, "turn": 0, "segments": 3}}}'])
def test_goal_table_bad_file_one_line(tmp_path, content):
    p = tmp_path / "goals.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=str(p)):
        load_goal_table(p)
    with pytest.raises(FileNotFoundError, match="goal table not found"):
        load_goal_table(tmp_path / "missing.json")


def test_goal_from_text_orders_speed_and_turn(goal_map):
    walk, stand, left, right, run = goal_map.infer_many(["walk forward", "stand still", "turn left", "turn right", "run forward"])
    assert walk.speed > 0.8 > 0.25 > stand.speed and run.speed > 1.6 > walk.speed
    assert abs(walk.turn) < 0.2 and abs(stand.turn) < 0.2
    assert left.turn > 0.5 > 0 > -0.5 > right.turn
    assert all(g.in_data for g in (walk, stand, left, right, run))
    assert walk.nearest[0] == ("walk forward", pytest.approx(1.0, abs=1e-3))  # the nearest phrases, best first
    sims = [s for _, s in left.nearest]
    assert sims == sorted(sims, reverse=True) and len(left.nearest) == 5
    assert "goal from text: 1.05 m/s, +0.03 rad/s (nearest: 'walk forward' 1.00" in walk.describe()
    assert walk.goal() == (walk.speed, walk.turn, walk.direction, walk.height) and abs(walk.direction) < 0.3


def test_goal_sides_not_blended(goal_map):
    """MiniLM puts left and right close; the blend keeps to the side and way the prompt names."""
    from highlevel.goal import conflicts

    assert conflicts("turn left", ["turn right in place", "turn left in place", "run to the left while turning right", "dance"]).tolist() \
        == [True, False, False, False]
    assert conflicts("walk backwards", ["walk forward", "walk backward"]).tolist() == [True, False]
    left, right, back = goal_map.infer_many(["walk forward while turning left", "make a right turn", "walk backwards"])
    assert left.turn > 0.6 and right.turn < -0.6
    assert abs(back.direction) > 2.5 and "backward" in back.describe()


def test_goal_out_of_data_flagged_with_nearest(goal_map):
    flip, stroll = goal_map.infer_many(["do a backflip", "stroll ahead"])
    assert not flip.in_data and flip.nearest[0][1] < OUT_OF_DATA
    assert stroll.in_data and stroll.nearest[0][1] >= OUT_OF_DATA and 0.4 < stroll.speed < 1.6
    line = flip.describe()
    assert "outside what the data holds" in line and flip.nearest[0][0] in line and "no goal from text" in line


def test_prompt_goals_for_the_command(text_cache):
    lines = []
    goals = prompt_goals(["walk forward", "do a backflip", " "], text_cache.path, say=lines.append)
    assert goals[0][0] > 0.8 and len(goals[0]) == 4 and goals[1] is None and goals[2] is None  # empty: left to the command's own check
    assert len(lines) == 2 and lines[0].startswith('"walk forward": goal from text') and "outside" in lines[1]


def _rows(speed, turn=0.0, height=1.0, direction=0.0, n=33):
    """CSV rows (n, 26) of a root moving at speed (m/s) along direction (rad, relative to the
    heading) while the heading turns at turn (rad/s)."""
    t = np.arange(n) / 30.0
    yaw = turn * t
    r = np.zeros((n, 26))
    r[:, 0], r[:, 1], r[:, 2] = speed * t * np.cos(direction), speed * t * np.sin(direction), height
    r[:, 5], r[:, 6] = np.sin(yaw / 2), np.cos(yaw / 2)  # quaternion x y z w: a yaw
    return r


@pytest.mark.parametrize("speed, turn, height, direction, label", [
    (1.0, 0.0, 1.0, 0.0, "walk"),
    (1.0, 0.4, 1.0, 0.0, "walk"),  # a gentle curve is still walking
    (2.5, 0.8, 1.0, 0.0, "run"),
    (0.1, 0.1, 1.0, 0.0, "stand"),
    (0.1, 1.0, 1.0, 0.0, "turn left"),
    (0.6, -0.9, 1.0, 0.0, "turn right"),
    (0.7, 0.0, 1.0, np.pi, "walk backward"),
    (0.7, 0.0, 1.0, np.pi / 2, "walk sideways"),
    (0.3, 0.0, 0.6, 0.0, "crouch"),
    (0.3, 0.0, 1.0, 0.0, "other"),  # a shuffle: too fast to stand, too slow to walk
])
def test_root_label_thresholds(speed, turn, height, direction, label):
    from highlevel.annotate import segment_measures
    from highlevel.control import ROOT_LABELS, root_label, root_labels

    m = segment_measures(_rows(speed, turn, height, direction))
    assert root_label(m["speed"], m["direction"], m["yaw_rate"], m["height"]) == label
    rows = np.concatenate([_rows(0.0, n=32), _rows(speed, turn, height, direction, n=64)[:64]])[None]  # segment 0 unscored
    lab, seg = root_labels(rows, 3)
    assert ROOT_LABELS[lab[0]] == label and seg.shape == (1, 2)


def test_study_phrases_unseen_and_training_phrases_known():
    from highlevel.annotate import load_annotations
    from highlevel.control import PARAPHRASES, STUDY_CATEGORIES, TRAINING_PHRASES, check_unseen

    assert set(PARAPHRASES) == set(TRAINING_PHRASES) == set(STUDY_CATEGORIES)
    assert all(len(v) == 10 and len(set(v)) == 10 for v in PARAPHRASES.values())
    check_unseen(PARAPHRASES)
    with pytest.raises(RuntimeError, match="not unseen"):
        check_unseen(TRAINING_PHRASES)
    seen = {p for ps in load_annotations().values() for p in ps} | set(load_goal_table())
    assert all(p in seen for ps in TRAINING_PHRASES.values() for p in ps)
    json.dumps(PARAPHRASES)


def test_future_arc_direction():
    from highlevel.command import future_arc

    back, left = future_arc(1.0, 0.0, 0.9, direction=np.pi), future_arc(1.0, 0.0, 0.9, direction=np.pi / 2)
    assert back[-1, 0] == pytest.approx(-32 / 30) and abs(back[-1, 1]) < 1e-6 and (back[:, 3] == 1).all()  # heading kept
    assert left[-1, 1] == pytest.approx(32 / 30) and np.allclose(left[:, 2], 0.9)
