"""The DAPS core on problems whose answer is known."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from daps.generative import DiscreteVAE, GaussianLikelihood, TransformerGenerator
from daps.metrics import codebook_usage, effective_sample_size, segment_l2
from daps.nn import ConvResampler, TransformerConfig
from daps.objectives.daps import DAPS, DAPSConfig, daps_log_weights
from daps.recognition import ARRecognition, NARecognition
from daps.schedules import BetaSchedule
from daps.trainer import adaptive_grad_clip_


class IdEmbed(nn.Module):
    """x: (B,) datapoint ids -> (B, N, H) learned input tokens."""

    def __init__(self, n_data, n_tokens, dim):
        super().__init__()
        self.table = nn.Embedding(n_data, n_tokens * dim)
        self.n, self.d = n_tokens, dim

    def forward(self, x):
        return self.table(x).view(-1, self.n, self.d)


class TableDecoder(nn.Module):
    """Fixed p(x|z) over n_data ids: log-probabilities from a table indexed by the code sequence."""

    def __init__(self, log_px_given_z):  # (V**T, n_data)
        super().__init__()
        self.register_buffer("table", log_px_given_z)

    def forward(self, z):  # (B, K, T) -> (B, K, n_data)
        v = int(round(self.table.shape[0] ** (1 / z.shape[-1])))
        idx = (z * (v ** torch.arange(z.shape[-1] - 1, -1, -1))).sum(-1)
        return self.table[idx]


class CategoricalLikelihood(nn.Module):
    num_params = 1

    def log_prob(self, x, params):  # x (B,), params (B, K, n_data) log p(x|z)
        return params.gather(2, x.view(-1, 1, 1).expand(-1, params.shape[1], 1)).squeeze(-1)


def all_sequences(v, t):
    return torch.tensor(list(itertools.product(range(v), repeat=t)))


def exact_kl_to_posterior(rec, table, n_data, v, t):
    """KL(q_theta(.|x) || p(z|x)) averaged over x, by enumerating all V^T sequences."""
    seqs = all_sequences(v, t)
    x = torch.arange(n_data)
    with torch.no_grad():
        log_q, _ = rec.log_prob(x, seqs.unsqueeze(0).expand(n_data, -1, -1).contiguous())  # (n_data, V^T)
    log_post = F.log_softmax(table.T, dim=1)  # uniform prior: p(z|x) ∝ p(x|z)
    return (log_q.exp() * (log_q - log_post)).sum(1).mean().item(), log_q.exp().sum(1)


def tiny_ar(v=4, t=2, n_data=3, h=16):
    cfg = TransformerConfig(vocab_size=v, block_size=t, embed_dim=h, num_heads=2, num_layers=1, mlp_ratio=2)
    return ARRecognition(cfg, IdEmbed(n_data, 2, h), num_input_tokens=2)


def test_daps_moves_q_towards_exact_posterior():
    torch.manual_seed(0)
    v, t, n_data = 4, 2, 3
    table = F.log_softmax(3.0 * torch.randn(v**t, n_data), dim=1)  # fixed p(x|z)
    rec = tiny_ar(v, t, n_data)
    vae = DiscreteVAE(rec, TableDecoder(table), CategoricalLikelihood())
    obj = DAPS(DAPSConfig(num_samples=8, ess_target=0.5, init_eta=1.0, beta=BetaSchedule("constant", 1.0, 1.0)))
    kl0, mass = exact_kl_to_posterior(rec, table, n_data, v, t)
    assert torch.allclose(mass, torch.ones(n_data), atol=1e-5)  # q sums to one over all sequences
    opt = torch.optim.Adam(rec.parameters(), lr=3e-3)
    eta_opt = torch.optim.Adam(obj.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(n_data).repeat(8)
    for step in range(300):
        loss, loss_eta, m = obj.loss(vae, x, step, 300, gen)
        opt.zero_grad(); eta_opt.zero_grad()
        (loss + loss_eta).backward()
        opt.step(); eta_opt.step()
    kl1, _ = exact_kl_to_posterior(rec, table, n_data, v, t)
    assert kl1 < 0.25 * kl0, (kl0, kl1)
    # at q = posterior (beta = 1) all weights are equal, so ESS/K sits above its target and eta
    # shrinks: the trust region widens once the target is reached
    assert m["ess_frac"] > 0.5 and m["eta"] < 1.0


def test_ess_matches_hand_computation():
    w = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [4.0, 1.0, 1.0, 2.0]])
    hand = torch.tensor([2.0, 4.0, 64.0 / 22.0])  # (sum w)^2 / sum w^2
    assert torch.allclose(effective_sample_size(torch.log(w)), hand)
    assert torch.allclose(effective_sample_size(torch.log(w) + 7.0), hand)  # scale invariant


def test_daps_weights_follow_eq5():
    adv, log_q = torch.randn(3, 8), -torch.rand(3, 8) * 10
    eta, beta = 2.5, 0.7
    log_qstar = (adv + eta * log_q) / (eta + beta)
    ref = torch.log_softmax(log_qstar - log_q, dim=1)
    assert torch.allclose(daps_log_weights(adv, log_q, eta, beta), ref, atol=1e-6)


def test_no_gradient_through_sampling_path():
    torch.manual_seed(0)
    table = F.log_softmax(torch.randn(16, 3), dim=1)
    rec = tiny_ar()
    vae = DiscreteVAE(rec, TableDecoder(table), CategoricalLikelihood())
    z, log_q = rec.sample(torch.arange(3), 5)
    assert z.dtype == torch.long and not log_q.requires_grad
    obj = DAPS(DAPSConfig(num_samples=4))
    loss, loss_eta, _ = obj.loss(vae, torch.arange(3), 0, 10)
    grads = torch.autograd.grad(loss_eta, list(rec.parameters()) + [obj.log_eta], allow_unused=True)
    assert all(g is None for g in grads[:-1]) and grads[-1] is not None  # eta loss reaches only eta
    assert torch.autograd.grad(loss, obj.log_eta, allow_unused=True)[0] is None


def test_decoder_loss_gives_no_gradient_to_encoder():
    cfg = TransformerConfig(vocab_size=8, block_size=4, embed_dim=16, num_heads=2, num_layers=1)
    rec = ARRecognition(cfg, ConvResampler(2, 3, 4, 16), num_input_tokens=4)
    gen = TransformerGenerator(cfg, nn.Sequential(ConvResampler(4, 16, 2, 16), nn.Linear(16, 3)))
    vae = DiscreteVAE(rec, gen, GaussianLikelihood())
    x = torch.randn(5, 2, 3)
    z, _ = rec.sample(x, 3)
    reward = vae.log_likelihood(x, z)
    assert reward.shape == (5, 3)
    grads = torch.autograd.grad(-reward.mean(), list(rec.parameters()), allow_unused=True)
    assert all(g is None for g in grads)


@pytest.mark.parametrize("vocab", [3, 50])
def test_kv_cache_sampling_equals_recomputation(vocab):
    torch.manual_seed(1)
    cfg = TransformerConfig(vocab_size=vocab, block_size=12, embed_dim=32, num_heads=4, num_layers=2)
    rec = ARRecognition(cfg, ConvResampler(6, 5, 12, 32), num_input_tokens=12)
    x = torch.randn(4, 6, 5)
    z1, lq1 = rec.sample(x, 3, torch.Generator().manual_seed(7), use_cache=True)
    z2, lq2 = rec.sample(x, 3, torch.Generator().manual_seed(7), use_cache=False)
    assert torch.equal(z1, z2)
    assert torch.allclose(lq1, lq2, atol=1e-4)
    assert (z1 == 0).any()  # code 0 occurs and is an ordinary code
    lq_tf, kl = rec.log_prob(x, z1)  # teacher forcing agrees with the sampler
    assert torch.allclose(lq_tf, lq1, atol=1e-4)
    assert (kl >= -1e-5).all()


def test_na_recognition_sample_and_log_prob_agree():
    cfg = TransformerConfig(vocab_size=10, block_size=8, embed_dim=16, num_heads=2, num_layers=1)
    rec = NARecognition(cfg, ConvResampler(4, 3, 8, 16))
    x = torch.randn(2, 4, 3)
    z, lq = rec.sample(x, 5, torch.Generator().manual_seed(0))
    assert z.shape == (2, 5, 8)
    assert torch.allclose(rec.log_prob(x, z)[0], lq, atol=1e-5)


def test_log_prob_rejects_bad_codes():
    rec = tiny_ar()
    with pytest.raises(ValueError, match="codes must lie"):
        rec.log_prob(torch.arange(2), torch.full((2, 1, 2), 4))
    with pytest.raises(ValueError, match="z must be"):
        rec.log_prob(torch.arange(2), torch.zeros(2, 3, dtype=torch.long))


def test_beta_schedule_exp_decay():
    s = BetaSchedule("exp", 6.0, 0.01)
    assert s(0, 100) == 6.0 and math.isclose(s(100, 100), 0.01) and math.isclose(s(200, 100), 0.01)
    assert math.isclose(s(50, 100), math.sqrt(6.0 * 0.01))
    assert BetaSchedule("constant", 2.0, 0.01)(50, 100) == 2.0


def test_metrics():
    used, ppl = codebook_usage(torch.tensor([0, 1, 1, 3]), 4)
    assert used == 0.75 and math.isclose(ppl, math.exp(-(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5))))
    assert torch.allclose(segment_l2(torch.ones(2, 3, 4), torch.zeros(2, 3, 4)), torch.full((2,), math.sqrt(12)))


def test_adaptive_grad_clip_caps_unit_norms():
    p = nn.Parameter(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))
    p.grad = torch.tensor([[30.0, 40.0], [0.01, 0.0]])
    adaptive_grad_clip_([p], clip=0.1)
    assert torch.allclose(p.grad[0].norm(), torch.tensor(0.5))  # capped at 0.1 * 5
    assert torch.allclose(p.grad[1], torch.tensor([0.01, 0.0]))  # below its cap: unchanged


def test_fused_head_log_prob_matches_plain_log_softmax(monkeypatch):
    from daps import recognition

    monkeypatch.setattr(recognition._HeadLogProb, "CHUNK", 7)  # several chunks and a ragged tail
    g = torch.Generator().manual_seed(0)
    h = torch.randn(30, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(11, 6, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(11, dtype=torch.float64, generator=g, requires_grad=True)
    z = torch.randint(0, 11, (30,), generator=g)
    log_q, kl = recognition._HeadLogProb.apply(h, w, b, z)
    logits = h @ w.T + b
    ref = torch.log_softmax(logits, -1).gather(1, z[:, None]).squeeze(1)
    assert torch.allclose(log_q, ref) and torch.allclose(kl, recognition.kl_to_uniform(logits.detach()))
    go = torch.randn(30, dtype=torch.float64, generator=g)
    grads = torch.autograd.grad(log_q, (h, w, b), go)
    ref_grads = torch.autograd.grad(ref, (h, w, b), go)
    for a, r in zip(grads, ref_grads):
        assert torch.allclose(a, r)


def test_greedy_sampling_takes_the_most_likely_code_each_step():
    torch.manual_seed(2)
    cfg = TransformerConfig(vocab_size=9, block_size=6, embed_dim=16, num_heads=2, num_layers=1)
    rec = ARRecognition(cfg, ConvResampler(3, 4, 6, 16), num_input_tokens=6)
    x = torch.randn(3, 3, 4)
    z, lq = rec.sample(x, 2, torch.Generator().manual_seed(0), greedy=True)
    assert torch.equal(z[:, 0], z[:, 1])  # no randomness
    logits = rec.logits(x, z)
    assert torch.equal(logits.argmax(-1), z)  # each code is the argmax given its own prefix
    assert torch.allclose(rec.log_prob(x, z)[0], lq, atol=1e-4)


def test_adaptive_grad_clip_treats_a_vector_as_one_unit():
    p = nn.Parameter(torch.tensor([3.0, 4.0]))  # a bias: one unit of norm 5, as optax does
    p.grad = torch.tensor([0.3, 0.4])  # element-wise caps (0.3, 0.4) would not clip; the unit cap 0.05 does
    adaptive_grad_clip_([p], clip=0.01)
    assert torch.allclose(p.grad, torch.tensor([0.03, 0.04]))


def test_inverse_cdf_sampling_draws_the_categorical():
    from daps.recognition import inverse_cdf_sample

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    logp = probs.log().repeat_interleave(20000, 0)
    z = inverse_cdf_sample(logp, torch.Generator().manual_seed(0)).view(2, -1)
    freq = torch.stack([torch.bincount(r, minlength=5) for r in z]).float() / z.shape[1]
    assert torch.allclose(freq, probs, atol=0.01)  # 4 standard errors at n = 20000
    assert (z[1] == 4).all()


def test_inverse_cdf_sampling_never_draws_a_zero_probability_code(monkeypatch):
    from daps.recognition import inverse_cdf_sample

    logp = torch.tensor([[0.0, 0.5, 0.5, 0.0]]).log()
    for u in (0.0, 1.0 - 1e-7):  # the ends of torch.rand's range
        monkeypatch.setattr(torch, "rand", lambda *a, u=u, **k: torch.full((1, 1), u))
        assert inverse_cdf_sample(logp).item() in (1, 2)


def small_vae(v=8, t=4, h=16, c=3, lattice_levels=None):
    cfg = TransformerConfig(vocab_size=v, block_size=t, embed_dim=h, num_heads=2, num_layers=1)
    rec = ARRecognition(cfg, ConvResampler(t // 2, c, t, h), num_input_tokens=t, lattice_levels=lattice_levels)
    gen = TransformerGenerator(cfg, nn.Sequential(ConvResampler(t, h, t // 2, h), nn.Linear(h, c)))
    return DiscreteVAE(rec, gen, GaussianLikelihood())


def test_decoder_gradient_is_only_the_decoder_loss():
    """The encoder weights hold sg(R): the DAPS loss's gradient in phi equals that of -mean R alone."""
    torch.manual_seed(0)
    vae, x = small_vae(), torch.randn(6, 2, 3)
    obj = DAPS(DAPSConfig(num_samples=4, init_eta=1.0, beta=BetaSchedule("constant", 0.5, 0.5)))
    loss, _, _ = obj.loss(vae, x, 0, 10, torch.Generator().manual_seed(3))
    z, _ = vae.recognition.sample(x, 4, torch.Generator().manual_seed(3))
    phi = list(vae.generator.parameters())
    got = torch.autograd.grad(loss, phi)
    want = torch.autograd.grad(-vae.log_likelihood(x, z).mean(), phi)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-6)


