"""Invariants of greedy search, beam search and forced decoding, checked on a tiny toy model."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_models import ToyModel, pad_batch, reference_beam_search, score_by_hand

from nmt.inference.search import Hypothesis, beam_search, forced_decode, greedy_search, sample

SENTENCES = [[3, 5, 1, 7], [2], [4, 4, 6, 8, 1, 2], [5, 3]]
SEEDS = range(6)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """The toy tensors are tiny: extra intra-op threads only spin, which is slow on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def assert_same(a: list[list[Hypothesis]], b: list[list[Hypothesis]]) -> None:
    assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b]
    for hyps_a, hyps_b in zip(a, b, strict=True):
        for x, y in zip(hyps_a, hyps_b, strict=True):
            assert x.score == pytest.approx(y.score, rel=1e-9, abs=1e-9)
            if x.attention is not None or y.attention is not None:
                torch.testing.assert_close(x.attention, y.attention)


def all_sequences(model: ToyModel, max_len: int) -> list[list[int]]:
    """Every output the search may produce: real tokens only (no pad, BOS or EOS), up to max_len."""
    words = [t for t in range(model.vocab_size) if t not in (model.pad_id, model.bos_id, model.eos_id)]
    return [list(seq) for n in range(max_len + 1) for seq in itertools.product(words, repeat=n)]


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_beam_size_one_equals_greedy(seed, alpha):
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    greedy = greedy_search(model, src, lengths, length_penalty=alpha, return_attention=True)
    beam = beam_search(model, src, lengths, beam_size=1, length_penalty=alpha, return_attention=True)
    assert_same(beam, greedy)
    raw = greedy_search(model, src, lengths)  # the default: the unpenalised sum
    for g, r in zip(greedy, raw, strict=True):
        assert g[0].score == pytest.approx(r[0].score / lp(len(r[0].tokens) + 1, alpha), rel=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_wide_beam_finds_exhaustive_best(seed, alpha):
    model, max_len = ToyModel(vocab_size=6, seed=seed), 4
    candidates = all_sequences(model, max_len)  # 121 sequences
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(
        model, src, lengths, beam_size=len(candidates), length_penalty=alpha, max_len_a=0.0, max_len_b=max_len
    )
    for sentence, hyps in zip(SENTENCES, found, strict=True):
        scores = {
            tuple(seq): score_by_hand(model, sentence, seq)[0] / lp(len(seq) + 1, alpha) for seq in candidates
        }
        best = max(scores, key=scores.get)
        assert hyps[0].tokens == list(best)
        assert hyps[0].score == pytest.approx(scores[best], rel=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_batched_beam_search_equals_plain_python_reference(seed, alpha):
    model, k = ToyModel(seed=seed, eos_bias=1.0), 3
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(
        model, src, lengths, beam_size=k, nbest=k, length_penalty=alpha, max_len_a=1.0, max_len_b=2
    )
    for sentence, hyps in zip(SENTENCES, found, strict=True):
        expected = reference_beam_search(model, sentence, k, alpha, max_len=len(sentence) + 2)
        assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
        assert [h.score for h in hyps] == pytest.approx([score for _, score in expected], rel=1e-9)


def test_nbest_shorter_only_when_search_space_is_smaller_than_nbest():
    model = ToyModel(vocab_size=6)  # three real tokens: with max length 1 only 4 outputs exist
    found = beam_search(model, *pad_batch(SENTENCES), beam_size=8, nbest=8, max_len_a=0.0, max_len_b=1)
    for hyps in found:
        assert sorted(h.tokens for h in hyps) == [[], [3], [4], [5]]
        assert all(math.isfinite(h.score) for h in hyps)


@pytest.mark.parametrize("seed", range(20))
def test_moderate_beam_scores_at_least_greedy_on_toy_models(seed):
    # Not a theorem for beam search in general; a regression check on fixed toy models.
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    greedy = greedy_search(model, src, lengths)
    beam = beam_search(model, src, lengths, beam_size=4, length_penalty=0.0)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].score >= g[0].score - 1e-9


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_nbest_sorted_distinct_and_equal_to_forced_decode(seed, alpha):
    model, nbest = ToyModel(seed=seed), 4
    src, lengths = pad_batch(SENTENCES)
    found = beam_search(
        model, src, lengths, beam_size=6, nbest=nbest, length_penalty=alpha, return_attention=True
    )
    for i, hyps in enumerate(found):
        assert len(hyps) == nbest
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == nbest
        rescored = forced_decode(
            model, src[i : i + 1].repeat(nbest, 1), lengths[i : i + 1].repeat(nbest), [h.tokens for h in hyps]
        )
        for h, r in zip(hyps, rescored, strict=True):
            assert h.score == pytest.approx(r.score / lp(len(h.tokens) + 1, alpha), rel=1e-9)
            torch.testing.assert_close(h.attention, r.attention)


def test_a_length_penalty_past_the_float_range_gives_no_nan_scores():
    """((5 + L) / 6) ** alpha overflows to inf (float32 from alpha ~30, float64 here from ~800), and
    -inf / inf made the scores of masked candidates, then of the hypotheses, NaN."""
    model = ToyModel(seed=1)
    src, lengths = pad_batch(SENTENCES)
    for hyps in beam_search(model, src, lengths, beam_size=3, nbest=3, length_penalty=1000.0):
        assert hyps and not any(math.isnan(h.score) for h in hyps)


def test_forced_decode_length_penalty_divides_raw_sum():
    model = ToyModel(seed=3)
    src, lengths = pad_batch(SENTENCES)
    tgt = [[3, 4], [], [5, 5, 5, 3], [6]]
    raw = forced_decode(model, src, lengths, tgt)
    penalised = forced_decode(model, src, lengths, tgt, length_penalty=0.6)
    for t, r, p in zip(tgt, raw, penalised, strict=True):
        assert p.score == pytest.approx(r.score / lp(len(t) + 1, 0.6), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    sentences=st.lists(st.lists(st.integers(1, 8), min_size=1, max_size=7), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_batched_results_equal_single_sentence_results(sentences, seed):
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(sentences)
    for search in (greedy_search, lambda *a, **kw: beam_search(*a, beam_size=3, nbest=2, **kw)):
        batched = search(model, src, lengths, return_attention=True)
        single = [search(model, *pad_batch([s]), return_attention=True)[0] for s in sentences]
        assert_same(batched, single)


@pytest.mark.parametrize("max_len_a, max_len_b", [(1.5, 1), (0.5, 2.0), (0.0, 0)])
def test_eos_forced_at_max_length_when_model_never_ends(max_len_a, max_len_b):
    model = ToyModel(seed=1, eos_bias=-30.0)
    src, lengths = pad_batch(SENTENCES)
    for found in (
        greedy_search(model, src, lengths, max_len_a=max_len_a, max_len_b=max_len_b),
        beam_search(model, src, lengths, beam_size=3, nbest=3, max_len_a=max_len_a, max_len_b=max_len_b),
    ):
        for sentence, hyps in zip(SENTENCES, found, strict=True):
            for h in hyps:
                assert len(h.tokens) == math.floor(max_len_a * len(sentence) + max_len_b)
                assert h.score < -30.0 / lp(len(h.tokens) + 1, 1.0)  # the forced EOS is paid for


@pytest.mark.parametrize("cap", [1, 3, 100])
def test_max_output_len_caps_the_length_limit_of_every_search(cap):
    """max_len_a x source length + max_len_b had no cap: one 20,000-character input line decoded for tens
    of minutes. A model that never ends of itself stops at the smaller of the two."""
    model = ToyModel(seed=1, eos_bias=-30.0)
    src, lengths = pad_batch(SENTENCES)
    limits = {"max_len_a": 1.5, "max_len_b": 2, "max_output_len": cap}
    for found in (
        greedy_search(model, src, lengths, **limits),
        beam_search(model, src, lengths, beam_size=3, nbest=3, **limits),
        sample(model, src, lengths, samples=2, **limits),
    ):
        for sentence, hyps in zip(SENTENCES, found, strict=True):
            assert [len(h.tokens) for h in hyps] == [min(math.floor(1.5 * len(sentence) + 2), cap)] * len(hyps)


@pytest.mark.parametrize("seed", SEEDS)
def test_outputs_within_max_length_and_free_of_special_tokens(seed):
    model = ToyModel(seed=seed, eos_bias=-1.0)
    src, lengths = pad_batch(SENTENCES)
    specials = {model.pad_id, model.bos_id, model.eos_id}
    for found in (
        greedy_search(model, src, lengths, max_len_a=0.5, max_len_b=1),
        beam_search(model, src, lengths, beam_size=4, nbest=4, max_len_a=0.5, max_len_b=1),
    ):
        for sentence, hyps in zip(SENTENCES, found, strict=True):
            for h in hyps:
                assert len(h.tokens) <= math.floor(0.5 * len(sentence) + 1)
                assert not specials & set(h.tokens)


@pytest.mark.parametrize("seed", SEEDS)
def test_attention_rows_sum_to_one_over_src_len_columns(seed):
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    for found in (
        greedy_search(model, src, lengths, return_attention=True),
        beam_search(model, src, lengths, beam_size=3, nbest=3, return_attention=True),
    ):
        for sentence, hyps in zip(SENTENCES, found, strict=True):
            for h in hyps:
                assert h.attention.shape == (len(h.tokens) + 1, len(sentence))
                assert h.attention.dtype == torch.float32 and h.attention.device.type == "cpu"
                torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.tokens) + 1))


