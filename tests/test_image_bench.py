"""image_bench: IDX reading, every method's training step on an IDX fixture, eval and compare end to end."""
import csv
import math
import gzip
import json

import numpy as np
import pytest
import torch

from daps.args import apply_overrides
from daps.metrics import mean_and_standard_error
from daps.objectives.registry import METHODS
from image_bench.checkpoint import load_image_vae
from image_bench.config import preset_config
from image_bench.data import ImageDataError, load_image_dataset, read_idx, write_idx
from image_bench.models import ImagePatcher
from image_bench.train import train_image_vae


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory, make_idx_dataset):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"))


def tiny(method, steps=1, seed=0):
    cfg = preset_config("cpu", method, "fashion-mnist")
    if method.startswith("grmck"):
        cfg.objective["rao_samples"] = 3
    return apply_overrides(cfg, steps=steps, batch_size=4, seed=seed, val_images=8, eval_every=1, log_every=1)


def test_read_idx_roundtrip_raw_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", a)), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx.gz", a)), a)
    assert (tmp_path / "a.idx.gz").read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    "content, message",
    [(b"\x00\x00\x08\x03" + np.array([2, 28, 28], ">u4").tobytes() + b"\x00" * 100, "bytes, expected"),
     (b"PK\x03\x04garbage", "not an IDX file"),
     (gzip.compress(b"\x00\x00\x08"), "not an IDX file"),
     (b"\x1f\x8b\x08broken", "unreadable")],
)
def test_malformed_idx_files_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ImageDataError, match=message) as e:
        read_idx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_dataset_loading_binarises_and_names_missing_or_misshapen_files(tmp_path, monkeypatch, make_idx_dataset):
    root = make_idx_dataset(tmp_path / "raw", gz=False)
    monkeypatch.setenv("DAPS_MNIST_DIR", str(root))
    data = load_image_dataset("mnist")
    raw = read_idx(root / "train-images-idx3-ubyte")
    assert np.array_equal(data.train.images, (raw > 127).astype(np.uint8))
    assert len(data.val) == 12 and data.val.fixed(5).dtype == np.float32
    (root / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ImageDataError, match="t10k-images-idx3-ubyte"):
        load_image_dataset("mnist")
    write_idx(root / "t10k-images-idx3-ubyte", np.zeros((3, 28, 27), np.uint8))
    with pytest.raises(ImageDataError, match=r"t10k-images-idx3-ubyte: expected uint8 images \(N, 28, 28\)"):
        load_image_dataset("mnist")
    monkeypatch.delenv("DAPS_MNIST_DIR")
    with pytest.raises(ImageDataError, match="DAPS_MNIST_DIR"):
        load_image_dataset("mnist")