def test_eta_loss_is_squared_distance_of_mean_ess_to_rho_k():
    torch.manual_seed(0)
    vae, x = small_vae(), torch.randn(5, 2, 3)
    K, rho, eta, beta = 4, 0.25, 3.0, 0.5
    obj = DAPS(DAPSConfig(num_samples=K, ess_target=rho, init_eta=eta, beta=BetaSchedule("constant", beta, beta)))
    _, loss_eta, m = obj.loss(vae, x, 0, 10, torch.Generator().manual_seed(1))
    z, _ = vae.recognition.sample(x, K, torch.Generator().manual_seed(1))
    with torch.no_grad():
        r, (lq, _) = vae.log_likelihood(x, z), vae.recognition.log_prob(x, z)
        ess = effective_sample_size(daps_log_weights(r - r.logsumexp(1, keepdim=True), lq, eta, beta))
    assert loss_eta.item() == pytest.approx((ess.mean().item() - rho * K) ** 2, rel=1e-4)
    assert m["ess_frac"] == pytest.approx(ess.mean().item() / K, rel=1e-5)


def test_init_logit_std_sets_the_initial_logit_scale():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=256, block_size=8, embed_dim=64, num_heads=4, num_layers=1)
    x = torch.randn(32, 4, 5)
    stds = []
    for s in (0.0, 4.0):
        rec = ARRecognition(cfg, ConvResampler(4, 5, 8, 64), num_input_tokens=8, init_logit_std=s)
        z, _ = rec.sample(x, 1, torch.Generator().manual_seed(0))
        stds.append(rec.logits(x, z).std().item())
    assert stds[0] < 1.0 and 3.0 < stds[1] < 5.0
    assert torch.allclose(rec.head.weight.norm(dim=1), torch.full((256,), 4.0))


