"""The tracker as an ONNX file for deployment: the graph a robot-side runtime runs at 50 Hz.

The graph (input ``obs``, float32 [batch, 161]; output ``actions``, float32 [batch, 19]) is the
whole observation-to-action path of :func:`lowlevel.tracker.policy_actor`: the training
normalisation ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` with the tracker's
statistics, the actor MLP, its mean action (deterministic), clipped to the action space.  What a
runtime needs around it travels in the file's ``metadata_props``, each value a JSON string
(:func:`deployment_metadata`): joint order, the PD gains and torque limits the policy was trained
with, the standing pose, the action scale and clip, the rates, the observation layout and the
sha256 of the source file and of the motion VAE it was trained against.  Key names follow mjlab's
exports where it has one (``joint_names``, ``joint_stiffness``, ``joint_damping``,
``default_joint_pos``, ``action_scale``, ``observation_names``).

Written with PyTorch's TorchScript-based exporter (``dynamo=False``): the graph is a plain MLP, and
that exporter needs no package beyond ``onnx``.  The file is checked (``onnx.checker``) and run in
onnxruntime against the torch policy before it replaces ``out``.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ONNX_FORMAT", "INSTALL_HINT", "DeployedActor", "require_onnx", "deployment_metadata", "export_onnx",
           "read_metadata"]

ONNX_FORMAT = "daps-tracker-onnx-v1"
INSTALL_HINT = "pip install 'daps-humanoid[deploy]'"
OPSET = 17
OBS_EPSILON = 1e-8   # VecNormalize's default, as in training
OBS_CLIP = 10.0      # VecNormalize(clip_obs=10.0) in lowlevel.tracker.train_tracker
CHECK_ATOL = 1e-4    # largest |action difference| to the torch policy accepted before writing


def require_onnx():
    """(onnx, onnxruntime) modules; ImportError with one line naming the extra when one is missing."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"ONNX export needs the {e.name or 'onnx'} package: {INSTALL_HINT}", name=e.name) from None
    return onnx, onnxruntime


