"""The motion VAE's model card."""
from motion_vae_support import NEEDS_DATA, TRAIN

pytestmark = NEEDS_DATA


def test_model_card_counts_augmented_training_clips_apart():
    from motion_vae.card import _describe_train_clips

    assert _describe_train_clips(TRAIN) == f"{len(TRAIN)} clips"
    mirrored = TRAIN + [n + "~mirror" for n in TRAIN]
    assert _describe_train_clips(mirrored) == f"{len(TRAIN)} clips + {len(TRAIN)} mirror images"
    assert _describe_train_clips(mirrored + [n + "~speed0.8" for n in mirrored]).endswith(f"+ {2 * len(TRAIN)} speed replays")
