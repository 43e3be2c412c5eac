"""Data-parallel training (daps.distributed): 2 CPU processes (gloo) against one process.

Two checks, because DAPS's latent samples cannot be reproduced across a split: each process
draws its own noise (its own generator, shaped by its shard), so a 2 x 4 run and a 1 x 8 run sample
different codes however they are seeded, short of drawing every rank's noise for the whole global
batch inside the encoders' samplers. So:
  * FSQ (no latent noise): 2 processes x batch 4 reach the parameters of 1 process x batch 8 (the
    same global batches, step for step) within float rounding;
  * DAPS: both ranks hold bit-identical parameters and eta after training (gradients averaged,
    eta adapted from the all-reduced ESS), the checkpoint keeps both ranks' generators, and
    2 + 1 resumed steps equal 3 steps exactly.
The workers run the real image_bench path (data shards, trainer, checkpoint) on a tiny IDX fixture.
"""
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from daps.args import apply_overrides
from daps.distributed import shard_indices
from daps.trainer import CheckpointError, load_checkpoint
from image_bench.config import CHECKPOINT_KIND, preset_config
from image_bench.data import load_image_dataset
from image_bench.train import build_run, train_image_vae

WORLD = 2
CONSTANT_BETA = {"kind": "constant", "initial": 0.5, "final": 0.5, "end_fraction": 1.0}


def tiny(method, steps, batch_size):
    cfg = preset_config("cpu", method, "fashion-mnist")
    if method.startswith("daps"):
        cfg.objective["beta"] = CONSTANT_BETA  # the schedule then ignores the total, so 2 + 1 steps = 3 steps
    return apply_overrides(cfg, steps=steps, batch_size=batch_size, seed=0, val_images=8, eval_every=100, log_every=1)


def _worker(rank, port, idx_root, out):
    """One torchrun-like process: the environment torchrun would set, then the library calls."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    import image_bench.train as ib

    built = []
    real_build_run = ib.build_run
    ib.build_run = lambda cfg, dev: built.append(real_build_run(cfg, dev)) or built[-1]  # keep each run's modules
    data = load_image_dataset("fashion-mnist", idx_root)
    runs = [("fsq", "fsq", 3, False), ("daps", "daps-na", 3, False), ("daps_resumed", "daps-na", 2, False), ("daps_resumed", "daps-na", 3, True),
            ("ppo", "ppo", 2, False), ("vqvae", "vqvae", 2, False)]
    for name, method, steps, resume in runs:
        metrics = train_image_vae(tiny(method, steps, 4), out / name, data=data, device="cpu", progress=False, resume=resume)
        model, objective = built[-1]
        torch.save({"model": model.state_dict(), "objective": objective.state_dict(), "metrics": metrics}, out / f"{name}_rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, make_idx_dataset):
    """Train in 2 forked processes; returns (folder of their runs, the IDX root)."""
    idx_root = make_idx_dataset(tmp_path_factory.mktemp("idx"), n_val=8)
    out = tmp_path_factory.mktemp("ddp")
    # fork: the workers inherit the imported modules (a spawned one spends ~10 s of a busy machine
    # importing torch and vector_quantize_pytorch); they set one thread before any torch work
    ctx = mp.start_processes(_worker, args=(_free_port(), idx_root, out), nprocs=WORLD, join=False, start_method="fork")
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=1):  # raises ProcessRaisedException with a worker's traceback
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("DDP workers did not finish in 240 s (a collective out of step?)")
    return out, idx_root


def test_shards_of_ranks_make_up_the_single_process_batch():
    full = shard_indices(np.random.default_rng(3), 100, 8)
    assert np.array_equal(full, np.random.default_rng(3).integers(0, 100, size=8))  # one process: as before
    parts = [shard_indices(np.random.default_rng(3), 100, 4, r, 2) for r in range(2)]
    assert np.array_equal(np.concatenate(parts), full)


def test_fsq_two_processes_match_one_process_at_the_same_global_batch(ddp_runs, tmp_path):
    """2 processes x batch 4 = 1 process x batch 8: same global batches, same parameters."""
    out, idx_root = ddp_runs
    data = load_image_dataset("fashion-mnist", idx_root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the reduction order of one thread
    try:
        train_image_vae(tiny("fsq", 3, 4 * WORLD), tmp_path, data=data, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    single = load_checkpoint(tmp_path / "checkpoint.pt", CHECKPOINT_KIND)["model"]
    ckpt = load_checkpoint(out / "fsq" / "checkpoint.pt", CHECKPOINT_KIND)
    ranks = [torch.load(out / f"fsq_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    init = build_run(tiny("fsq", 3, 4 * WORLD))[0].state_dict()
    assert ckpt["step"] == 3 and ckpt["world_size"] == WORLD
    assert any(not torch.allclose(init[k], v) for k, v in single.items())  # training moved the weights
    for k, v in single.items():
        assert torch.equal(ranks[0]["model"][k], ranks[1]["model"][k]), k
        assert torch.equal(ckpt["model"][k], ranks[0]["model"][k]), k
        assert torch.allclose(ckpt["model"][k], v, rtol=1e-4, atol=1e-6), (k, (ckpt["model"][k] - v).abs().max())


def test_daps_ranks_stay_in_sync_and_resume_exactly(ddp_runs):
    out, _ = ddp_runs
    a, b = (torch.load(out / f"daps_rank{r}.pt", weights_only=True) for r in range(WORLD))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["objective"]["log_eta"], b["objective"]["log_eta"])
    clocks = ("train_seconds", "steps_per_s")  # each rank's own clock
    assert {k: v for k, v in a["metrics"].items() if k not in clocks} == {k: v for k, v in b["metrics"].items() if k not in clocks}
    ckpt = load_checkpoint(out / "daps" / "checkpoint.pt", CHECKPOINT_KIND)
    assert ckpt["objective"]["log_eta"] != pytest.approx(np.log(ckpt["config"]["objective"]["init_eta"]))  # eta moved
    torch_states = ckpt["rng"]["torch_ranks"]
    assert len(torch_states) == WORLD and not torch.equal(torch_states[0], torch_states[1])  # own noise per rank
    resumed = load_checkpoint(out / "daps_resumed" / "checkpoint.pt", CHECKPOINT_KIND)
    for k in ckpt["model"]:
        assert torch.equal(resumed["model"][k], ckpt["model"][k]), k
    assert torch.equal(resumed["objective"]["log_eta"], ckpt["objective"]["log_eta"])


@pytest.mark.parametrize("name", ["ppo", "vqvae"])
def test_other_methods_keep_ranks_in_sync(ddp_runs, name):
    """PPO adapts its KL coefficient from the global KL; VQ's quantiser library sees the group."""
    out, _ = ddp_runs
    a, b = (torch.load(out / f"{name}_rank{r}.pt", weights_only=True) for r in range(WORLD))
    for part in ("model", "objective"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


def test_resume_refuses_another_process_count(ddp_runs, tmp_path):
    out, idx_root = ddp_runs
    data = load_image_dataset("fashion-mnist", idx_root)
    with pytest.raises(CheckpointError, match="written by 2 process"):
        train_image_vae(tiny("daps-na", 4, 4), out / "daps", data=data, device="cpu", progress=False, resume=True)