def test_attention_omitted_unless_requested():
    model = ToyModel()
    src, lengths = pad_batch(SENTENCES)
    found = greedy_search(model, src, lengths) + beam_search(model, src, lengths, nbest=2)
    assert all(h.attention is None for hyps in found for h in hyps)


@pytest.mark.parametrize("seed", SEEDS)
def test_forced_decode_score_equals_hand_summed_log_probs(seed):
    model = ToyModel(seed=seed)
    src, lengths = pad_batch(SENTENCES)
    tgt = [[3, 4, 5], [], [6, 6], [4, 3, 5, 6, 3]]
    for sentence, tokens, hyp in zip(SENTENCES, tgt, forced_decode(model, src, lengths, tgt), strict=True):
        total, attention = score_by_hand(model, sentence, tokens)
        assert hyp.tokens == tokens
        assert hyp.score == pytest.approx(total, rel=1e-12)
        torch.testing.assert_close(hyp.attention, attention.float())


def test_greedy_stops_once_every_sentence_has_ended():
    model = ToyModel(seed=0, eos_bias=30.0)
    src, lengths = pad_batch(SENTENCES)
    found = greedy_search(model, src, lengths)
    assert model.decode_calls == 1
    assert all(hyps[0].tokens == [] for hyps in found)


def test_beam_search_rejects_nbest_larger_than_beam():
    model = ToyModel()
    with pytest.raises(ValueError, match="nbest"):
        beam_search(model, *pad_batch(SENTENCES), beam_size=2, nbest=3)