def test_fsq_autoencoder_trains_through_the_rounding():
    from daps.fsq import FSQCodeEmbedding, FSQRecognition
    from daps.objectives.fsq import FSQObjective

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=64, block_size=4, embed_dim=16, num_heads=2, num_layers=1)
    rec = FSQRecognition(cfg, ConvResampler(2, 3, 4, 16), levels=(4, 4, 4))
    gen = TransformerGenerator(cfg, nn.Sequential(ConvResampler(4, 16, 2, 16), nn.Linear(16, 3)), FSQCodeEmbedding((4, 4, 4), 16))
    vae, x = DiscreteVAE(rec, gen, GaussianLikelihood()), torch.randn(8, 2, 3)
    loss, _, m = FSQObjective().loss(vae, x, 0, 1)
    loss.backward()
    assert rec.proj.weight.grad.abs().sum() > 0  # straight through the rounding to the encoder
    z, log_q = rec.sample(x, 3)
    assert z.shape == (8, 3, 4) and torch.equal(z[:, 0], z[:, 2]) and (log_q == 0).all()
    # the decoder's embedding of an index is the embedding of its grid point
    codes, idx = rec.quantize(x)
    assert torch.allclose(gen.embed(idx), gen.embed.from_codes(codes), atol=1e-6)
    lq, kl = rec.log_prob(x, z)
    assert (lq == 0).all() and torch.allclose(kl, torch.full_like(kl, 4 * math.log(64)))
    assert m["kl"] == pytest.approx(4 * math.log(64), rel=1e-6)
    with pytest.raises(ValueError, match="multiply to the vocab size"):
        FSQRecognition(cfg, ConvResampler(2, 3, 4, 16), levels=(4, 4))


