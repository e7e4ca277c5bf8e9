"""GNMT's coverage penalty in beam search: the formula, the re-ranking of the final beam, scores that
forced decoding reproduces, and the commands' coverage_penalty option."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from toy_models import ToyModel, pad_batch, score_by_hand

from nmt.cli.common import config_dir, exit_on_user_error
from nmt.cli.evaluate import run as evaluate_run
from nmt.data.batching import collate
from nmt.inference.coverage import coverage_penalty, source_mask
from nmt.inference.evaluate import evaluate
from nmt.inference.search import beam_search, forced_decode
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCES = ["ein hund läuft über die wiese", "zwei männer spielen fußball über die wiese", "eine frau"]


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    translator = Translator.load(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt"), "cpu")
    ids = translator.tokenizers.src.encode(SOURCES)
    return translator.model, collate(ids, None, list(range(len(ids))))


def test_the_penalty_sums_log_capped_coverage_over_real_source_positions():
    coverage = torch.tensor([[[0.5, 1.5, 1.0, 0.0], [0.25, 0.5, 2.0, 0.0]]])  # (B=1, K=2, S=4)
    mask = source_mask(torch.tensor([3]), 4)  # the last position is padding
    expected = [0.2 * math.log(0.5), 0.2 * (math.log(0.25) + math.log(0.5))]
    assert coverage_penalty(coverage, mask, 0.2)[0].tolist() == pytest.approx(expected)
    untouched = coverage_penalty(torch.zeros(1, 1, 3), source_mask(torch.tensor([3]), 3), 1.0)
    assert torch.isfinite(untouched).all() and untouched.item() < -100  # no attention at all: finite, very low


def test_forced_decoding_of_a_batch_counts_each_targets_own_steps_only():
    """Batched targets of different lengths: a shorter one's coverage sums its own attention rows
    (its tokens and EOS), not those of the padding steps the longer ones still take."""
    model = ToyModel(seed=2)
    sentences, targets = [[3, 5, 1, 7], [4, 6, 8], [5]], [[3], [4, 5, 6, 3, 4], []]
    src, lengths = pad_batch(sentences)
    found = forced_decode(model, src, lengths, targets, coverage_penalty=0.5)
    for sentence, tokens, hyp in zip(sentences, targets, found, strict=True):
        total, attention = score_by_hand(model, sentence, tokens)  # attention (len + 1, len(sentence))
        covered = attention.sum(0).clamp(max=1.0)  # (len(sentence),)
        assert hyp.score == pytest.approx(total + 0.5 * float(covered.log().sum()), rel=1e-6)


@pytest.mark.parametrize("beta", [0.2, 1.0])
def test_forced_decoding_reproduces_the_scores_of_beam_search(model_and_batch, beta):
    model, batch = model_and_batch
    results = beam_search(model, batch.src, batch.src_lengths, beam_size=4, nbest=4, length_penalty=1.0,
                          coverage_penalty=beta)
    penalties = []
    for i, nbest in enumerate(results):
        src, lengths = batch.src[i : i + 1], batch.src_lengths[i : i + 1]
        forced = forced_decode(model, src, lengths, [nbest[0].tokens], length_penalty=1.0, coverage_penalty=beta)
        assert nbest[0].score == pytest.approx(forced[0].score, rel=1e-5)
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
        plain = forced_decode(model, src, lengths, [nbest[0].tokens], length_penalty=1.0)
        penalties.append(forced[0].score - plain[0].score)
    # Never positive; zero only where every source position got a total attention of 1 or more.
    assert all(p <= 0 for p in penalties) and min(penalties) < 0, penalties


def coverage_term(model, batch, i, tokens) -> float:
    """cp with beta = 1 of a translation of sentence i, from forced decoding."""
    src, lengths = batch.src[i : i + 1], batch.src_lengths[i : i + 1]
    return (forced_decode(model, src, lengths, [tokens], coverage_penalty=1.0)[0].score
            - forced_decode(model, src, lengths, [tokens])[0].score)


def test_a_strong_penalty_picks_translations_that_cover_more_of_the_source(model_and_batch):
    """The search is the same with or without the penalty, so the final beams hold the same
    hypotheses: the one chosen with the penalty cannot cover less than the one chosen without."""
    model, batch = model_and_batch
    plain = beam_search(model, batch.src, batch.src_lengths, beam_size=5)
    covered = beam_search(model, batch.src, batch.src_lengths, beam_size=5, coverage_penalty=5.0)
    gains = [coverage_term(model, batch, i, covered[i][0].tokens) - coverage_term(model, batch, i, plain[i][0].tokens)
             for i in range(len(SOURCES))]
    assert all(gain >= -1e-6 for gain in gains) and any(gain > 0.01 for gain in gains), gains


def test_without_a_penalty_beam_search_is_unchanged(model_and_batch):
    model, batch = model_and_batch
    default = beam_search(model, batch.src, batch.src_lengths, beam_size=3, nbest=3)
    zero = beam_search(model, batch.src, batch.src_lengths, beam_size=3, nbest=3, coverage_penalty=0.0)
    assert [[(h.tokens, h.score) for h in n] for n in default] == [[(h.tokens, h.score) for h in n] for n in zero]


def evaluate_config(checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("evaluate", overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])


def test_evaluate_names_its_files_after_the_penalty_and_reports_it(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    (tmp_path / "src.txt").write_text("".join(f"{line}\n" for line in SOURCES), encoding="utf-8")
    (tmp_path / "ref.txt").write_text("a dog runs\ntwo men play football\na woman\n", encoding="utf-8")
    files = [f"src_file={tmp_path / 'src.txt'}", f"ref_file={tmp_path / 'ref.txt'}", "beam_size=2"]
    report = evaluate(evaluate_config(checkpoint, *files, "coverage_penalty=0.2"))
    assert report["coverage_penalty"] == 0.2
    assert (tmp_path / "model.src.txt.beam2.cp0.2.json").is_file()
    assert evaluate(evaluate_config(checkpoint, *files))["coverage_penalty"] == 0.0
    assert (tmp_path / "model.src.txt.beam2.json").is_file()


def test_a_negative_penalty_is_refused_naming_the_option(tmp_path, capsys):
    cfg = evaluate_config(make_checkpoint(tmp_path / "model.pt"), "coverage_penalty=-1")
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(evaluate_run)(cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "coverage_penalty must be a finite number >= 0 (0: off); got -1" in err
