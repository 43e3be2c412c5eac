"""The baseline estimators (daps.relaxed, daps.vq, daps.objectives.*) on problems with a known answer."""
import math

import pytest
import torch
import torch.nn.functional as F

from daps.metrics import mean_and_standard_error
from daps.nn import TransformerConfig
from daps.objectives.ppo import PPO, PPOConfig
from daps.recognition import ARRecognition, NARecognition
from daps.relaxed import conditional_gumbels, gumbel_rao_st, gumbel_softmax_st, log_prob_with_kl, relaxed_codes
from daps.vq import VQRecognition

THETA = torch.tensor([1.0, -0.5, 0.3, -1.2])
COST = torch.tensor([2.0, -1.0, 0.5, 3.0])


def exact_gradient():
    """d/dtheta E_{z ~ softmax(theta)}[c_z] = p * (c - p.c)."""
    p = torch.softmax(THETA, 0)
    return p * (COST - (p * COST).sum())


def per_sample_grads(relax, n, seed=1):
    """Gradients (n, V) of f(y) = c.y for n independent relaxed samples at logits THETA."""
    logits = THETA.repeat(n, 1).requires_grad_()
    y, z = relax(logits, torch.Generator().manual_seed(seed))
    assert torch.allclose(y.detach(), F.one_hot(z, 4).float(), atol=1e-6)  # forward value: the hard sample
    (y * COST).sum().backward()
    return logits.grad


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.2])
def test_gumbel_rao_has_the_straight_through_mean_and_less_variance(tau):
    st = per_sample_grads(lambda l, g: gumbel_softmax_st(l, tau, g), 50_000)
    gr = per_sample_grads(lambda l, g: gumbel_rao_st(l, tau, 50, g), 5_000)
    se = (st.var(0) / len(st) + gr.var(0) / len(gr)).sqrt()
    assert ((gr.mean(0) - st.mean(0)).abs() < 4.5 * se + 1e-4).all()  # Rao-Blackwellisation keeps the mean
    assert gr.var(0).sum() < 0.5 * st.var(0).sum()  # ... and lowers the variance


def test_straight_through_gradient_approaches_the_exact_one_as_temperature_falls():
    exact = exact_gradient()
    errors = {}
    for tau in (1.0, 0.2):
        g = per_sample_grads(lambda l, gen: gumbel_softmax_st(l, tau, gen), 100_000)
        errors[tau] = (g.mean(0) - exact).norm().item()
        se = (g.var(0) / len(g)).sum().sqrt().item()
        if tau == 1.0:
            assert errors[tau] > 10 * se  # a real bias at tau = 1, not Monte-Carlo noise
    assert errors[0.2] < 0.15 * errors[1.0]
    assert errors[0.2] < 0.03


def test_conditional_gumbels_put_the_maximum_on_the_given_code():
    logp = F.log_softmax(torch.randn(6, 5), -1)
    z = torch.randint(0, 5, (6,))
    g = conditional_gumbels(logp, z, 200, torch.Generator().manual_seed(0))
    assert torch.equal((logp + g).argmax(-1), z.expand(200, 6))
    # the winner's perturbed value is a standard Gumbel: mean = Euler-Mascheroni constant
    top = (logp + g).max(-1).values
    assert abs(top.mean().item() - 0.5772) < 0.05


def tiny_recognition(kind):
    cfg = TransformerConfig(vocab_size=5, block_size=3, embed_dim=16, num_heads=2, num_layers=1, mlp_ratio=2)
    embed = torch.nn.Linear(2, 3 * 16)

    class Tokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = embed

        def forward(self, x):
            return self.lin(x).view(-1, 3, 16)

    torch.manual_seed(0)
    return ARRecognition(cfg, Tokens(), 3) if kind == "ar" else NARecognition(cfg, Tokens())


def test_ar_relaxed_sample_backpropagates_through_the_sampled_prefix():
    rec = tiny_recognition("ar")
    x = torch.randn(4, 2)
    step_logits = []

    def relax(logits, gen):
        logits.retain_grad()
        step_logits.append(logits)
        return gumbel_softmax_st(logits, 1.0, gen)

    y, z, kl = relaxed_codes(rec, x, 2, relax, torch.Generator().manual_seed(0))
    assert y.shape == (4, 2, 3, 5) and z.shape == (4, 2, 3) and kl.shape == (4, 2)
    (y[:, :, 2] * torch.randn(5)).sum().backward()  # a loss on the last token only
    assert step_logits[0].grad.abs().sum() > 0  # reaches the first token's logits through the prefix
    # the hard codes are samples of q: their teacher-forced log q matches
    log_q, kl_tf = log_prob_with_kl(rec, x, z)
    log_q_ref, kl_ref = rec.log_prob(x, z)
    assert torch.allclose(log_q, log_q_ref, atol=1e-5) and torch.allclose(kl_tf, kl_ref, atol=1e-5)
    assert torch.allclose(kl, kl_ref, atol=1e-5)


