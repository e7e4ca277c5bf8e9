"""Minimum risk training: the expected cost, its pieces, and a training run that uses it."""

import contextlib
import copy

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import SRC, sgd_update, step_model
from tiny_training import tiny_config

from nmt.data.batching import collate
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.errors import ConfigError
from nmt.training import runtime
from nmt.training.checkpoint import load_checkpoint
from nmt.training.risk import RiskObjective, candidate_targets, expected_risk, risk_surrogate, sentence_costs
from nmt.training.trainer import train


def test_costs_are_zero_for_the_reference_and_one_for_nothing_in_common():
    reference = "A man in a blue shirt is standing on a ladder."
    costs = sentence_costs([reference, "Two dogs run through snow",
                            "A man in a red shirt is standing on a ladder."], [reference] * 3)
    assert costs[0] == pytest.approx(0.0)
    assert costs[1] == pytest.approx(1.0)
    assert 0.2 < costs[2] < 0.8  # one word changed: partly right


def test_expected_risk_renormalises_over_the_present_candidates():
    log_probs = torch.log(torch.tensor([[0.2, 0.1, 0.3], [0.5, 0.5, 0.5]]))  # (B=2, K=3)
    costs = torch.tensor([[0.0, 1.0, 0.5], [0.4, 9.0, 0.8]])
    present = torch.tensor([[True, True, True], [True, False, True]])
    risk = expected_risk(log_probs, costs, present)
    # Row 0: q = (0.2, 0.1, 0.3) / 0.6. Row 1: the missing candidate (cost 9) weighs nothing.
    assert risk.tolist() == pytest.approx([(0.2 * 0.0 + 0.1 * 1.0 + 0.3 * 0.5) / 0.6, (0.4 + 0.8) / 2])


def test_the_gradient_moves_probability_towards_cheaper_candidates():
    """dR/d log p(u) = q(u) (cost(u) - R): negative for the candidates cheaper than the average."""
    log_probs = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).requires_grad_()
    costs = torch.tensor([[0.1, 0.5, 0.9]])
    risk = expected_risk(log_probs, costs, torch.ones(1, 3, dtype=torch.bool))
    risk.sum().backward()
    q = torch.tensor([0.5, 0.3, 0.2])
    assert log_probs.grad[0].tolist() == pytest.approx((q * (costs[0] - risk)).tolist())
    assert log_probs.grad[0, 0] < 0 < log_probs.grad[0, 2]


def test_candidate_rows_hold_bos_tokens_and_eos_with_missing_ones_marked():
    tgt_in, tgt_out, present = candidate_targets([[[7, 8], [9]], [[5, 6, 4]]], k=2)
    assert tgt_in.tolist() == [[BOS, 7, 8, PAD], [BOS, 9, PAD, PAD], [BOS, 5, 6, 4], [BOS, PAD, PAD, PAD]]
    assert tgt_out.tolist() == [[7, 8, EOS, PAD], [9, EOS, PAD, PAD], [5, 6, 4, EOS], [EOS, PAD, PAD, PAD]]
    assert present.tolist() == [[True, True], [True, False]]


class _WordTokenizer:
    """Ids are words: 10 -> "w10"."""

    def decode(self, ids_batch):
        return [" ".join(f"w{i}" for i in ids) for ids in ids_batch]


def test_costs_land_at_their_candidates_place_with_missing_ones_zero():
    batch = collate([[4], [5]], [[10, 11, 12, 13], [20, 21, 22, 23]], [0, 1])
    objective = RiskObjective(0.5, 3, _WordTokenizer())
    costs = objective.costs([[[10, 11, 12]], [[30, 31], [20, 21, 22, 23]]], batch)
    assert 0.0 < costs[0, 0] < 1.0  # three of the four words
    assert costs[0, 1:].tolist() == [0.0, 0.0]  # missing
    assert costs[1].tolist() == pytest.approx([1.0, 0.0, 0.0])  # nothing in common, the reference, missing


