"""Runs greedy or beam search, or forced decoding of given targets, over many sentences in
length-sorted batches; results come back in input order."""

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

from nmt.data.batching import collate, sort_by_length_batches
from nmt.inference.memory import out_of_memory_advice, scoring_advice, search_advice, sentences
from nmt.inference.prefix import Spelling
from nmt.inference.search import Hypothesis, Sampling, beam_search, forced_decode, greedy_search, sample


@contextlib.contextmanager
def evaluation_mode(model) -> Iterator[None]:
    """The model in eval mode (dropout off) inside the block, and back in the mode it had after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def search_many(model, src_ids: Sequence[Sequence[int]], *, beam_size: int = 1, nbest: int = 1,
                length_penalty: float = 1.0, coverage_penalty: float = 0.0, no_repeat_ngram_size: int = 0,
                max_len_a: float = 1.5, max_len_b: int = 10, max_output_len: int | None = None,
                return_attention: bool = False, batch_sentences: int = 128, batch_tokens: int = 16384,
                device: torch.device | str = "cpu", sampling: Sampling | None = None,
                prefix_ids: Sequence[Sequence[int]] | None = None, prefix_ends_word: Sequence[bool] | None = None,
                word_starts: torch.Tensor | None = None, prefix_spellings: Sequence[Spelling | None] | None = None,
                on_batch: Callable[[int], None] | None = None) -> list[list[Hypothesis]]:
    """Translates tokenized sources; the i-th result holds the n-best list of the i-th source.
    `prefix_ids[i]`, if given, is the target ids every translation of source i must begin with;
    `prefix_ends_word[i]`: that prefix ends with a whole word, so the next token must be one of
    `word_starts` ((V,) bool); `prefix_spellings[i]`: characters the tokens after it must spell
    (a partly typed word; see nmt.inference.prefix).
    With `sampling`, `nbest` random translations per source replace the search (beam_size unused).
    A `coverage_penalty` (GNMT's beta) re-ranks beam search's final beam, so it is used even for
    beam_size=1 (where it only changes the score). `no_repeat_ngram_size` = n > 0: no translation repeats
    one of its own n-grams of subwords (nmt.inference.repetition). Each translation has at most
    floor(max_len_a * source length + max_len_b) subwords, and at most `max_output_len` (None: no cap).
    `on_batch` is called with the number of sentences of each finished batch (progress reports).

    Sorting by length keeps padding (and wasted decoder steps) small; results go back to input order.
    Empty sources get an empty hypothesis list.
    """
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    nonempty = [i for i, ids in enumerate(src_ids) if len(ids) > 0]
    lengths = [len(src_ids[i]) + 1 for i in nonempty]  # +1: EOS appended by collate
    generator = None if sampling is None else torch.Generator(device=device).manual_seed(sampling.seed)
    with evaluation_mode(model):
        for batch_positions in sort_by_length_batches(lengths, batch_sentences, batch_tokens):
            indices = [nonempty[p] for p in batch_positions]
            batch = collate([src_ids[i] for i in indices], None, indices)
            prefix = None if prefix_ids is None else [list(prefix_ids[i]) for i in indices]
            ends_word = None if prefix_ends_word is None else [prefix_ends_word[i] for i in indices]
            spellings = None if prefix_spellings is None else [prefix_spellings[i] for i in indices]
            constraint = dict(prefix=prefix, prefix_ends_word=ends_word, word_starts=word_starts,
                              prefix_spellings=spellings, no_repeat_ngram_size=no_repeat_ngram_size,
                              max_len_a=max_len_a, max_len_b=max_len_b, max_output_len=max_output_len)
            greedy = sampling is None and beam_size == 1 and nbest == 1 and not coverage_penalty
            search = "sampling" if sampling is not None else "greedy search" if greedy else "beam search"
            advice = search_advice(len(indices), beam_size=beam_size, nbest=nbest, batch_sentences=batch_sentences,
                                   sampling=sampling is not None)
            with out_of_memory_advice(f"in {search} (a batch of {sentences(len(indices), batch.src.size(1))})",
                                      advice):
                batch = batch.to(device)
                if sampling is not None:
                    hyps = sample(model, batch.src, batch.src_lengths, samples=nbest, sampling=sampling,
                                  length_penalty=length_penalty, return_attention=return_attention,
                                  generator=generator, **constraint)
                elif greedy:
                    hyps = greedy_search(model, batch.src, batch.src_lengths, length_penalty=length_penalty,
                                         return_attention=return_attention, **constraint)
                else:
                    hyps = beam_search(model, batch.src, batch.src_lengths, beam_size=beam_size, nbest=nbest,
                                       length_penalty=length_penalty, coverage_penalty=coverage_penalty,
                                       return_attention=return_attention, **constraint)
            for i, nbest_list in zip(indices, hyps, strict=True):
                results[i] = nbest_list
            if on_batch is not None:
                on_batch(len(indices))
    return results


def score_many(model, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], *,
               batch_sentences: int = 128, batch_tokens: int = 16384, device: torch.device | str = "cpu",
               on_batch: Callable[[int], None] | None = None) -> list[float]:
    """The log-probability (natural log, summed over the subwords and EOS) the model gives each
    target tgt_ids[i] as the translation of src_ids[i]: the teacher-forced score of a given output.
    An empty source is scored as EOS alone, as the model would read it."""
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"{len(src_ids)} sources but {len(tgt_ids)} targets")
    scores = [0.0] * len(src_ids)
    # Batches are bounded by the longer side: forced decoding runs one step per target token.
    lengths = [max(len(s), len(t)) + 1 for s, t in zip(src_ids, tgt_ids, strict=True)]
    with evaluation_mode(model):
        for positions in sort_by_length_batches(lengths, batch_sentences, batch_tokens):
            hyps = forced_decode_batch(model, [src_ids[i] for i in positions], [tgt_ids[i] for i in positions],
                                       device=device, batch_sentences=batch_sentences, task="scoring")
            for i, hyp in zip(positions, hyps, strict=True):
                scores[i] = hyp.score
            if on_batch is not None:
                on_batch(len(positions))
    return scores


def forced_decode_batch(model, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], *,
                        device: torch.device | str, batch_sentences: int, task: str) -> list[Hypothesis]:
    """Forced decoding of these pairs as one batch. Running out of memory is one line naming the
    batch ("in {task} (a batch of ...)") and what to lower (batch_sentences, of which this batch is one)."""
    batch = collate(src_ids, None, range(len(src_ids)))
    tokens = max(batch.src.size(1), max(len(t) + 1 for t in tgt_ids))  # the longer side: a step per target token
    with out_of_memory_advice(f"in {task} (a batch of {sentences(len(src_ids), tokens, 'sentence pair')})",
                              scoring_advice(len(src_ids), batch_sentences)):
        batch = batch.to(device)
        return forced_decode(model, batch.src, batch.src_lengths, [list(t) for t in tgt_ids])
