import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from test_training import SRC, STEP_CFG, TGT, step_model
from tiny_training import tiny_config

from nmt.data.batching import collate
from nmt.data.tokenizer import PAD
from nmt.errors import ConfigError
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import load_checkpoint
from nmt.training.rdrop import stacked_twice, symmetric_kl
from nmt.training.step import token_objective
from nmt.training.trainer import train


def test_symmetric_kl_is_the_mean_of_both_divergences_over_the_kept_positions():
    torch.manual_seed(0)
    logits = torch.randn(2 * 5, 7, dtype=torch.float64, requires_grad=True)  # 5 positions, 2 copies
    keep = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    first, second = logits.detach().chunk(2)
    log_p, log_q = F.log_softmax(first, 1), F.log_softmax(second, 1)
    # F.kl_div(input=log q, target=log p, log_target) is KL(p || q), per class
    p_q = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(1)
    q_p = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(1)
    expected = ((p_q + q_p) / 2 * keep).sum()
    ours = symmetric_kl(logits, keep)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    ours.backward()
    assert torch.all(logits.grad[2] == 0) and torch.all(logits.grad[5 + 2] == 0)  # the dropped position
    assert logits.grad[0].abs().sum() > 0


@pytest.mark.parametrize("positions", [5, 600])  # 600: three row slices on a CPU
def test_symmetric_kl_gradient_matches_autograd_of_the_definition(positions):
    torch.manual_seed(1)
    logits = (3 * torch.randn(2 * positions, 9, dtype=torch.float64)).requires_grad_()
    keep = (torch.rand(positions) > 0.2).double()
    reference = logits.detach().clone().requires_grad_()
    log_p, log_q = F.log_softmax(reference[:positions], 1), F.log_softmax(reference[positions:], 1)
    expected = (((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(1) * keep).sum() / 2
    (3.0 * expected).backward()
    ours = symmetric_kl(logits, keep)
    (3.0 * ours).backward()
    assert ours.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(logits.grad, reference.grad, atol=1e-6)


def test_symmetric_kl_refuses_logits_that_are_not_two_copies():
    with pytest.raises(ValueError, match="2N"):
        symmetric_kl(torch.randn(5, 4), torch.ones(3))


def test_symmetric_kl_of_two_equal_copies_is_zero():
    logits = torch.randn(3, 11).repeat(2, 1).bfloat16()  # (6, 11): both copies the same
    divergence = symmetric_kl(logits, torch.ones(3))
    assert divergence.dtype == torch.float32 and divergence.item() == pytest.approx(0.0, abs=1e-6)


def test_a_batch_stacked_twice_holds_each_example_at_b_and_b_plus_batch_size():
    batch = collate([[5, 6, 7], [5]], [[8, 9], [8, 9, 10, 11]], indices=[3, 4])
    twice = stacked_twice(batch)
    assert twice.src.shape == (4, batch.src.shape[1]) and twice.tgt_out.shape == (4, batch.tgt_out.shape[1])
    assert torch.equal(twice.src[2:], batch.src) and torch.equal(twice.tgt_in[:2], batch.tgt_in)
    assert twice.src_lengths.tolist() == batch.src_lengths.tolist() * 2
    assert twice.n_tgt_tokens == 2 * batch.n_tgt_tokens and twice.indices == [3, 4, 3, 4]


def _tiny_model_and_batch(multi30k_root, tmp_path):
    cfg = tiny_config(multi30k_root, tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg.model, 30, 30, shared_vocab=True)
    batch = collate([[5, 6, 7, 8], [12, 13]], [[9, 10, 11], [14, 15, 16, 17, 18]], indices=[0, 1])
    assert batch.tgt_out[0, -1] == PAD  # a padding position, which neither term may count
    return model, batch, cfg


def test_r_drop_adds_the_copies_disagreement_and_nothing_without_dropout(multi30k_root, tmp_path):
    model, batch, cfg = _tiny_model_and_batch(multi30k_root, tmp_path)
    plain_cfg = cfg.trainer.copy()
    rdrop_cfg = cfg.trainer.copy()
    rdrop_cfg.rdrop_alpha = 5.0
    model.eval()  # no dropout: both copies predict alike, so R-Drop is the plain objective
    plain, plain_loss = token_objective(model, batch, plain_cfg, torch.device("cpu"))
    both, both_loss = token_objective(model, batch, rdrop_cfg, torch.device("cpu"))
    assert torch.equal(plain, plain_loss)
    assert both.item() == pytest.approx(plain.item(), rel=1e-5)
    assert both_loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    model.train()  # dropout on: two samples disagree, and the objective adds alpha/2 x their KL
    both, both_loss = token_objective(model, batch, rdrop_cfg, torch.device("cpu"))
    assert both.item() > both_loss.item() > 0
    both.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_the_r_drop_objective_is_the_copies_mean_cross_entropy_plus_alpha_over_4_times_both_divergences():
    """Per token (CE(p1) + CE(p2) + alpha (KL(p1 || p2) + KL(p2 || p1)) / 2) / 2, from the logits of the
    model's one forward over both copies."""
    model, batch = step_model(dropout=0.3), collate(SRC, TGT, [0, 1, 2, 3])
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append((args[3], output[0].detach())))
    cfg = OmegaConf.create({**STEP_CFG, "label_smoothing": 0.0, "rdrop_alpha": 5.0})
    objective, loss = token_objective(model.train(), batch, cfg, torch.device("cpu"))
    ((positions, logits),) = seen  # positions (2B, T), logits (2N, V): the first copy's rows, then the second's
    target = torch.cat([batch.tgt_out, batch.tgt_out])[positions].chunk(2)[0]  # (N,)
    real = target != PAD
    first, second = (half[real] for half in logits.chunk(2))
    cross_entropy = (F.cross_entropy(first, target[real], reduction="sum")
                     + F.cross_entropy(second, target[real], reduction="sum")) / 2
    log_p, log_q = F.log_softmax(first, 1), F.log_softmax(second, 1)
    divergences = (F.kl_div(log_q, log_p, reduction="sum", log_target=True)
                   + F.kl_div(log_p, log_q, reduction="sum", log_target=True))
    assert divergences.item() > 0.01 * cross_entropy.item()  # dropout made the copies disagree
    assert loss.item() == pytest.approx(cross_entropy.item(), rel=1e-5)
    assert objective.item() == pytest.approx((cross_entropy + 5.0 * divergences / 4).item(), rel=1e-5)


def test_an_r_drop_run_trains_and_takes_other_steps_than_without(multi30k_root, tmp_path):
    plain = train(tiny_config(multi30k_root, tmp_path), tmp_path / "plain")
    rdrop = train(tiny_config(multi30k_root, tmp_path, "trainer.rdrop_alpha=5"), tmp_path / "rdrop")
    assert rdrop["steps"] == plain["steps"] == 4
    a = load_checkpoint(tmp_path / "plain/checkpoints/last.pt")["model"]
    b = load_checkpoint(tmp_path / "rdrop/checkpoints/last.pt")["model"]
    assert all(torch.isfinite(b[k]).all() for k in b)
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_an_invalid_rdrop_alpha_is_refused_by_name(multi30k_root, tmp_path, value):
    with pytest.raises(ConfigError, match="trainer.rdrop_alpha"):
        train(tiny_config(multi30k_root, tmp_path, f"trainer.rdrop_alpha={value}"), tmp_path / "run")