def test_lattice_head_is_a_distance_to_grid_softmax():
    """logits_c + const(h) = -sum_i kappa_i (u_i - g_ci)^2 / delta_i^2 with u = A h + a."""
    from daps.recognition import LatticeHead

    torch.manual_seed(0)
    head = LatticeHead(16, (8, 4, 5), init_sharpness=3.0)
    head.reset_parameters()
    h = torch.randn(10, 16)
    u = head.proj(h)  # (10, 3)
    delta = torch.tensor([0.25, 0.5, 0.5])  # FSQ grid spacing of levels 8, 4 and 5
    dist = -(3.0 * (u[:, None, :] - head.grid[None]).square() / delta.square()).sum(-1)  # (10, V)
    logp = torch.log_softmax(head(h), -1)
    assert head.grid.shape == (160, 3)
    assert torch.allclose(logp, torch.log_softmax(dist, -1), atol=1e-4)
    # the most likely code is the grid point nearest to u (per-dimension rounding)
    nearest = (u[:, None, :] - head.grid[None]).div(delta).square().sum(-1).argmin(-1)
    assert torch.equal(logp.argmax(-1), nearest)


def test_tanh_bounded_lattice_warm_start_is_vector_quantize_fsq():
    """bound="tanh": the straight-through codes and indices are vector_quantize_pytorch.FSQ's own
    for the same u, the categorical's mode is that code, and logits are the distance-to-grid
    softmax of the bounded u; the linear .weight/.bias (the AR kernel's) are refused."""
    from vector_quantize_pytorch import FSQ

    from daps.recognition import LatticeHead, fsq_bound

    levels = (8, 4, 5)
    head = LatticeHead(3, levels, init_sharpness=3.0, bound="tanh")
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(3))
        head.proj.bias.zero_()
    u = 2 * torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    codes, idx = FSQ(list(levels))(u.unsqueeze(0))
    st = head.straight_through(u)
    assert torch.equal(st.idx, idx[0].long()) and torch.allclose(st.codes, codes[0], atol=1e-6)
    assert torch.equal(head(u).argmax(-1), st.idx) and float(st.box.abs().max()) == 0.0
    b = fsq_bound(u, levels)
    assert float(b.min()) >= -1.0 - 1e-3 and float(b.max()) <= 1.0 + 1e-3
    delta = torch.tensor([0.25, 0.5, 0.5])
    dist = -(3.0 * (b[:, None, :] - head.grid[None]).square() / delta.square()).sum(-1)
    assert torch.allclose(torch.log_softmax(head(u), -1), torch.log_softmax(dist, -1), atol=1e-4)
    with pytest.raises(TypeError, match="not linear"):
        head.weight
    with pytest.raises(ValueError, match="bound"):
        LatticeHead(3, levels, bound="clamp")


