"""daps.shipped: where the shipped models are found, reading them as data, exports and model cards."""
from fractions import Fraction

import pytest
import torch

from daps import shipped
from daps.shipped import (HIGHLEVEL, LOWLEVEL, MOTION_VAE, SHIPPED, card_path, models_dir, read_card, read_tensors,
                          save_export, shipped_path, slim_checkpoint, write_card)


def test_models_dir_honours_the_variable_for_every_part(tmp_path, monkeypatch):
    monkeypatch.delenv(shipped.MODELS_DIR_ENV, raising=False)
    assert models_dir() == shipped._checkout_models_dir() and (models_dir() / MOTION_VAE).is_file()
    monkeypatch.setenv(shipped.MODELS_DIR_ENV, str(tmp_path))
    assert [shipped_path(n) for n in SHIPPED] == [tmp_path / MOTION_VAE, tmp_path / LOWLEVEL, tmp_path / HIGHLEVEL]
    with pytest.raises(ValueError, match="'other.pt' is not a shipped model"):
        shipped_path("other.pt")


def test_models_dir_falls_back_to_the_installed_copy(tmp_path, monkeypatch):
    monkeypatch.delenv(shipped.MODELS_DIR_ENV, raising=False)
    monkeypatch.setattr(shipped, "_checkout_models_dir", lambda: tmp_path / "no_checkout")
    monkeypatch.setattr(shipped, "_installed_models_dir", lambda: tmp_path / "installed")
    assert models_dir() == tmp_path / "installed"
    monkeypatch.setattr(shipped, "_installed_models_dir", lambda: None)
    assert models_dir() == tmp_path / "no_checkout"  # the loaders then name the missing file


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_card_is_rewritten_byte_for_byte(name, tmp_path):
    path = card_path(shipped._checkout_models_dir() / name)
    text = path.read_text()
    markdown = text[: text.index("```json\n")]
    assert markdown.endswith("\n\n")
    out = write_card(tmp_path / path.name, markdown[:-1], read_card(path))
    assert out == read_card(path) and (tmp_path / path.name).read_text() == text


def test_read_card_errors_name_the_file(tmp_path):
    bad = tmp_path / "m.md"
    bad.write_text("# card\n")
    with pytest.raises(ValueError, match="m.md: model card has no ```json block"):
        read_card(bad)
    bad.write_text("```json\n{1}\n```\n")
    with pytest.raises(ValueError, match="m.md: model card JSON is malformed"):
        read_card(bad)


def test_exports_are_data_and_foreign_files_read_as_none(tmp_path):
    ckpt = {"format": "f", "kind": "k", "config": {"a": 1}, "optimizer": {"x": torch.ones(2)}, "rng": [1]}
    out = save_export(slim_checkpoint(ckpt, {"w": torch.ones(3).half()}, ("format", "kind", "config", "step"),
                                      extra={"note": "x"}), tmp_path / "m.pt")
    raw = read_tensors(out)
    assert raw == {"format": "f", "kind": "k", "config": {"a": 1}, "model": {"w": raw["model"]["w"]},
                   "extra": {"note": "x"}, "exported": True}
    assert raw["model"]["w"].dtype == torch.float16
    assert read_tensors(tmp_path / "missing.pt") is None
    (tmp_path / "damaged.pt").write_bytes(out.read_bytes()[:100])
    assert read_tensors(tmp_path / "damaged.pt") is None
    torch.save({"kind": "k", "x": Fraction(1, 3)}, tmp_path / "object.pt")  # a pickled object, never unpickled
    assert read_tensors(tmp_path / "object.pt") is None
