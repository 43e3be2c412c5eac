"""The motion dataset: standardised features, mirrored and speed-replayed training clips."""
import numpy as np
import pytest

from envs.lafan1 import resolve_clip_dir
from motion_vae.dataset import load_motion_dataset
from motion_vae_support import NEEDS_DATA, TRAIN, VAL

pytestmark = NEEDS_DATA


def test_dataset_standardised_with_training_stats(data):
    x = np.concatenate(data.train.clips)
    assert np.allclose(x.mean(0), 0, atol=1e-3) and np.allclose(x.std(0), 1, atol=1e-2)
    assert data.stats.num_features == len(data.feature_names) == x.shape[1]
    assert data.train.sample(np.random.default_rng(0), 5).shape == (5, 32, x.shape[1])
    assert np.array_equal(data.val.fixed(16, seed=0), data.val.fixed(16, seed=0))


def test_mirrored_training_clips_are_added_and_validation_is_left_alone(data):
    from motion_vae.dataset import MIRROR_SUFFIX, clip_features
    from motion_vae.features import feature_layout, feature_names

    mirrored = load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600, mirror=True)
    assert mirrored.train.names == TRAIN + [n + MIRROR_SUFFIX for n in TRAIN] and mirrored.val.names == data.val.names
    raw = clip_features(resolve_clip_dir(None) / "walk1_subject1.csv", max_frames=100)
    flip = clip_features(resolve_clip_dir(None) / "walk1_subject1.csv", max_frames=100, mirror=True)
    col = {n: i for i, n in enumerate(feature_names())}
    blocks = {b.name: b for b in feature_layout()}
    vel = blocks["root_lin_vel"].start
    np.testing.assert_allclose(flip[:, vel : vel + 3], raw[:, vel : vel + 3] * [1, -1, 1], atol=1e-6)  # sideways velocity flips
    knee = [n for n in col if "knee" in n and n.startswith("joint_pos")]
    assert len(knee) == 2  # left and right knee angles trade places
    np.testing.assert_allclose(flip[:, col[knee[0]]], raw[:, col[knee[1]]], atol=1e-6)
    np.testing.assert_allclose(flip[:, 0], raw[:, 0], atol=1e-6)  # root height unchanged
    assert not np.allclose(flip, raw)


def test_speed_augmented_training_clips_and_parse_speeds(data):
    from motion_vae.config import parse_speeds
    from motion_vae.dataset import MIRROR_SUFFIX, SPEED_SUFFIX

    played = load_motion_dataset(train_clips=TRAIN, val_clips=VAL, max_frames=600, mirror=True, speeds=[0.8, 1.25])
    base = TRAIN + [n + MIRROR_SUFFIX for n in TRAIN]
    assert played.train.names == base + [f"{n}{SPEED_SUFFIX}{s}" for s in (0.8, 1.25) for n in base]
    assert played.val.names == data.val.names
    lengths = dict(zip(played.train.names, (len(c) for c in played.train.clips)))
    assert lengths[f"{TRAIN[0]}{SPEED_SUFFIX}0.8"] == 749 and lengths[f"{TRAIN[0]}{SPEED_SUFFIX}1.25"] == 480  # 600 frames at 0.8x / 1.25x
    assert parse_speeds("0.8, 1.25") == [0.8, 1.25] and parse_speeds("") == []
    for bad in ("1", "0.1", "fast", "0.8,0.8"):
        with pytest.raises(ValueError, match="speeds"):
            parse_speeds(bad)
