"""Fixtures of the motion VAE tests: a small slice of the real data and a tiny model trained on it."""
import pytest

from motion_vae.dataset import load_motion_dataset
from motion_vae.train import train_motion_vae
from motion_vae_support import TRAIN, VAL, tiny_config


@pytest.fixture(scope="module")
def data():
    return load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("run")
    train_motion_vae(tiny_config(steps=2), run, device="cpu", progress=False, data=data)
    return run / "checkpoint.pt"
