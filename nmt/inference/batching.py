"""Runs greedy or beam search over many sentences in length-sorted batches, in input order."""

from collections.abc import Callable, Sequence

import torch

from nmt.data.batching import collate, sort_by_length_batches
from nmt.inference.search import Hypothesis, beam_search, greedy_search


def search_many(model, src_ids: Sequence[Sequence[int]], *, beam_size: int = 1, nbest: int = 1,
                length_penalty: float = 1.0, max_len_a: float = 1.5, max_len_b: int = 10,
                return_attention: bool = False, batch_sentences: int = 128, batch_tokens: int = 16384,
                device: torch.device | str = "cpu",
                on_batch: Callable[[int], None] | None = None) -> list[list[Hypothesis]]:
    """Translates tokenized sources; the i-th result holds the n-best list of the i-th source.
    `on_batch` is called with the number of sentences of each finished batch (progress reports).

    Sorting by length keeps padding (and wasted decoder steps) small; results go back to input order.
    Empty sources get an empty hypothesis list.
    """
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    nonempty = [i for i, ids in enumerate(src_ids) if len(ids) > 0]
    lengths = [len(src_ids[i]) + 1 for i in nonempty]  # +1: EOS appended by collate
    was_training = model.training
    model.eval()
    try:
        for batch_positions in sort_by_length_batches(lengths, batch_sentences, batch_tokens):
            indices = [nonempty[p] for p in batch_positions]
            batch = collate([src_ids[i] for i in indices], None, indices).to(device)
            if beam_size == 1 and nbest == 1:
                hyps = greedy_search(model, batch.src, batch.src_lengths, max_len_a=max_len_a,
                                     max_len_b=max_len_b, length_penalty=length_penalty,
                                     return_attention=return_attention)
            else:
                hyps = beam_search(model, batch.src, batch.src_lengths, beam_size=beam_size, nbest=nbest,
                                   length_penalty=length_penalty, max_len_a=max_len_a,
                                   max_len_b=max_len_b, return_attention=return_attention)
            for i, nbest_list in zip(indices, hyps, strict=True):
                results[i] = nbest_list
            if on_batch is not None:
                on_batch(len(indices))
    finally:
        model.train(was_training)
    return results
