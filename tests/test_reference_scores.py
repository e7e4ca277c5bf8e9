"""Scoring given translations (forced decoding): per-sentence log-probabilities, the perplexity of a
reference set, and the commands that print them (nmt-translate reference=, nmt-evaluate
reference_perplexity=true)."""

import json
import math
import sys

import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import main_error, one_line_error

from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.data.tokenizer import Tokenizers
from nmt.inference.evaluate import evaluate
from nmt.inference.translator import ReferenceScore, Translator, perplexity
from nmt.training.validation import ValidationData, validation_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCES = ["ein hund läuft über die wiese", "zwei männer", "eine frau spielt fußball über die wiese", ""]
TRANSLATIONS = ["a dog runs across the meadow", "two men play football . two men", "a woman", "the dog"]


@pytest.fixture(scope="module", params=[("additive", "bahdanau"), ("general", "luong")])
def translator(request, tmp_path_factory):
    attention, style = request.param
    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", attention=attention, decoder_style=style)
    return Translator.load(path, "cpu")


def test_each_score_is_the_forced_decoding_score_of_that_sentence_alone(translator):
    # Batched in twos, so shorter sentences are padded next to longer ones: padding must not leak in.
    scores = translator.score(SOURCES[:3], TRANSLATIONS[:3], batch_sentences=2)
    for src, tgt, score in zip(SOURCES[:3], TRANSLATIONS[:3], scores, strict=True):
        alone = translator.force(src, tgt, length_penalty=0.0)
        assert score.log_prob == pytest.approx(alone.score, rel=1e-5, abs=1e-5)
        assert score.tokens == len(alone.tgt_pieces)  # subwords + EOS
        assert score.log_prob < 0


def test_a_blank_source_is_scored_as_eos_alone(translator):
    [blank] = translator.score([""], ["the dog"])
    assert math.isfinite(blank.log_prob) and blank.log_prob < 0
    assert blank.tokens == len(translator.tokenizers.tgt.encode(["the dog"])[0]) + 1


def test_perplexity_equals_the_validation_perplexity_of_training(translator):
    """Forced decoding runs the decoder step by step; training's validation runs it over whole
    sequences. The two must agree on the same pairs, or the reported perplexities would not compare."""
    tokenizers: Tokenizers = translator.tokenizers
    data = ValidationData(tokenizers.src.encode(SOURCES[:3]), tokenizers.tgt.encode(TRANSLATIONS[:3]),
                          TRANSLATIONS[:3])
    expected = math.exp(validation_loss(translator.model, data, batch_tokens=4096, device="cpu"))
    assert perplexity(translator.score(SOURCES[:3], TRANSLATIONS[:3])) == pytest.approx(expected, rel=1e-5)


def test_perplexity_is_the_exp_of_the_mean_negative_log_probability_per_subword():
    scores = [ReferenceScore(-6.0, 3), ReferenceScore(-2.0, 1)]
    assert perplexity(scores) == pytest.approx(math.exp(8.0 / 4))


def command_config(name: str, checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose(name, overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])


def write_pairs(folder, sources, translations):
    (folder / "src.txt").write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    (folder / "ref.txt").write_text("".join(f"{line}\n" for line in translations), encoding="utf-8")
    return folder / "src.txt", folder / "ref.txt"


def test_translate_with_a_reference_file_prints_one_score_line_per_input_line(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, SOURCES[:3], TRANSLATIONS[:3])
    translate.run(command_config("translate", checkpoint, f"input={src}", f"reference={ref}"))
    captured = capsys.readouterr()
    rows = [line.split("\t") for line in captured.out.splitlines()]
    expected = Translator.load(checkpoint, "cpu").score(SOURCES[:3], TRANSLATIONS[:3])
    assert [row[2] for row in rows] == TRANSLATIONS[:3]
    assert [int(row[1]) for row in rows] == [s.tokens for s in expected]
    assert [float(row[0]) for row in rows] == pytest.approx([s.log_prob for s in expected], abs=1e-4)
    assert f"perplexity {perplexity(expected):.2f}" in captured.err


