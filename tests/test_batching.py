"""Batch samplers (coverage, token budget, determinism) and collate (shapes, BOS/EOS placement)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.batching import (
    EXTRA_TOKENS,
    SentenceBatchSampler,
    TokenBatchSampler,
    collate,
    sort_by_length_batches,
)
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.errors import ConfigError


def random_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 40, n), rng.integers(1, 40, n)


def widths(src, tgt, batch) -> list[int]:
    return [max(src[i], tgt[i]) + EXTRA_TOKENS for i in batch]


def assert_valid_epoch(batches, src, tgt, budget):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(src)))  # every example exactly once
    for b in batches:
        assert len(b) == 1 or len(b) * max(widths(src, tgt, b)) <= budget


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_index_once_within_token_budget(shuffle):
    src, tgt = random_lengths(1000)
    sampler = TokenBatchSampler(src, tgt, 400, shuffle=shuffle, seed=3)
    batches = list(sampler)
    assert_valid_epoch(batches, src, tgt, 400)
    assert len(batches) == len(sampler)


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=80),
    budget=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    epoch=st.integers(0, 5),
)
def test_sampler_invariants_hold_for_any_lengths(lengths, budget, seed, epoch):
    src = [s for s, _ in lengths]
    tgt = [t for _, t in lengths]
    sampler = TokenBatchSampler(src, tgt, budget, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert_valid_epoch(batches, src, tgt, budget)
    assert len(batches) == len(sampler)


def test_over_long_example_gets_its_own_batch():
    batches = list(TokenBatchSampler([100, 2, 2], [3, 2, 2], 20, shuffle=False))
    assert [0] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


@pytest.mark.parametrize("shuffle", [False, True])
def test_an_over_long_example_can_be_skipped_instead(shuffle):
    sampler = TokenBatchSampler([100, 2, 2, 18], [3, 2, 2, 2], 20, shuffle=shuffle, skip_over_budget=True)
    assert sampler.skipped == 1  # 100 + 1 > 20; 18 + 1 fits alone
    assert sorted(i for b in sampler for i in b) == [1, 2, 3] and len(list(sampler)) == len(sampler)


def test_batches_hold_similar_lengths():
    src, tgt = random_lengths(2000)
    batches = list(TokenBatchSampler(src, tgt, 600, shuffle=True, seed=0))
    # Each batch is a contiguous run of the length-sorted examples: length ranges never interleave.
    ranges = sorted((min(widths(src, tgt, b)), max(widths(src, tgt, b))) for b in batches)
    assert all(prev_hi <= lo for (_, prev_hi), (lo, _) in zip(ranges, ranges[1:], strict=False))
    assert np.mean([hi - lo for lo, hi in ranges]) < 1


def test_unshuffled_order_is_sorted_and_repeatable():
    src, tgt = random_lengths(300)
    sampler = TokenBatchSampler(src, tgt, 300, shuffle=False)
    first = list(sampler)
    sampler.set_epoch(7)
    assert list(sampler) == first
    flat_widths = [w for b in first for w in widths(src, tgt, b)]
    assert flat_widths == sorted(flat_widths)


def test_shuffle_is_determined_by_seed_and_epoch():
    src, tgt = random_lengths(500)

    def epoch(seed, number):
        sampler = TokenBatchSampler(src, tgt, 300, shuffle=True, seed=seed)
        sampler.set_epoch(number)
        return list(sampler)

    assert epoch(1, 0) == epoch(1, 0)
    assert epoch(1, 0) != epoch(1, 1)
    assert epoch(1, 0) != epoch(2, 0)


def test_a_batch_takes_examples_until_the_next_would_exceed_the_budget():
    """Greedy packing: a batch may fill the budget exactly, and is closed only when the next example
    (in length order) would take it over the budget."""
    assert list(TokenBatchSampler([3] * 4, [2] * 4, 16, shuffle=False)) == [[0, 1, 2, 3]]  # 4 x (3 + 1) = 16
    src, tgt = random_lengths(500)
    batches = list(TokenBatchSampler(src, tgt, 300, shuffle=False))
    for batch, following in zip(batches, batches[1:], strict=False):
        grown = batch + following[:1]
        assert len(grown) * max(widths(src, tgt, grown)) > 300


def test_each_epoch_shuffles_the_order_of_batches_and_which_examples_share_one():
    """Not short batches first and long ones last, and examples of equal length are grouped anew each
    epoch: not the same batches in another order."""
    src, tgt = random_lengths(1000)
    sampler = TokenBatchSampler(src, tgt, 400, shuffle=True, seed=0)
    epochs = []
    for number in range(2):
        sampler.set_epoch(number)
        epochs.append(list(sampler))
    for batches in epochs:
        longest = [max(widths(src, tgt, b)) for b in batches]
        assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    assert {frozenset(b) for b in epochs[0]} != {frozenset(b) for b in epochs[1]}


def test_bad_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_tokens"):
        TokenBatchSampler([1], [1], 0, shuffle=False)


def test_sort_by_length_batches_limits_and_order():
    lengths = np.random.default_rng(0).integers(0, 50, 333).tolist()
    batches = sort_by_length_batches(lengths, max_sentences=16, max_tokens=200)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * (max(lengths[i] for i in b) + EXTRA_TOKENS) <= 200
    assert all(len(b) <= 5 for b in sort_by_length_batches(lengths, max_sentences=5))


def test_sentence_batch_sampler_keeps_input_order():
    sampler = SentenceBatchSampler(7, 3)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5], [6]] and len(sampler) == 3


def test_collate_shapes_and_special_tokens():
    batch = collate([[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14]], indices=[4, 2])
    assert batch.src.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert batch.src_lengths.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[BOS, 9, 10, PAD, PAD], [BOS, 11, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS, PAD, PAD], [11, 12, 13, 14, EOS]]
    assert batch.n_tgt_tokens == int((batch.tgt_out != PAD).sum()) == 8
    assert batch.indices == [4, 2] and len(batch) == 2
    for t in (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out):
        assert t.dtype == torch.long


def test_collate_without_targets():
    batch = collate([[5], [6, 7]], None, indices=[0, 1])
    assert batch.tgt_in is None and batch.tgt_out is None and batch.n_tgt_tokens == 0
    assert batch.to("cpu").src.tolist() == [[5, EOS, PAD], [6, 7, EOS]]


def test_batch_to_moves_every_tensor():
    batch = collate([[5]], [[6]], indices=[0]).to(torch.device("cpu"))
    assert batch.tgt_out.device.type == "cpu"
    if torch.cuda.is_available():
        pinned = batch.pin_memory()
        assert pinned.src.is_pinned() and pinned.tgt_in.is_pinned()


def test_sampler_drives_a_dataloader():
    src_ids = [[5] * n for n in (3, 1, 4, 1, 5)]
    tgt_ids = [[6] * n for n in (2, 7, 1, 8, 2)]
    loader = torch.utils.data.DataLoader(
        list(range(5)),
        batch_sampler=TokenBatchSampler(
            [len(s) for s in src_ids], [len(t) for t in tgt_ids], 16, shuffle=True, seed=0
        ),
        collate_fn=lambda idx: collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx], idx),
    )
    seen = sorted(i for batch in loader for i in batch.indices)
    assert seen == [0, 1, 2, 3, 4]