def test_na_relaxed_kl_is_the_analytic_kl_with_gradient():
    rec = tiny_recognition("na")
    x = torch.randn(3, 2)
    y, z, kl = relaxed_codes(rec, x, 4, lambda l, g: gumbel_softmax_st(l, 0.5, g))
    p = torch.softmax(rec.token_logits(x), -1)
    expected = (p * (p.log() + math.log(5))).sum((-1, -2))
    assert torch.allclose(kl[:, 0], expected, atol=1e-5) and kl.requires_grad


def test_vq_loss_pulls_codes_toward_their_encodings_with_weight_one_and_commits_with_c():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=64, block_size=4, embed_dim=16, num_heads=2, num_layers=1, mlp_ratio=2)

    class Tokens(torch.nn.Module):
        def forward(self, x):
            return x

    c = 0.25
    rec = VQRecognition(cfg, Tokens(), code_dim=8, commitment=c).train()
    x = torch.randn(32, 4, 16)
    z_e = rec.encode(x)
    z_e.retain_grad()
    _, idx, _ = rec.vq(z_e.detach())
    e0 = rec.vq.codebook.detach().clone()
    n = z_e.numel()
    # the loss's gradients: 2 (e - z_e) / n on the codebook (weight 1), 2 c (z_e - e) / n on z_e
    z_q, idx2, loss = rec.vq(z_e)
    loss = loss + (1 - c) * F.mse_loss(rec.vq.get_codes_from_indices(idx2.long()), z_e.detach())
    loss.backward()
    diff = (z_e - e0[idx]).detach()
    assert torch.allclose(z_e.grad, 2 * c * diff / n, atol=1e-6)
    expected_cb = torch.zeros_like(e0).index_add_(0, idx.flatten(), -2 * diff.reshape(-1, 8) / n)
    assert torch.allclose(rec.vq._codebook.embed.grad[0], expected_cb, atol=1e-6)

    # and training the codebook alone on quantize()'s loss is k-means: every used code moves toward
    # the mean of its encodings, the quantisation error falls, codes nobody chose stay where they are
    target = z_e.detach()
    opt = torch.optim.SGD([rec.vq._codebook.embed], lr=5.0)
    dist0 = (e0[idx] - target).square().sum(-1).mean()
    chosen = torch.zeros(64, dtype=torch.bool)
    for _ in range(40):
        opt.zero_grad()
        _, idx_now, loss = rec.quantize(x)
        chosen[idx_now.unique()] = True
        loss.backward()
        opt.step()
    cb = rec.vq.codebook.detach()
    _, idx_now, _ = rec.vq(target)
    assert (cb[idx_now] - target).square().sum(-1).mean() < 0.5 * dist0
    assert (~chosen).any() and torch.equal(cb[~chosen], e0[~chosen])


def test_vq_rejects_a_commitment_outside_0_1():
    cfg = TransformerConfig(vocab_size=4, block_size=2, embed_dim=8, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match="commitment"):
        VQRecognition(cfg, torch.nn.Identity(), 4, commitment=1.5)


def test_ppo_samples_from_the_previous_steps_encoder_and_its_first_step_is_reinforce():
    rec = tiny_recognition("ar")

    class Gen(torch.nn.Module):
        def forward(self, z):
            return z.float().sum(-1, keepdim=True)

    class Lik(torch.nn.Module):
        def log_prob(self, x, params):
            return -(params[..., 0] - 4.0).square()

        def mean(self, params):
            return params

    from daps.generative import DiscreteVAE

    model = DiscreteVAE(rec, Gen(), Lik())
    obj = PPO(PPOConfig(num_samples=4, init_kl_coef=0.0, normalize_advantage=False), rec)
    x = torch.randn(6, 2)
    obj.cfg.beta = type(obj.cfg.beta)("constant", 1e-9, 1e-9)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    loss, _, metrics = obj.loss(model, x, 0, 10, gen)
    assert metrics["approx_kl_old_new"] == pytest.approx(0.0, abs=1e-6)  # behaviour == current at step 0
    grads = torch.autograd.grad(loss, list(rec.parameters()), allow_unused=True)
    # REINFORCE with the K-sample mean baseline on the same samples
    z, _ = rec.sample(x, 4, torch.Generator().manual_seed(3))
    r = -(z.float().sum(-1) - 4.0).square()
    log_q, _ = rec.log_prob(x, z)
    ref = -((r - r.mean(1, keepdim=True)) * log_q).mean()
    ref_grads = torch.autograd.grad(ref, list(rec.parameters()), allow_unused=True)
    for g, h in zip(grads, ref_grads):
        if h is not None:
            assert torch.allclose(g, h, atol=1e-5)
    # after an update the behaviour encoder is the pre-update one
    before = {k: v.clone() for k, v in rec.state_dict().items()}
    with torch.no_grad():
        for p in rec.parameters():
            p.add_(0.1)
    assert all(torch.equal(obj.behaviour.state_dict()[k], v) for k, v in before.items())


def test_mean_and_standard_error():
    assert mean_and_standard_error([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0 / math.sqrt(3)))
    assert mean_and_standard_error([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_and_standard_error([])