@pytest.mark.parametrize(("translations", "extra", "message"), [
    (["a dog"], [], "ref.txt has 1 lines but the input"),
    (["a dog", "two men"], ["nbest=2"], "nbest=2 lists translations, but reference= scores the given ones"),
    # alignment=true was silently ignored
    (["a dog", "two men"], ["alignment=true"],
     "alignment=true links the words of the model's translations, but reference= scores given ones instead"),
])
def test_translate_refuses_a_reference_file_that_does_not_fit(tmp_path, capsys, translations, extra, message):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, ["ein hund", "zwei männer"], translations)
    cfg = command_config("translate", checkpoint, f"input={src}", f"reference={ref}", *extra)
    assert message in one_line_error(capsys, translate.run, cfg)


@pytest.mark.parametrize(("options", "named"), [
    (["beam_size=3"], "beam_size=3 is"),
    (["beam_size=5"], "beam_size=5 is"),  # the default's value, given: the user meant something by it
    (["length_penalty=0.6", "coverage_penalty=0.2"], "length_penalty=0.6 and coverage_penalty=0.2 are"),
    (["no_repeat_ngram_size=2", "max_len_a=2", "max_len_b=3"], "no_repeat_ngram_size=2, max_len_a=2 and max_len_b=3 are"),
    (["max_output_len=null"], "max_output_len=null is"),
    (["temperature=0.5", "sampling_topk=3"], "temperature=0.5 and sampling_topk=3 are"),
])
def test_translate_refuses_search_options_given_with_a_reference_file(tmp_path, capsys, monkeypatch, options, named):
    """reference= scores by forced decoding: it took the search options, and ignored them."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, ["ein hund", "zwei männer"], ["a dog", "two men"])
    args = [f"checkpoint={checkpoint}", f"input={src}", f"reference={ref}", "device=cpu"]
    assert main_error(capsys, monkeypatch, translate.main, *args, *options) == (
        f"{named} for translating, but reference= scores the given translations without a search: "
        f"drop {'it' if named.endswith(' is') else 'them'} (or reference=)")
    # a sweep's jobs are checked alike, each before the first runs
    assert main_error(capsys, monkeypatch, translate.main, "-m", *args, "beam_size=1,2").startswith(
        "job #0 of the sweep (beam_size=1): beam_size=1 is for translating")
    # left at their defaults, they are no mistake: the options the command line sets are what counts
    monkeypatch.setattr(sys, "argv", ["nmt-translate", *args, f"output={tmp_path / 'scores.tsv'}"])
    translate.main()
    assert [line.split("\t")[2] for line in (tmp_path / "scores.tsv").read_text().splitlines()] == ["a dog", "two men"]


def test_evaluate_reports_the_perplexity_of_the_references(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, SOURCES[:3], TRANSLATIONS[:3])
    report = evaluate(command_config("evaluate", checkpoint, f"src_file={src}", f"ref_file={ref}", "beam_size=2",
                                     "reference_perplexity=true"))
    scores = Translator.load(checkpoint, "cpu").score(SOURCES[:3], TRANSLATIONS[:3])
    assert report["references"]["subwords"] == sum(s.tokens for s in scores)
    assert report["references"]["perplexity"] == pytest.approx(perplexity(scores), rel=1e-4)
    written = json.loads((tmp_path / "model.src.txt.beam2.json").read_text())
    assert written["references"] == report["references"]
    assert f"references: perplexity {perplexity(scores):.2f}" in capsys.readouterr().out


def test_evaluate_reports_the_references_mean_negative_log_probability_per_subword(tmp_path):
    """nll_per_subword is the mean over all target subwords (EOS included), not over sentences: the
    figure training logs as valid_loss."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, SOURCES[:3], TRANSLATIONS[:3])
    report = evaluate(command_config("evaluate", checkpoint, f"src_file={src}", f"ref_file={ref}", "beam_size=1",
                                     "reference_perplexity=true", "attention_stats=false"))
    scores = Translator.load(checkpoint, "cpu").score(SOURCES[:3], TRANSLATIONS[:3])
    nll = -sum(s.log_prob for s in scores) / sum(s.tokens for s in scores)
    assert report["references"]["nll_per_subword"] == pytest.approx(nll, abs=1e-5)
    assert math.exp(report["references"]["nll_per_subword"]) == pytest.approx(report["references"]["perplexity"],
                                                                              rel=1e-4)


def test_evaluate_leaves_the_references_unscored_by_default(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    src, ref = write_pairs(tmp_path, SOURCES[:3], TRANSLATIONS[:3])
    report = evaluate(command_config("evaluate", checkpoint, f"src_file={src}", f"ref_file={ref}", "beam_size=2"))
    assert "references" not in report
