"""Every method at equal budgets: tables, curves, resuming, several processes."""
import json

import pytest

from motion_vae_support import NEEDS_DATA, run_cli, tiny_compare

pytestmark = NEEDS_DATA


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


def test_cli_compare_rejects_unknown_methods(tmp_path):
    r = run_cli("motion-vae", "compare", "--methods", "daps-na,vq", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "unknown method(s) vq" in r.stderr and not (tmp_path / "c").exists()
    r = run_cli("motion-vae", "compare", "--methods", "fsq", "--arch", "lstm", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "transformer or conv" in r.stderr and not (tmp_path / "c").exists()
    r = run_cli("motion-vae", "compare", "--methods", "fsq", "--seeds", "2", "--train-seeds", "2", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "seeds in 0 .. 1" in r.stderr and not (tmp_path / "c").exists()
