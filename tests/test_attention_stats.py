"""Attention statistics (nmt.analysis.attention_stats) on hand-made matrices, and where they are reported:
validation results and TensorBoard (nmt-evaluate's report: test_evaluate_reports.py)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tiny_checkpoint import make_checkpoint

from nmt.analysis.attention_stats import (
    corpus_statistics,
    coverage,
    diagonal_distance,
    format_statistics,
    row_entropy,
)

WORDS3 = ["▁a", "▁b", "</s>"]
IDENTITY = np.eye(3)
# Two target rows spread evenly over four source positions.
UNIFORM = np.full((2, 4), 0.25)
# Every target row parks all its attention on the first source word.
PARKED = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


# --- per-matrix functions ------------------------------------------------------------------------


def test_entropy_is_zero_for_one_hot_rows_and_ln_s_for_uniform_rows():
    np.testing.assert_allclose(row_entropy(IDENTITY), [0.0, 0.0, 0.0])  # 0 ln 0 counts as 0
    np.testing.assert_allclose(row_entropy(UNIFORM), [math.log(4)] * 2)
    np.testing.assert_allclose(row_entropy(np.array([[0.5, 0.5, 0.0]])), [math.log(2)])


def test_coverage_is_the_column_sum():
    np.testing.assert_allclose(coverage(IDENTITY), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(coverage(UNIFORM), [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(coverage(PARKED), [3.0, 0.0, 0.0])


def test_diagonal_distance_by_hand():
    np.testing.assert_allclose(diagonal_distance(IDENTITY), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(diagonal_distance(np.array([[0.0, 1.0], [1.0, 0.0]])), [0.5, 0.5])  # reversed
    # Row 0 sits at 0.25 and the columns at 1/8, 3/8, 5/8, 7/8: (1 + 1 + 3 + 5) / 8 / 4 = 0.3125.
    np.testing.assert_allclose(diagonal_distance(UNIFORM), [0.3125, 0.3125])
    # Lengths differ: 2 target words over 4 source words, each row on "its" half's nearer cell.
    np.testing.assert_allclose(diagonal_distance(np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0]])), [0.125, 0.125])


def test_torch_tensors_are_accepted():
    np.testing.assert_allclose(row_entropy(torch.eye(2)), [0.0, 0.0])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.floats(0.01, 1.0)))
def test_bounds_hold_for_any_distribution(raw):
    weights = raw / raw.sum(axis=1, keepdims=True)  # rows are distributions
    t, s = weights.shape
    entropy = row_entropy(weights)
    assert np.all(entropy >= -1e-12) and np.all(entropy <= math.log(s) + 1e-9)
    np.testing.assert_allclose(coverage(weights).sum(), t)  # every row hands out exactly 1
    distance = diagonal_distance(weights)
    assert np.all(distance >= 0) and np.all(distance < 1)


# --- corpus statistics (word level) ----------------------------------------------------------------


def test_perfect_monotonic_attention():
    stats = corpus_statistics([(IDENTITY, WORDS3, WORDS3)])
    assert stats.sentences == 1
    assert stats.entropy == 0.0 and stats.diagonal_distance == 0.0
    assert stats.coverage_min == stats.coverage_max == 1.0 and stats.coverage_low == 0.0


def test_parked_attention_leaves_words_uncovered_and_eos_is_not_a_word():
    stats = corpus_statistics([(PARKED, WORDS3, WORDS3)])
    # Source words: a (3.0), b (0.0); </s> (0.0) is not counted.
    assert (stats.coverage_min, stats.coverage_max, stats.coverage_low) == (0.0, 3.0, 0.5)


def test_pieces_are_merged_into_words_before_measuring():
    # "▁Hund" + "e" is one source word: rows spread over its two pieces are one-hot on the word.
    src, tgt = ["▁Hund", "e", "</s>"], ["▁dog", "</s>"]
    weights = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    stats = corpus_statistics([(weights, src, tgt)])
    assert stats.entropy == 0.0
    assert stats.coverage_min == stats.coverage_max == 1.0


def test_corpus_means_pool_rows_and_sentences():
    stats = corpus_statistics([(IDENTITY, WORDS3, WORDS3), (UNIFORM, ["▁a", "▁b", "▁c", "</s>"], ["▁x", "</s>"])])
    assert stats.sentences == 2
    assert stats.entropy == pytest.approx(2 * math.log(4) / 5)  # 5 target rows in all
    assert stats.diagonal_distance == pytest.approx(2 * 0.3125 / 5)
    assert stats.coverage_min == pytest.approx((1.0 + 0.5) / 2)  # mean of the sentences' minima
    assert stats.coverage_low == 0.0  # exactly 0.5 is not below 0.5


def test_no_sentences_gives_nan_and_formats():
    stats = corpus_statistics([])
    assert stats.sentences == 0 and math.isnan(stats.entropy)
    line = format_statistics(corpus_statistics([(PARKED, WORDS3, WORDS3)]))
    assert "entropy 0.000 nats" in line and "below 0.5: 50.0%" in line


# --- where the statistics are reported ---------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_validation_reports_statistics_and_tensorboard_logs_them(checkpoint, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nmt.inference.translator import Translator
    from nmt.training.tensorboard import TrainingLogger
    from nmt.training.validation import ValidationData, validate

    translator = Translator.load(checkpoint, "cpu")
    texts = ["ein hund läuft", "zwei männer spielen fußball", "eine frau"]
    ids = translator.tokenizers.src.encode(texts)
    data = ValidationData(src_ids=ids, tgt_ids=ids, references=texts)
    result = validate(translator.model, data, translator.tokenizers, batch_tokens=1000, batch_sentences=8,
                      max_len_b=3, plot_sentences=1, device="cpu")
    stats = result.attention_stats
    assert stats.sentences == 3 and 0 <= stats.diagonal_distance < 1 and stats.entropy >= 0
    logger = TrainingLogger(tmp_path)
    logger.validation(7, result)
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    for name in ("entropy", "coverage_min", "coverage_max", "coverage_low", "diagonal_distance"):
        [event] = events.Scalars(f"attention_stats/{name}")
        assert event.step == 7 and event.value == pytest.approx(getattr(stats, name), rel=1e-5), name
    assert "valid/bleu" in tags
