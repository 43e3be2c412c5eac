"""H1 humanoid simulation: MJCF model (:mod:`envs.model`), reference motions
(:mod:`envs.reference`), DeepMimic reward (:mod:`envs.rewards`), the tracking
environment (:mod:`envs.tracking`) and N of them batched in one process as an SB3 VecEnv
(:mod:`envs.batched`).

Importing this package only registers ``daps/H1Tracking-v0`` with gymnasium
(entry point ``envs.tracking:H1TrackingEnv``); nothing heavy is imported here.
Use ``gymnasium.make("daps/H1Tracking-v0", **kwargs)`` after ``import envs``.
"""

import gymnasium as _gym

_ENV_ID = "daps/H1Tracking-v0"
if _ENV_ID not in _gym.registry:
    # No max_episode_steps here: the env truncates itself (its max_episode_steps argument).
    _gym.register(id=_ENV_ID, entry_point="envs.tracking:H1TrackingEnv")