def test_aligned_input_sampler_matches_teacher_forcing():
    torch.manual_seed(3)
    cfg = TransformerConfig(vocab_size=64, block_size=8, embed_dim=16, num_heads=2, num_layers=2)
    rec = ARRecognition(cfg, ConvResampler(4, 3, 8, 16), 8, lattice_levels=(4, 4, 4), aligned_input=True)
    x = torch.randn(5, 4, 3)
    z, lq = rec.sample(x, 3, torch.Generator().manual_seed(0))
    z2, lq2 = rec.sample(x, 3, torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(z, z2) and torch.allclose(lq, lq2, atol=1e-4)
    assert torch.allclose(rec.log_prob(x, z)[0], lq, atol=1e-4)
    x2 = x.clone()
    x2[:, 2:] += 5.0  # change only the second half of each input: early tokens see it only through attention
    assert not torch.allclose(rec.logits(x, z)[:, :, -1], rec.logits(x2, z)[:, :, -1])
    with pytest.raises(ValueError, match="one input token per latent token"):
        ARRecognition(cfg, ConvResampler(4, 3, 8, 16), 4, aligned_input=True)


def test_straight_through_warm_start_is_fsq_on_the_lattice_then_daps():
    """The first st_warmup_steps train the lattice encoder as FSQ (mode codes, straight-through
    gradients, no eta update); DAPS proper (K sampled codes) takes over after them."""
    from daps.fsq import FSQCodeEmbedding
    from daps.recognition import LatticeHead

    torch.manual_seed(0)
    levels = (8, 4, 5)  # odd and even levels
    cfg = TransformerConfig(vocab_size=160, block_size=4, embed_dim=16, num_heads=2, num_layers=1)
    rec = NARecognition(cfg, ConvResampler(2, 3, 4, 16), lattice_levels=levels)
    gen = TransformerGenerator(cfg, nn.Sequential(ConvResampler(4, 16, 2, 16), nn.Linear(16, 3)), FSQCodeEmbedding(levels, 16))
    vae, x = DiscreteVAE(rec, gen, GaussianLikelihood()), 3 * torch.randn(8, 2, 3)
    codes, idx, box, log_q, kl = rec.straight_through(x)
    assert codes.shape == (8, 4, 3) and idx.shape == (8, 4) and box.shape == (8, 4)
    # the per-dimension log q and KL equal the V-way categorical's (sharpened, so q is not uniform)
    with torch.no_grad():
        rec.head.log_sharpness.add_(torch.tensor([0.5, -0.3, 1.0]))
    _, idx2, _, log_q, kl = rec.straight_through(x)
    full_log_q, full_kl = rec.log_prob(x, idx2.unsqueeze(1))
    assert torch.allclose(log_q.sum(1), full_log_q[:, 0], atol=1e-4) and torch.allclose(kl.sum(1), full_kl[:, 0], atol=1e-4)
    assert kl.min() > 0 and log_q.max() < 0
    assert torch.allclose(rec.head.grid[idx], codes)  # the grid point of the index
    assert torch.equal(idx, rec.token_logits(x).argmax(-1))  # the lattice categorical's mode
    obj = DAPS(DAPSConfig(num_samples=4, init_eta=5.0, st_warmup_steps=2))
    loss, loss_eta, m = obj.loss(vae, x, 1, 10)
    (loss + loss_eta).backward()
    assert m["st_warmup"] == 1.0 and math.isnan(m["ess_frac"]) and obj.log_eta.grad is None
    assert rec.head.proj.weight.grad.abs().sum() > 0  # straight through the rounding
    assert rec.head.log_sharpness.grad is None  # kappa is DAPS's to learn
    # the box penalty: zero inside the grid's range widened by half a spacing, quadratic outside
    delta, lo, hi = torch.tensor([0.25, 0.5, 0.5]), torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([0.75, 0.5, 1.0])
    u = rec.head.proj(rec.proj(rec.encoder(rec.input_embed(x) + rec.pos)))
    excess = torch.maximum(lo - delta / 2 - u, u - hi - delta / 2).clamp(min=0)
    assert torch.allclose(box, (excess / delta).square().sum(-1), atol=1e-5)
    head = LatticeHead(16, levels)
    with torch.no_grad():
        head.proj.weight.zero_()
        for u_fixed, expected_box in (([-1.2, 0.6, 1.1], 0.09), ([0.8, -1.3, 1.3], 0.02), ([0.87, 0.74, -1.24], 0.0)):
            head.proj.bias.copy_(torch.tensor(u_fixed))
            assert head.straight_through(torch.zeros(1, 16))[2].item() == pytest.approx(expected_box, abs=1e-6)
    expected = -vae.log_likelihood(x, idx.unsqueeze(1)).mean() + box.sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    vae.zero_grad()
    loss, loss_eta, m = obj.loss(vae, x, 2, 10)
    (loss + loss_eta).backward()
    assert m["st_warmup"] == 0.0 and obj.log_eta.grad is not None and rec.head.log_sharpness.grad is not None
    plain = NARecognition(cfg, ConvResampler(2, 3, 4, 16))
    with pytest.raises(TypeError, match="lattice"):
        plain.straight_through(x)


def test_number_list_parses_commas_and_names_the_option():
    from daps.args import number_list

    assert number_list("0, 8,16,", "--offsets") == [0, 8, 16] and number_list("", "--offsets") == []
    assert number_list("0.8,1.25", "speeds", float) == [0.8, 1.25]
    with pytest.raises(ValueError, match=r"--offsets must be integers separated by commas, got '0,x'"):
        number_list("0,x", "--offsets")
    with pytest.raises(ValueError, match="--offsets must be integers"):
        number_list("0.5", "--offsets")  # a fraction is not a frame


def test_parse_settings_reads_literals_and_names_a_malformed_item():
    from daps.args import parse_settings

    assert parse_settings(["gamma=0.995", "target_kl=None", " net_arch = [64, 32]"]) == {
        "gamma": 0.995, "target_kl": None, "net_arch": [64, 32]}
    assert parse_settings([]) == {}
    for bad, why in ((["gamma"], "expected KEY=VALUE"), (["=1"], "expected KEY=VALUE"), (["gamma=fast"], "not a Python literal")):
        with pytest.raises(ValueError, match=f"{bad[0]!r}: .*{why}"):
            parse_settings(bad)


def test_apply_overrides_sets_given_fields_of_every_preset_and_refuses_bad_ones():
    from daps.args import apply_overrides
    from highlevel.train import preset_config as highlevel_preset, with_overrides
    from image_bench.config import preset_config as image_preset
    from motion_vae.config import preset_config as motion_preset

    hl = highlevel_preset("cpu")
    assert with_overrides(hl, steps=7, mirror=True).steps == 7 and hl.steps != 7  # a copy: the preset is untouched
    with pytest.raises(ValueError, match="steps must be positive, got 0"):
        with_overrides(hl, steps=0)
    for cfg in (image_preset("cpu"), motion_preset("cpu"), highlevel_preset("cpu")):
        steps = cfg.steps
        assert apply_overrides(cfg, steps=None, seed=0, batch_size=3) is cfg  # in place, None leaves a field
        assert (cfg.steps, cfg.seed, cfg.batch_size) == (steps, 0, 3)
        with pytest.raises(ValueError, match="unknown config field 'stepz'"):
            apply_overrides(cfg, stepz=5)
        with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
            apply_overrides(cfg, batch_size=0)
    assert motion_preset("cpu").mirror is False and apply_overrides(motion_preset("cpu"), mirror=False).mirror is False


@pytest.mark.parametrize("lattice_levels", [None, (4, 4)])
def test_bf16_precision_keeps_rewards_and_log_q_float32_and_close_to_fp32(lattice_levels):
    """Under `precision_context("cpu", "bf16")` the products run in bfloat16, but log p(x|z), log q(z|x)
    and the sampler's log q come out float32 and within bfloat16 rounding of the float32 values,
    for a free output layer and for the lattice head (whose weight is itself a matrix product)."""
    from daps.trainer import precision_context

    torch.manual_seed(0)
    vae, x = small_vae(v=16, t=4, h=32, lattice_levels=lattice_levels), torch.randn(6, 2, 3)
    z, _ = vae.recognition.sample(x, 4, torch.Generator().manual_seed(0))
    want_r, (want_lq, _) = vae.log_likelihood(x, z), vae.recognition.log_prob(x, z)
    with precision_context("cpu", "bf16"):
        assert vae.recognition.tok_embed.weight.new_ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
        r, (lq, _) = vae.log_likelihood(x, z), vae.recognition.log_prob(x, z)
        _, sample_lq = vae.recognition.sample(x, 4, torch.Generator().manual_seed(0))
    assert r.dtype == lq.dtype == sample_lq.dtype == torch.float32
    assert torch.allclose(r, want_r, rtol=2e-2, atol=0.2)
    assert torch.allclose(lq, want_lq, atol=0.1)
    assert not torch.equal(lq, want_lq)  # the products did run in bfloat16


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_cpu_attention_matches_float32_sdpa(causal):
    from daps.nn import Attention
    from daps.trainer import precision_context

    torch.manual_seed(0)
    attn, x = Attention(32, 4), torch.randn(5, 7, 32)
    want = attn(x, causal=causal)
    with precision_context("cpu", "bf16"):
        got = attn(x, causal=causal)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want, atol=3e-2)
    if causal:  # the first query sees only itself: changing the later tokens leaves its output as it is
        x2 = x.clone()
        x2[:, 1:] += 1.0
        with precision_context("cpu", "bf16"):
            assert torch.equal(attn(x2, causal=True)[:, 0], got[:, 0])