class DeployedActor(nn.Module):
    """Raw observation (B, D) float32 -> deterministic action (B, 19) float32.

    ``clip((obs - mean) / std, -obs_clip, obs_clip)`` with std = sqrt(var + epsilon) (computed in
    float64, as VecNormalize does), then the policy's MLP and action head (SB3's mean action), then
    the action space's clip to +-``action_clip`` (what SB3's ``predict`` does).

    Args:
        policy: an SB3 ``ActorCriticPolicy`` with the flat observation (FlattenExtractor); ValueError otherwise.
        mean, var: (D,) observation statistics.
    """

    def __init__(self, policy, mean: np.ndarray, var: np.ndarray, action_clip: float,
                 obs_clip: float = OBS_CLIP, epsilon: float = OBS_EPSILON):
        super().__init__()
        from stable_baselines3.common.torch_layers import FlattenExtractor

        if not isinstance(policy.pi_features_extractor, FlattenExtractor):
            raise ValueError(f"ONNX export needs a flat-observation policy, got {type(policy.pi_features_extractor).__name__}")
        self.net = copy.deepcopy(policy.mlp_extractor.policy_net).float().eval()
        self.head = copy.deepcopy(policy.action_net).float().eval()
        var64 = torch.as_tensor(np.asarray(var, dtype=np.float64))
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
        self.register_buffer("obs_std", torch.sqrt(var64 + epsilon).float())
        self.obs_clip, self.action_clip = float(obs_clip), float(action_clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp((obs - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        return torch.clamp(self.head(self.net(x)), -self.action_clip, self.action_clip)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("daps-humanoid")
    except PackageNotFoundError:
        return "unknown"


def deployment_metadata(ck: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """What a runtime needs beside the graph, as plain data (module docstring); values read from
    the task's own MuJoCo model (gains after ``kp_scale``, torque limits) and config.

    Units: rad, rad/s, N m, N m/rad, N m s/rad, s, Hz; per-joint lists in ``joint_names`` order.
    Raises ValueError naming ``source`` for a task with the balance feedback (not in the graph).
    """
    import mujoco

    from daps.io import file_sha256
    from envs.mimic.config import MimicConfig
    from envs.mimic.env import MimicVecEnv
    from envs.mimic.observations import observation_layout
    from envs.model import JOINT_NAMES
    from envs.tracking import NOMINAL_POSE
    from lowlevel.tracker import _stub_library

    task = MimicConfig.from_dict(ck["task"])
    if task.balance:  # its targets come from the simulator's COM, outside the policy
        raise ValueError(f"{source}: the capture-point balance feedback (task balance=True) is not part of the "
                         "policy's graph; ONNX export covers trackers without it")
    env = MimicVecEnv(_stub_library(task), 1, task, adaptive=False)
    m = env.model
    jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINT_NAMES]
    act = [int(np.flatnonzero(m.actuator_trnid[:, 0] == j)[0]) for j in jids]  # actuator of each joint
    layout = observation_layout(task.reference_offsets)
    mvae = ck.get("motion_vae") or {}
    meta = {
        "format": ONNX_FORMAT,
        "source_format": ck["format"],
        "producer": f"daps-humanoid {_version()}, torch {torch.__version__}",
        "source_file": Path(source).name,
        "source_sha256": file_sha256(source),
        "motion_vae_sha256": mvae.get("sha256"),
        "goal": "decoded" if mvae else "clip",
        "num_timesteps": int(ck["num_timesteps"]),
        "input": {"name": "obs", "shape": ["batch", int(ck["obs_mean"].shape[0])], "dtype": "float32"},
        "output": {"name": "actions", "shape": ["batch", len(JOINT_NAMES)], "dtype": "float32"},
        "joint_names": list(JOINT_NAMES),
        "joint_stiffness": m.actuator_gainprm[act, 0].tolist(),
        "joint_damping": (-m.actuator_biasprm[act, 2]).tolist(),
        "kp_scale": task.kp_scale,
        "torque_limits": m.actuator_forcerange[act, 1].tolist(),
        "default_joint_pos": NOMINAL_POSE.tolist(),
        "pd_target": "ref_joint_pos@+1 + action_scale * actions (the reference's joint angles one control step ahead)",
        "action_scale": env.scale.tolist(),
        "action_clip": task.action_clip,
        "control_hz": task.control_hz,
        "control_dt": task.control_dt,
        "physics_dt": task.physics_dt,
        "decimation": task.decimation,
        "anchor_body": task.tracked_bodies[env.anchor],
        "reference_offsets": [int(o) for o in task.reference_offsets],
        "observation_names": [name for name, _ in layout],
        "observation_sizes": [n for _, n in layout],
        "observation_normalization": {"epsilon": OBS_EPSILON, "clip": OBS_CLIP, "in_graph": True},
    }
    env.close()
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """An exported file's ``metadata_props``, each value decoded from JSON."""
    onnx, _ = require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def _probe_observations(mean: np.ndarray, var: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, D) float32 observations spread like the training data (mean + std * N(0, 1))."""
    rng = np.random.default_rng(seed)
    return (mean + np.sqrt(var) * rng.standard_normal((n, len(mean)))).astype(np.float32)


def export_onnx(ckpt: str | Path, out: str | Path, probes: int = 256) -> dict[str, Any]:
    """Write the tracker ``ckpt`` (checkpoint or shipped file) as ONNX at ``out``, atomically.

    Before ``out`` is replaced, the file is checked with ``onnx.checker`` and run in onnxruntime on
    ``probes`` observations drawn from the tracker's statistics; its actions must match the torch
    policy's deterministic ones within :data:`CHECK_ATOL`.

    Returns {"path", "size_bytes", "max_abs_diff" (on the probes), "metadata"}.
    Raises ImportError (one line, :data:`INSTALL_HINT`) without onnx / onnxruntime; ValueError /
    FileNotFoundError naming ``ckpt`` for anything but a tracker file (:func:`lowlevel.tracker.read_checkpoint`);
    RuntimeError if the graph's actions differ from the torch policy's; OSError naming ``out``.
    """
    from daps.io import atomic_write
    from lowlevel.tracker import load_tracker, policy_actor

    onnx, ort = require_onnx()
    model, ck = load_tracker(ckpt)
    mean, var = ck["obs_mean"].numpy(), ck["obs_var"].numpy()
    actor = DeployedActor(model.policy, mean, var, action_clip=float(model.action_space.high[0]))
    meta = deployment_metadata(ck, ckpt)
    obs = _probe_observations(mean, var, probes)
    expected = policy_actor(model, ck)(obs)
    result: dict[str, Any] = {}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():  # the TorchScript exporter's notice that dynamo is the default
            warnings.simplefilter("ignore")
            torch.onnx.export(actor, (torch.as_tensor(obs[:1]),), tmp, dynamo=False, opset_version=OPSET,
                              input_names=["obs"], output_names=["actions"],
                              dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}})
        graph = onnx.load(tmp)
        graph.doc_string = "daps-humanoid tracker: raw observation -> deterministic action (see metadata_props)"
        for k, v in meta.items():
            graph.metadata_props.add(key=k, value=json.dumps(v))
        onnx.checker.check_model(graph, full_check=True)
        onnx.save(graph, tmp)
        sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        got = sess.run(["actions"], {"obs": obs})[0]
        diff = float(np.abs(got - expected).max())
        if not diff <= CHECK_ATOL:
            raise RuntimeError(f"{out}: the ONNX graph's actions differ from the torch policy's by {diff:.2e} (> {CHECK_ATOL})")
        result["max_abs_diff"] = diff

    path = atomic_write(out, write)
    return {"path": str(path), "size_bytes": path.stat().st_size, "max_abs_diff": result["max_abs_diff"], "metadata": meta}