def test_a_risk_update_mixes_the_loss_per_target_token_and_the_expected_cost_per_sentence():
    """loss = (1 - w) x NLL per token + w x risk per sentence: the update moves the weights by that mix
    of the two objectives' gradients, each taken alone."""
    model, weight = step_model(), 0.3
    objective = RiskObjective(weight, 3, _WordTokenizer(), max_len_a=1.0, max_len_b=3)
    indices = list(range(len(SRC)))
    # References among the model's own candidates, so that the candidates' costs differ (0 for one).
    nbest = objective.search(model, collate(SRC, [[4]] * len(SRC), indices))
    batch = collate(SRC, [next(c for c in candidates if c) for candidates in nbest], indices)
    token_change, token_loss, _ = sgd_update(model, batch)  # SGD at rate 1: minus the token loss's gradient
    alone = copy.deepcopy(model)
    objective.risk(alone, alone, batch, contextlib.nullcontext).backward()  # the summed expected cost
    risk_gradient = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten()
                               for p in alone.parameters()])
    assert risk_gradient.norm() > 0.1 * token_change.norm()  # both parts weigh in
    change, loss, _ = sgd_update(model, batch, risk=objective)
    assert loss == pytest.approx(token_loss, rel=1e-6)  # the reported loss stays the token-level one
    expected = (1 - weight) * token_change - weight * risk_gradient / len(SRC)
    torch.testing.assert_close(change, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_surrogate_has_the_gradient_of_the_expected_cost(dtype):
    """Against autograd through log_softmax, gather and the renormalised expectation, in float64."""
    torch.manual_seed(0)
    logits = torch.randn(9, 13, dtype=torch.float64) * 3  # (N=9, V=13): B=2 sources, K=2 candidates
    targets = torch.randint(0, 13, (9,))
    rows = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3])  # candidate (b * K + j) of each position
    costs = torch.tensor([[0.2, 0.7], [0.9, 0.4]])
    present = torch.ones(2, 2, dtype=torch.bool)
    reference = logits.clone().requires_grad_()
    token = torch.log_softmax(reference, 1)[torch.arange(9), targets]  # (N,)
    sequences = torch.zeros(4, dtype=torch.float64).index_add(0, rows, token).view(2, 2)
    expected = expected_risk(sequences, costs, present)
    expected.sum().backward()
    ours = logits.to(dtype).requires_grad_()
    surrogate, risk = risk_surrogate(ours, targets, rows, costs, present)
    surrogate.backward()
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(risk.double(), expected.detach().double(), atol=tolerance * 10)
    assert torch.allclose(ours.grad.double(), reference.grad, atol=tolerance)


def test_a_risk_run_trains_logs_its_expected_cost_and_differs_from_token_training(multi30k_root, tmp_path,
                                                                                   monkeypatch):
    kept = []  # whether each run asked glibc to keep freed memory: not with risk (its heap grew unbounded)
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: kept.append(True))
    plain = train(tiny_config(multi30k_root, tmp_path), tmp_path / "plain")
    assert kept == [True]
    risky = train(tiny_config(multi30k_root, tmp_path, "trainer.risk_weight=0.5", "trainer.risk_candidates=3"),
                  tmp_path / "risk")
    assert kept == [True]
    assert risky["steps"] == plain["steps"] == 4
    a = load_checkpoint(tmp_path / "plain/checkpoints/last.pt")["model"]
    b = load_checkpoint(tmp_path / "risk/checkpoints/last.pt")["model"]
    assert all(torch.isfinite(b[k]).all() for k in b)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the risk term changed the updates
    events = EventAccumulator(str(tmp_path / "risk/tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    costs = [event.value for event in events.Scalars("train/expected_cost")]
    assert len(costs) == 4 and all(0.0 <= cost <= 1.0 for cost in costs)
    assert "train/expected_cost" not in EventAccumulator(str(tmp_path / "plain/tensorboard")).Reload().Tags()["scalars"]


@pytest.mark.parametrize("option, value", [("risk_weight", "1.5"), ("risk_weight", "abc"), ("risk_candidates", "1")])
def test_invalid_risk_options_are_refused_by_name(multi30k_root, tmp_path, option, value):
    with pytest.raises(ConfigError, match=f"trainer.{option}"):
        train(tiny_config(multi30k_root, tmp_path, f"trainer.{option}={value}"), tmp_path / "run")