def test_optim_config_refuses_an_unknown_precision():
    from daps.trainer import OptimConfig

    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        OptimConfig(precision="fp16")


def test_precision_list_parses_names_and_names_the_option():
    from daps.args import precision_list

    assert precision_list("fp32, bf16") == ["fp32", "bf16"]
    for bad in ("", "fp16", "fp32,tf32"):
        with pytest.raises(ValueError, match="--precision: choose from fp32, bf16"):
            precision_list(bad)


def test_bad_parameter_turns_a_config_error_into_a_usage_error_naming_the_option():
    import typer

    from daps.args import bad_parameter

    with pytest.raises(typer.BadParameter) as info:
        with bad_parameter("--arch"):
            raise ValueError("arch must be transformer or conv, got 'mlp'")
    assert info.value.param_hint == "--arch" and "got 'mlp'" in info.value.format_message()
    with bad_parameter("--arch"):  # no error: nothing happens
        pass
    with pytest.raises(KeyError):  # other errors pass through untouched
        with bad_parameter("--arch"):
            raise KeyError("x")


def test_probs_is_exp_of_normalised_log_probs_also_far_below_the_normal_float_range():
    """`daps.nn.probs` (the softmax kernel, fast where torch.exp's results underflow) equals exp."""
    from daps.nn import probs

    logp = torch.log_softmax(torch.randn(64, 1024, generator=torch.Generator().manual_seed(0)) * 40, dim=-1)
    assert (logp < -87.3).float().mean() > 0.3  # most codes where exp leaves float32's normal range
    p = probs(logp)
    assert p.shape == logp.shape and torch.allclose(p, logp.exp(), rtol=1e-5, atol=1e-30)
    assert torch.allclose(p.sum(-1), torch.ones(64))
