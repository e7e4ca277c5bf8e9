"""The exponential moving average of the weights (trainer.ema_decay): its arithmetic, and a training run
that validates and saves the average, trains on from the weights, and resumes to the same numbers."""


import pytest
import torch
from test_resume import N, assert_same_parameters, config

from nmt.data.pipeline import prepare_data
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import load_checkpoint
from nmt.training.ema import WeightAverage
from nmt.training.trainer import train
from nmt.training.validation import ValidationData, validation_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class WithCounter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("count", torch.tensor(7))  # an integer buffer: not averaged


def test_the_average_follows_the_weights_with_a_warmed_up_decay():
    model = WithCounter()
    ema = WeightAverage(model, decay=0.9)
    expected = model.linear.weight.detach().clone()
    for n in range(100):
        with torch.no_grad():
            model.linear.weight.add_(torch.randn(2, 3))
        decay = min(0.9, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, ... then 0.9 from update 80 on
        expected = decay * expected + (1 - decay) * model.linear.weight.detach()
        ema.update(model, step=n)
    assert ema.step_decay(100) == 0.9
    torch.testing.assert_close(ema.average["linear.weight"], expected)
    assert "count" not in ema.average and ema.state_dict(model)["count"].item() == 7


def test_applied_swaps_the_average_in_and_the_weights_back():
    model = WithCounter()
    ema = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.linear.weight.mul_(3.0)
    ema.update(model, step=0)  # first update: decay 0.1, so the average is not the weights
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    with ema.applied(model):
        assert torch.equal(model.linear.weight, ema.average["linear.weight"])
        assert not torch.equal(model.linear.weight, weights["linear.weight"])
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_the_second_update_of_a_run_moves_the_average_with_the_decay_of_one_earlier_update(multi30k_root, tmp_path):
    """After update 1 the average is A1; update 2 gives weights W2 and A2 = d A1 + (1 - d) W2 with
    d = min(0.9, (1 + 1) / (10 + 1)): the decay is counted from the updates before this one."""
    cache, ema = tmp_path / "cache", "trainer.ema_decay=0.9"
    train(config(multi30k_root, cache, ema, "trainer.max_steps=1"), tmp_path / "run")
    first = load_checkpoint(tmp_path / "run/checkpoints/last.pt")["model"]
    train(config(multi30k_root, cache, ema, "trainer.max_steps=2", "resume=true"), tmp_path / "run")
    second = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    averaged, weights = second["model"], second["training_weights"]
    names = [name for name in weights if weights[name].is_floating_point()]
    before = torch.cat([(first[name] - weights[name]).double().flatten() for name in names])
    after = torch.cat([(averaged[name] - weights[name]).double().flatten() for name in names])
    decay = float(after @ before / (before @ before))  # the least-squares d in A2 - W2 = d (A1 - W2)
    assert decay == pytest.approx(2 / 11, rel=1e-3)
    torch.testing.assert_close(after, decay * before, rtol=0, atol=1e-6)


def test_training_validates_and_saves_the_average_and_resumes_exactly(multi30k_root, tmp_path):
    cache = tmp_path / "cache"
    cfg = config(multi30k_root, cache, "trainer.ema_decay=0.9", "trainer.keep_best_checkpoints=2")
    one_go = train(cfg, tmp_path / "one_go")
    last = load_checkpoint(tmp_path / "one_go/checkpoints/last.pt")
    averaged, weights = last["model"], last["training_weights"]
    assert any(not torch.equal(averaged[name], weights[name]) for name in weights)

    # The last validation scored the average, not the weights the run trains on.
    data, n = prepare_data(cfg), cfg.trainer.valid_max_sentences  # the run's cached data
    valid = ValidationData(data.valid_src_ids[:n], data.valid_tgt_ids[:n], data.valid_tgt_text[:n])
    tokenizers = data.tokenizers
    model = build_model(cfg.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size, shared_vocab=True)
    losses = {}
    for name, state in (("average", averaged), ("weights", weights)):
        model.load_state_dict(state)
        losses[name] = validation_loss(model, valid, batch_tokens=512, device=torch.device("cpu"))
    assert one_go["history"][-1]["valid_loss"] == pytest.approx(losses["average"], rel=1e-6)
    assert losses["weights"] != pytest.approx(losses["average"], rel=1e-6)
    kept = sorted((tmp_path / "one_go/checkpoints").glob("step-*.pt"))
    assert kept and all(load_checkpoint(p)["model"].keys() == averaged.keys() for p in kept)

    # Stopped half-way and resumed: the same average and the same weights, bit for bit.
    train(config(multi30k_root, cache, "trainer.ema_decay=0.9", "trainer.keep_best_checkpoints=2",
                 f"trainer.max_steps={N // 2 - 1}"), tmp_path / "resumed")
    resumed = train(config(multi30k_root, cache, "trainer.ema_decay=0.9", "trainer.keep_best_checkpoints=2",
                           "resume=true"), tmp_path / "resumed")
    assert_same_parameters(tmp_path / "one_go/checkpoints/last.pt", tmp_path / "resumed/checkpoints/last.pt")
    again = load_checkpoint(tmp_path / "resumed/checkpoints/last.pt")["training_weights"]
    assert all(torch.equal(weights[name], again[name]) for name in weights)
    assert [h for h in resumed["history"] if h["step"] % 4 == 0] == one_go["history"]
