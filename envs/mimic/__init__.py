"""Motion tracking task for the H1 (mjlab-style split: config, motion, actions, observations, rewards, terminations, env)."""