def test_patcher_cuts_the_authors_2x4_grid_of_14x8_patches():
    p = ImagePatcher((28, 28), (14, 8), 4)
    x = torch.zeros(1, 28, 28)
    x[0, 14, 2] = 1.0  # row 14 -> patch row 1; column 2 + 2 padding -> patch column 0, offset 4
    with torch.no_grad():
        p.proj.weight.zero_()
        p.proj.weight[0, 4] = 1.0  # picks pixel (0, 4) of a patch
        p.proj.bias.zero_()
        tokens = p(x)
    assert tokens.shape == (1, 8, 4)
    assert tokens[0, :, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # patch (1, 0) = token 4
    with pytest.raises(ValueError, match="expected images"):
        p(torch.zeros(1, 28, 32))


@pytest.mark.parametrize("method", [*METHODS, "daps:1.0"])
def test_every_method_trains_one_step_on_the_idx_fixture(idx_root, tmp_path, method):
    cfg = tiny(method)
    data = load_image_dataset("fashion-mnist", idx_root)
    out = train_image_vae(cfg, tmp_path / "run", data=data, device="cpu", progress=False)
    for k in ("log_p", "val/log_p", "val/l2", "val/psnr_db", "val/codebook_used", "val/code_perplexity", "val/elbo"):
        assert np.isfinite(out[k]), k
    assert out["skipped_steps"] == 0
    assert ("val/beta_elbo" in out) == METHODS[method.split(":")[0]].stochastic
    model, loaded_cfg, ckpt = load_image_vae(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 1 and loaded_cfg.method == method
    torch.manual_seed(cfg.seed)
    from image_bench.models import build_image_vae

    fresh = build_image_vae(cfg.model)
    changed = [k for k, v in fresh.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    assert any(k.startswith("recognition.") for k in changed) and any(k.startswith("generator.") for k in changed)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_in_bf16_and_resumes_in_fp32(idx_root, tmp_path, method):
    """Mixed precision (`OptimConfig.precision`) for every estimator: finite losses, float32
    weights, and a resume may switch back to float32 (a field of the schedule, not the state)."""
    from dataclasses import replace

    data = load_image_dataset("fashion-mnist", idx_root)
    cfg = tiny(method, steps=2)
    cfg.optim = replace(cfg.optim, precision="bf16")
    out = train_image_vae(cfg, tmp_path / "run", data=data, device="cpu", progress=False)
    assert np.isfinite(out["log_p"]) and out["skipped_steps"] == 0
    cfg = tiny(method, steps=3)
    out = train_image_vae(cfg, tmp_path / "run", data=data, device="cpu", progress=False, resume=True)
    model, _, ckpt = load_image_vae(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 3 and np.isfinite(out["log_p"])
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_method_names_and_beta_suffix():
    assert tiny("daps:1.0").beta_final == 1.0 and tiny("daps").beta_final == 0.01
    assert tiny("vqvae").beta_final is None
    with pytest.raises(ValueError, match="no beta"):
        preset_config("cpu", "fsq:1.0")
    with pytest.raises(ValueError, match="unknown method"):
        preset_config("cpu", "dalle")


@pytest.mark.parametrize("method", ["gumbel", "ppo"])
def test_resume_continues_exactly(idx_root, tmp_path, method):
    """2 + 2 steps equal 4 steps (constant beta, so the schedule does not depend on the total;
    PPO's behaviour encoder and KL coefficient come back from the checkpoint)."""
    data = load_image_dataset("fashion-mnist", idx_root)

    def cfg(steps):
        c = tiny(method, steps=steps)
        c.objective["beta"] = {"kind": "constant", "initial": 0.5, "final": 0.5, "end_fraction": 1.0}
        return c

    full = train_image_vae(cfg(4), tmp_path / "a", data=data, device="cpu", progress=False)
    half = train_image_vae(cfg(2), tmp_path / "b", data=data, device="cpu", progress=False)
    resumed = train_image_vae(cfg(4), tmp_path / "b", data=data, device="cpu", progress=False, resume=True)
    assert half["val/log_p"] != pytest.approx(full["val/log_p"], abs=1e-3)
    assert resumed["val/log_p"] == pytest.approx(full["val/log_p"], abs=1e-4)
    assert resumed["log_p"] == pytest.approx(full["log_p"], abs=1e-4)


def test_compare_end_to_end_writes_table_csv_json_and_pictures(idx_root, tmp_path):
    from image_bench.compare import compare

    out = tmp_path / "cmp"
    res = compare("fashion-mnist", ["daps", "vqvae"], 2, "cpu", out, data_root=idx_root, device="cpu", steps=2, batch_size=4, progress=False)
    for name in ("results.csv", "results.json", "table.md", "curves.png", "reconstructions.png", "prior_samples.png"):
        assert (out / name).stat().st_size > 0, name
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [("daps", "0"), ("daps", "1"), ("vqvae", "0"), ("vqvae", "1")]
    lp = [float(r["log_p"]) for r in rows if r["method"] == "daps"]
    mean, se = mean_and_standard_error(lp)
    assert se > 0  # two seeds differ
    table = (out / "table.md").read_text().splitlines()
    daps_row = next(line for line in table if line.startswith("| daps |"))
    assert f"{mean:.2f} +- {se:.2f}" in daps_row
    vq_row = next(line for line in table if line.startswith("| vqvae |")).split(" | ")
    assert vq_row[2] == "-" and vq_row[3] == "-"  # no ELBO for a deterministic quantiser
    assert json.loads((out / "results.json").read_text())["summary"]["daps"]["log_p"] == pytest.approx([mean, se])
    # a second call finds every run complete and trains nothing more
    mtime = (out / "runs" / "daps" / "seed0" / "checkpoint.pt").stat().st_mtime_ns
    compare("fashion-mnist", ["daps", "vqvae"], 2, "cpu", out, data_root=idx_root, device="cpu", steps=2, batch_size=4, progress=False)
    assert (out / "runs" / "daps" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime


def test_cli_compare_and_eval(idx_root, tmp_path):
    from typer.testing import CliRunner

    from image_bench.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["compare", "--methods", "fsq", "--seeds", "1", "--steps", "1", "--batch-size", "4",
                            "--out", str(tmp_path / "c"), "--data", str(idx_root), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "| fsq |" in r.output
    ckpt = tmp_path / "c" / "runs" / "fsq" / "seed0" / "checkpoint.pt"
    r = runner.invoke(app, ["eval", "--ckpt", str(ckpt), "--data", str(idx_root), "--device", "cpu", "--out", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert metrics["images"] == 12 and metrics["method"] == "fsq" and np.isfinite(metrics["log_p"])


@pytest.mark.parametrize("method", ["fsq", "vqvae"])
def test_quantiser_codes_round_trip_to_the_training_path(method):
    """Decoding a quantiser's indices (eval, encode/decode) gives what training decoded from the
    quantised vectors: indices -> code vectors -> indices is the identity."""
    torch.manual_seed(0)
    from image_bench.models import build_image_vae

    cfg = preset_config("cpu", method).model
    model = build_image_vae(cfg).eval()
    x = (torch.rand(6, 28, 28) < 0.3).float()
    with torch.no_grad():
        out = model.recognition.quantize(x)
        codes, idx = out[0], out[1]
        from_codes = model.generator.from_embeddings(model.generator.embed.from_codes(codes).unsqueeze(1))
        z, log_q = model.recognition.sample(x, 2)
        assert torch.equal(z[:, 0], idx) and torch.equal(z[:, 1], idx) and (log_q == 0).all()
        assert torch.allclose(model.generator(z[:, :1]), from_codes, atol=1e-5)
        own, _ = model.recognition.log_prob(x, z)
        other, _ = model.recognition.log_prob(x, z.roll(1, dims=0))
        assert (own == 0).all() and torch.isinf(other).any()
    if method == "fsq":
        grid = model.generator.embed.fsq.indices_to_codes(idx)
        assert torch.equal(model.generator.embed.fsq.codes_to_indices(grid).long(), idx)


def test_speed_benchmark_times_a_method(monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_image.py"
    spec = importlib.util.spec_from_file_location("bench_image", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.bench_method("fsq", torch.device("cpu"), steps=1, warmup=0, batch=8)
    assert r["method"] == "fsq" and r["steps"] == 1 and r["steps_per_s"] > 0
    r = bench.bench_method("fsq", torch.device("cpu"), steps=1, warmup=0, batch=2, dataset="cifar10")
    assert r["dataset"] == "cifar10" and r["steps_per_s"] > 0


def make_cifar_dataset(root, n_train=8, n_val=6, seed=0):
    """A tiny CIFAR-10 python-version folder: 5 training batches and a test batch (pickled dicts, protocol 2)."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_val)]:
        batch = {b"batch_label": name.encode(), b"labels": list(rng.integers(0, 10, n)),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


def test_cifar_batches_read_as_rgb_and_standardised(tmp_path):
    import pickle

    from image_bench.data import CIFAR_MEAN, CIFAR_STD, read_cifar_batch

    root = make_cifar_dataset(tmp_path)
    raw = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes())[b"data"]
    data = load_image_dataset("cifar10", root)
    assert data.train.images.shape == (40, 32, 32, 3) and data.val.images.shape == (6, 32, 32, 3)
    img = data.val.images[2]
    assert img[5, 7, 0] == raw[2, 5 * 32 + 7] and img[5, 7, 1] == raw[2, 1024 + 5 * 32 + 7] and img[5, 7, 2] == raw[2, 2048 + 5 * 32 + 7]
    x = data.val.fixed(0)
    assert np.allclose(x[2, 5, 7], (img[5, 7] - np.array(CIFAR_MEAN)) / np.array(CIFAR_STD), atol=1e-5)
    assert np.allclose(data.to_unit(x), data.val.images / 255.0, atol=1e-5)
    # a pickle that names anything but arrays and containers is refused, not run
    evil = tmp_path / "evil"
    evil.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"f": np.random.default_rng}, protocol=2))
    with pytest.raises(ImageDataError, match="evil: not a CIFAR-10 python batch .*refusing"):
        read_cifar_batch(evil)
    with pytest.raises(ImageDataError, match="data_batch_3: file not found"):
        (root / "cifar-10-batches-py" / "data_batch_3").unlink()
        load_image_dataset("cifar10", root)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_one_step_on_the_cifar_fixture(tmp_path, method):
    """The CIFAR-10 path (RGB patches, ResNet decoder, learned clipped variance), narrowed for speed."""
    root = make_cifar_dataset(tmp_path / "data")
    cfg = preset_config("cpu", method, "cifar10")
    if method == "grmck":
        cfg.objective["rao_samples"] = 3
    m = cfg.model
    m.embed_dim, m.num_layers, m.na_num_layers, m.decoder_embed_dim, m.decoder_hidden = 16, 1, 1, 8, (8,)
    cfg = apply_overrides(cfg, steps=1, batch_size=2, val_images=3, eval_every=1, log_every=1)
    out = train_image_vae(cfg, tmp_path / "run", data_root=root, device="cpu", progress=False)
    assert out["skipped_steps"] == 0 and all(np.isfinite(out[k]) for k in ("log_p", "val/log_p", "val/psnr_db", "val/l2"))
    model, _, _ = load_image_vae(tmp_path / "run" / "checkpoint.pt")
    z = torch.zeros(1, 1, 64, dtype=torch.long)
    params = model.generator(z)
    assert params.shape == (1, 1, 32, 32, 6)
    log_var = model.likelihood.log_var(params)
    assert log_var.min() >= math.log(0.01) - 1e-6 and log_var.max() <= 1e-6  # variance clipped to [0.01, 1]


def make_imagenet_tree(root, seed=0):
    """A tiny ImageFolder tree: train/ with two classes of small RGB PNGs of odd sizes, val/ with three."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", 3), ("val", 3)):
        for cls in ("n01", "n02"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n if split == "train" else 1 + (cls == "n01")):
                arr = rng.integers(0, 256, (int(rng.integers(20, 40)), int(rng.integers(20, 40)), 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"img{i}.png")
    return root


def test_imagenet_tree_crops_flips_and_resizes(tmp_path):
    from PIL import Image

    from image_bench.data import IMAGENET_MEAN, IMAGENET_STD, random_resized_crop

    root = make_imagenet_tree(tmp_path)
    data = load_image_dataset("imagenet", root)
    assert len(data.train) == 6 and len(data.val) == 3
    val = data.val.fixed(0)
    assert val.shape == (3, 256, 256, 3) and val.dtype == np.float32
    with Image.open(data.val.files[0]) as im:
        ref = np.asarray(im.convert("RGB").resize((256, 256), Image.BILINEAR))
    assert np.allclose(val[0], (ref - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), atol=1e-4)
    a, b = data.train.sample(np.random.default_rng(1), 4), data.train.sample(np.random.default_rng(1), 4)
    assert a.shape == (4, 256, 256, 3) and np.array_equal(a, b)  # augmentation draws from the run's RNG
    assert not np.array_equal(a, data.train.sample(np.random.default_rng(2), 4))
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = random_resized_crop(40, 30, rng)
        assert 0 <= left < right <= 40 and 0 <= top < bottom <= 30
        assert 0.08 * 1200 * 0.9 <= (right - left) * (bottom - top) <= 1200
    (root / "val" / "n02" / "img0.png").write_bytes(b"not a png")
    with pytest.raises(ImageDataError, match=r"img0.png: unreadable image"):
        load_image_dataset("imagenet", root).val.fixed(0)
    with pytest.raises(ImageDataError, match="train: folder not found"):
        load_image_dataset("imagenet", tmp_path / "elsewhere")


@pytest.mark.parametrize("method", ["daps-na", "fsq"])
def test_methods_train_one_step_on_the_imagenet_fixture(tmp_path, method):
    """The ImageNet-256 path (1024 tokens of 8 x 8 x 3 patches, ResNet decoder 32 -> 256), narrowed
    for speed; the AR encoder's sampler is the same code as on MNIST / CIFAR (1024 sequential
    tokens would take most of this file's time budget)."""
    root = make_imagenet_tree(tmp_path / "data")
    cfg = preset_config("cpu", method, "imagenet")
    assert cfg.model.bits == pytest.approx(10240 if method != "fsq" else 1024 * math.log2(1000))
    m = cfg.model
    m.embed_dim, m.num_layers, m.na_num_layers, m.decoder_embed_dim, m.decoder_hidden = 8, 1, 1, 4, (8,)
    cfg = apply_overrides(cfg, steps=1, batch_size=1, val_images=2, eval_every=1, log_every=1)
    out = train_image_vae(cfg, tmp_path / "run", data_root=root, device="cpu", progress=False)
    assert out["skipped_steps"] == 0 and np.isfinite(out["val/log_p"]) and np.isfinite(out["val/psnr_db"])


class _TinyFidNet(torch.nn.Module):
    """Stands in for NVIDIA's TorchScript FID Inception: same call, uint8 (N, 3, H, W) ->
    (N, 8) features with return_features=True (fixed random projection of a 16 x 16 resize)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 16 * 16, 8)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(img.float() / 255.0, size=(16, 16), mode="bilinear", align_corners=False)
        f = self.proj(x.flatten(1))
        return f if return_features else f.softmax(-1)


@pytest.fixture(scope="module")
def fid_net_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "inception.pt"
    torch.jit.script(_TinyFidNet()).save(str(path))
    return path


def test_fid_is_zero_for_the_same_images_and_grows_with_the_difference(fid_net_file):
    from image_bench.fid import frechet_distance, load_inception, to_uint8_rgb

    net = load_inception(fid_net_file)
    assert net.num_features == 8
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 28, 28, generator=g)
    assert to_uint8_rgb(real).shape == (64, 3, 28, 28) and to_uint8_rgb(torch.rand(2, 5, 5, 3)).shape == (2, 3, 5, 5)
    same = frechet_distance(net, [(real[:32], real[:32]), (real[32:], real[32:])])
    near = frechet_distance(net, [(real, (real + 0.05 * torch.randn(real.shape, generator=g)).clamp(0, 1))])
    far = frechet_distance(net, [(real, torch.zeros_like(real))])
    assert abs(same) < 1e-4 and 0 < near < far


def test_eval_with_fid_weights_adds_fid_recon_and_bad_weights_fail_first(idx_root, fid_net_file, tmp_path):
    from typer.testing import CliRunner

    from image_bench.cli import app

    run = tmp_path / "run"
    train_image_vae(tiny("fsq"), run, data_root=idx_root, device="cpu", progress=False)
    runner = CliRunner()
    base = ["eval", "--ckpt", str(run / "checkpoint.pt"), "--data", str(idx_root), "--device", "cpu"]
    r = runner.invoke(app, base + ["--out", str(tmp_path / "e"), "--fid-weights", str(fid_net_file)])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert np.isfinite(metrics["fid_recon"]) and metrics["fid_recon"] > 0
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(3)}, bad)  # a pickle, not TorchScript
    for weights, message in ((bad, "not a TorchScript file"), (tmp_path / "missing.pt", "no such file")):
        with pytest.raises(Exception, match=message):
            from image_bench.evaluate import evaluate_checkpoint
            evaluate_checkpoint(run / "checkpoint.pt", tmp_path / "e2", data_root=idx_root, device="cpu", fid_weights=weights)
        assert not (tmp_path / "e2").exists()  # nothing written
