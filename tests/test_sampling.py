"""Sampling: random translations drawn from the model's distribution (temperature, top-k, top-p),
scored with the model's own log-probs, repeatable by seed; and `nmt-translate sampling=true`."""

import math
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import main_error

from nmt.cli import translate
from nmt.cli.common import config_dir, exit_on_user_error
from nmt.data.batching import collate
from nmt.inference.search import Sampling, forced_decode, greedy_search, sample
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCES = ["ein hund läuft über die wiese", "zwei männer spielen fußball", "eine frau"]


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    """The tiny checkpoint's model with its output layer scaled up, so that its next-token
    distributions are peaked and temperature, top-k and top-p visibly change them."""
    translator = Translator.load(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt"), "cpu")
    model = translator.model
    with torch.no_grad():
        model.generator.weight.mul_(8.0)
    ids = translator.tokenizers.src.encode(SOURCES)
    return model, collate(ids, None, list(range(len(ids))))


def first_step_distribution(model, batch, temperature: float = 1.0) -> torch.Tensor:
    """p(first token | sentence 0) as sampling sees it: pad and BOS never, the rest renormalised."""
    with torch.inference_mode():
        state = model.encode(batch.src[:1], batch.src_lengths[:1])
        log_probs, _, _ = model.decode_step(torch.tensor([model.bos_id]), state)  # (1, V)
    logits = log_probs[0] / temperature
    logits[[model.pad_id, model.bos_id]] = -math.inf
    return logits.softmax(dim=0)  # (V,)


def drawn_first_tokens(model, batch, n: int, sampling: Sampling) -> torch.Tensor:
    """The first token of n samples of sentence 0 (EOS for an empty sample), counted per token id."""
    hyps = sample(model, batch.src[:1], batch.src_lengths[:1], samples=n, sampling=sampling, max_len_a=0,
                  max_len_b=1)[0]
    first = torch.tensor([h.tokens[0] if h.tokens else model.eos_id for h in hyps])
    return torch.bincount(first, minlength=model.generator.out_features).double() / n  # (V,)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_samples_follow_the_tempered_distribution(model_and_batch, temperature):
    model, batch = model_and_batch
    expected = first_step_distribution(model, batch, temperature).double()
    drawn = drawn_first_tokens(model, batch, 20000, Sampling(temperature=temperature, seed=3))
    assert 0.5 * (drawn - expected).abs().sum() < 0.03  # total variation; about 0.01 from chance alone
    untempered = first_step_distribution(model, batch).double()
    if temperature != 1.0:  # the temperature matters for this model: the test above can tell
        assert 0.5 * (untempered - expected).abs().sum() > 0.1


def test_top_k_and_top_p_draw_from_the_most_likely_tokens_only(model_and_batch):
    model, batch = model_and_batch
    probs = first_step_distribution(model, batch).double()
    order = probs.argsort(descending=True)
    top3 = probs[order[:3]]
    drawn = drawn_first_tokens(model, batch, 20000, Sampling(topk=3, seed=4))
    expected = torch.zeros_like(probs)
    expected[order[:3]] = top3 / top3.sum()
    assert 0.5 * (drawn - expected).abs().sum() < 0.03
    # The nucleus of mass p: the fewest most likely tokens that hold at least p.
    p = float(probs[order[:2]].sum()) - 1e-6  # two tokens reach it, one does not
    drawn = drawn_first_tokens(model, batch, 20000, Sampling(topp=p, seed=5))
    expected = torch.zeros_like(probs)
    expected[order[:2]] = probs[order[:2]] / probs[order[:2]].sum()
    assert 0.5 * (drawn - expected).abs().sum() < 0.03


def nucleus(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The fewest most likely tokens whose probability reaches p, by a plain loop."""
    kept, mass = [], 0.0
    for token in probs.argsort(descending=True).tolist():
        kept.append(token)
        mass += float(probs[token])
        if mass >= p:
            break
    return torch.tensor(kept)


@pytest.mark.parametrize(("temperature", "size"), [(2.0, 3), (0.5, 2)])
def test_top_p_takes_the_nucleus_of_the_tempered_distribution(model_and_batch, temperature, size):
    """Temperature comes first: the nucleus is the one of softmax(log-probs / temperature)."""
    model, batch = model_and_batch
    tempered = first_step_distribution(model, batch, temperature).double()
    p = float(tempered.sort(descending=True).values[:size].sum()) - 1e-6
    kept = nucleus(tempered, p)
    assert len(kept) == size
    assert len(nucleus(first_step_distribution(model, batch).double(), p)) != size  # the order matters here
    drawn = drawn_first_tokens(model, batch, 20000, Sampling(temperature=temperature, topp=p, seed=7))
    expected = torch.zeros_like(tempered)
    expected[kept] = tempered[kept] / tempered[kept].sum()
    assert 0.5 * (drawn - expected).abs().sum() < 0.03


@pytest.mark.parametrize("sampling", [Sampling(topk=1), Sampling(topp=1e-6), Sampling(temperature=1e-4),
                                      # below float32's smallest number: NaN probabilities and a traceback before
                                      Sampling(topp=1e-300), Sampling(temperature=1e-300),
                                      Sampling(temperature=5e-324, topp=1e-300)])
def test_sampling_without_choice_is_greedy_search(model_and_batch, sampling):
    model, batch = model_and_batch
    greedy = greedy_search(model, batch.src, batch.src_lengths)
    drawn = sample(model, batch.src, batch.src_lengths, samples=3, sampling=sampling)
    for best, samples in zip(greedy, drawn, strict=True):
        assert [h.tokens for h in samples] == [best[0].tokens] * 3
        assert [h.score for h in samples] == pytest.approx([best[0].score] * 3, rel=1e-5)


@pytest.mark.parametrize("temperature", [1e30, 1e300])  # 1e300 is inf in float32: NaN probabilities before
def test_a_huge_temperature_draws_every_token_alike(model_and_batch, temperature):
    model, batch = model_and_batch
    allowed = first_step_distribution(model, batch) > 0  # (V,) every token but pad and BOS
    uniform = allowed.double() / allowed.sum()
    drawn = drawn_first_tokens(model, batch, 20000, Sampling(temperature=temperature, seed=6))
    assert 0.5 * (drawn - uniform).abs().sum() < 0.05


def test_a_sample_is_scored_with_the_model_log_probs_not_the_tempered_ones(model_and_batch):
    model, batch = model_and_batch
    drawn = sample(model, batch.src, batch.src_lengths, samples=4, sampling=Sampling(temperature=2.0, seed=6))
    for i, samples in enumerate(drawn):
        forced = forced_decode(model, batch.src[i : i + 1], batch.src_lengths[i : i + 1], [h.tokens for h in samples[:1]])
        assert samples[0].score == pytest.approx(forced[0].score, rel=1e-5)
        assert [h.score for h in samples] == sorted((h.score for h in samples), reverse=True)  # best first


def test_the_seed_repeats_the_draws(model_and_batch):
    model, batch = model_and_batch

    def draws(seed):
        return [[h.tokens for h in hyps] for hyps in
                sample(model, batch.src, batch.src_lengths, samples=5, sampling=Sampling(seed=seed))]

    assert draws(11) == draws(11)
    assert draws(11) != draws(12)


def translate_config(checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])


def test_translate_draws_nbest_samples_per_line(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "in.txt").write_text("ein hund\n\nzwei männer\n", encoding="utf-8")
    translate.run(translate_config(checkpoint, f"input={tmp_path / 'in.txt'}", "sampling=true", "nbest=4"))
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 3 * 4 and all(len(line.split("\t")) == 2 for line in first)
    translate.run(translate_config(checkpoint, f"input={tmp_path / 'in.txt'}", "sampling=true", "nbest=4"))
    assert capsys.readouterr().out.splitlines() == first  # the default seed repeats the output
    translate.run(translate_config(checkpoint, f"input={tmp_path / 'in.txt'}", "sampling=true", "nbest=4",
                                   "sampling_seed=2"))
    assert capsys.readouterr().out.splitlines() != first


def test_translate_draws_with_the_temperature_top_k_top_p_and_seed_it_is_given(tmp_path, capsys):
    """nmt-translate sampling=true draws what the Python API draws with the same Sampling options."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in SOURCES), encoding="utf-8")
    options = {"temperature": 0.3, "sampling_topk": 4, "sampling_topp": 0.7, "sampling_seed": 5}
    translate.run(translate_config(checkpoint, f"input={tmp_path / 'in.txt'}", "sampling=true", "nbest=3",
                                   "max_len_b=4", *(f"{key}={value}" for key, value in options.items())))
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    translator = Translator.load(checkpoint, "cpu")

    def drawn(**changes):
        sampling = Sampling(**{"temperature": 0.3, "topk": 4, "topp": 0.7, "seed": 5, **changes})
        samples = translator.translate(SOURCES, nbest=3, max_len_b=4, sampling=sampling)
        return [[f"{h.score:.4f}", h.text] for hyps in samples for h in hyps]

    assert rows == drawn()
    # Each option changes the draws here, so a command that dropped one would be caught above.
    assert all(drawn(**{key: value}) != rows for key, value in
               [("temperature", 1.0), ("topk", 0), ("topp", 1.0), ("seed", 0)])


@pytest.mark.parametrize(("overrides", "message"), [
    (["sampling=true", "temperature=0"], "temperature must be a number > 0; got 0"),
    (["sampling=true", "temperature=inf"], "temperature must be a number > 0; got inf"),  # nan probabilities
    (["sampling=true", "temperature=nan"], "temperature must be a number > 0; got nan"),
    (["sampling=true", "sampling_topp=1.5"], "sampling_topp must be a number in (0, 1]"),
    (["sampling=true", "sampling_topk=-1"], "sampling_topk must be an integer >= 0"),
    (["sampling=yes"], "sampling must be true or false"),
    (["sampling=true", "reference=ref.txt"], "sampling=true draws translations, but reference= scores"),
])
def test_translate_refuses_bad_sampling_options(tmp_path, capsys, overrides, message):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "in.txt").write_text("ein hund\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a dog\n", encoding="utf-8")
    overrides = [o.replace("ref.txt", str(tmp_path / "ref.txt")) for o in overrides]
    cfg = translate_config(checkpoint, f"input={tmp_path / 'in.txt'}", *overrides)
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(translate.run)(cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err, err


@pytest.mark.parametrize(("options", "named"), [
    (["temperature=0.7"], "temperature=0.7 is"),
    (["sampling_topk=10", "sampling_seed=3"], "sampling_topk=10 and sampling_seed=3 are"),
    (["sampling_topp=0.9", "sampling=false"], "sampling_topp=0.9 is"),
])
def test_sampling_options_without_sampling_are_refused(tmp_path, capsys, monkeypatch, options, named):
    """Beam search ignored them: a user who set temperature= got beam search's translations, silently."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "in.txt").write_text("ein hund\n", encoding="utf-8")
    args = [f"checkpoint={checkpoint}", f"input={tmp_path / 'in.txt'}", "device=cpu"]
    assert main_error(capsys, monkeypatch, translate.main, *args, *options) == (
        f"{named} for sampling=true, but without it the translations come from beam search, which draws nothing: "
        f"drop {'it' if named.endswith(' is') else 'them'} (or add sampling=true)")
    # with sampling=true they are taken
    monkeypatch.setattr(sys, "argv", ["nmt-translate", *args, "sampling=true", *options[:1],
                                      f"output={tmp_path / 'out.txt'}"])
    translate.main()
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()) == 1


def test_beam_search_options_with_sampling_are_refused(tmp_path, capsys, monkeypatch):
    """sampling=true draws nbest translations: it took beam_size= and coverage_penalty=, and ignored them."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "in.txt").write_text("ein hund\n", encoding="utf-8")
    args = [f"checkpoint={checkpoint}", f"input={tmp_path / 'in.txt'}", "device=cpu", "sampling=true"]
    assert main_error(capsys, monkeypatch, translate.main, *args, "beam_size=8", "coverage_penalty=0.2") == (
        "beam_size=8 and coverage_penalty=0.2 are for beam search, but sampling=true draws the translations instead "
        "(nbest=K of them): drop them (or sampling=true)")
