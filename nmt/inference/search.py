"""Greedy search, beam search, sampling and forced decoding for any model with the `Searchable` interface.

Search only talks to the model through ``encode``, ``decode_step`` and ``reorder_state``; the
decoder state is opaque, so every decoder and attention type works without a type check.

Design. All B x K hypotheses of a batch live in one set of tensors (`_Beams`): scores, lengths and
finished flags of shape (B, K), and token / attention histories of shape (B, K, T[, S]). One step
scores every (hypothesis, next token) pair at once, picks K of them per sentence with a single
``topk`` over K * V candidates, and reorders state and histories through the chosen parents.

Finished hypotheses stay in the beam. Their only allowed continuation is the pad token at cost 0,
so their score and length stay frozen, and candidates are ranked by score / lp(length): a finished
hypothesis competes with the alive ones on the same normalised scale and is only pushed out by
better ones. Greedy search is the same loop with K = 1 and an argmax instead of the topk; sampling
runs K independent hypotheses per sentence, each drawing its next token from the model's distribution.

Alive hypotheses never produce pad or BOS, and EOS is the only choice once a sentence reaches its
length limit floor(max_len_a * src_len + max_len_b), or `max_output_len` if that is smaller (an
absolute cap, as fairseq's max_positions and Joey NMT's max_output_length: without it one very long
input line decodes for minutes). Scores are sums of the model's own log-probs
(not renormalised after these restrictions), so `forced_decode` of a result reproduces its score.

A target prefix (`prefix=`, as CTranslate2's target_prefix or fairseq's --prefix-size) makes every
hypothesis of a sentence begin with given tokens: during its first len(prefix) steps a sentence's
only allowed continuation is the prefix's next token, so the search continues the most probable
way from there. The prefix tokens are scored like any other (their log-probs count), so forced
decoding of the output still reproduces its score, and the length limit grows to fit the prefix.
A prefix may also end with a whole word (`prefix_ends_word`: the next token must be one of
`word_starts`) or be followed by a partly typed word (`prefix_spellings`: the next tokens must spell
its characters); nmt.inference.prefix holds these rules.

With a coverage penalty (`nmt.inference.coverage`), beam search also tracks each hypothesis's
summed attention (B, K, S) and ranks the final beam by score / lp(length) + cp(coverage); the search
itself is unchanged. Forced decoding given the same beta reproduces that score too.

With `no_repeat_ngram_size` = n > 0 (nmt.inference.repetition), no hypothesis may produce a token that
would repeat one of its own n-grams of subword ids; hypotheses still inside a target prefix are
exempt until they are past it.

Host synchronisation: the step loop performs one per step itself, the ``finished.all()`` check that
stops as soon as every hypothesis has ended, plus whatever the model's ``reorder_state`` needs (the
seq2seq model reads the index to keep sharing one copy of the encoder states per sentence; see
`nmt.models.state.DecoderState`). Everything else stays on the model's device until the final
conversion to `Hypothesis` objects.

The public functions run under ``torch.inference_mode()`` themselves; callers need not wrap them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor

from nmt.inference.coverage import coverage_penalty, source_mask
from nmt.inference.prefix import Spelling, TargetPrefix
from nmt.inference.repetition import ban_repeated_ngrams_

State = Any
# select(candidate scores (B, K, V), candidate lengths (B, K)) -> (parent beam (B, K), token (B, K))
Selector = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class Searchable(Protocol):
    """What search needs from a model (the seq2seq model implements it)."""

    pad_id: int
    bos_id: int
    eos_id: int

    def encode(self, src: Tensor, src_lengths: Tensor) -> State:
        """src (B, S) padded ids, src_lengths (B,) -> decoder state for B rows."""
        ...

    def decode_step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State, Tensor]:
        """prev_tokens (B,) -> log-probs (B, V), new state, attention weights (B, S)."""
        ...

    def reorder_state(self, state: State, index: Tensor) -> State:
        """New state whose row i is old row index[i] (rows may repeat)."""
        ...


@dataclass
class Hypothesis:
    """One output sentence.

    tokens: output ids without BOS and without the final EOS.
    score: sum of token log-probs including EOS, divided by the length penalty, plus the coverage
        penalty when one is asked for.
    attention: (len(tokens) + 1, src_len) CPU float32 weights, one row per produced token
        including EOS, one column per real source position; None unless requested.
    """

    tokens: list[int]
    score: float
    attention: Tensor | None


@dataclass
class _Beams:
    """All hypotheses of a batch; K = 1 for greedy search and forced decoding."""

    scores: Tensor  # (B, K) summed log-probs, frozen once finished
    lengths: Tensor  # (B, K) tokens produced incl. EOS, frozen once finished
    finished: Tensor  # (B, K) bool
    tokens: Tensor  # (B, K, T) long; pad after EOS
    attention: Tensor | None  # (B, K, T, S)
    coverage: Tensor | None = None  # (B, K, S) float32 attention summed over the produced tokens,
    #                                 frozen once finished; tracked only for a coverage penalty


@torch.inference_mode()
def greedy_search(
    model: Searchable,
    src: Tensor,
    src_lengths: Tensor,
    *,
    max_len_a: float = 1.5,
    max_len_b: float = 10,
    max_output_len: int | None = None,
    length_penalty: float = 0.0,
    return_attention: bool = False,
    no_repeat_ngram_size: int = 0,
    prefix: list[list[int]] | None = None,
    prefix_ends_word: list[bool] | None = None,
    word_starts: Tensor | None = None,
    prefix_spellings: list[Spelling | None] | None = None,
) -> list[list[Hypothesis]]:
    """Most probable next token at every step. Returns one single-item list per sentence, scored as
    beam_search(beam_size=1) scores it: sum of log-probs / lp(length) (the raw sum with the default 0).
    The penalty only scales the score: with one hypothesis it cannot change the choice of token.
    `prefix`: per sentence, the target ids every output must begin with ([] for none);
    `prefix_ends_word` / `word_starts`: which prefixes end with a whole word;
    `prefix_spellings`: per sentence, characters to spell after its prefix (None for none)."""
    forced = _build_prefix(model, src, prefix, prefix_ends_word, word_starts, prefix_spellings)
    max_lens = _max_lengths(src_lengths, max_len_a, max_len_b, max_output_len, forced).to(src.device)  # (B,)
    beams = _search(
        model, src, src_lengths, _select_greedy, k=1, max_lens=max_lens, return_attention=return_attention,
        prefix=forced, no_repeat_ngram_size=no_repeat_ngram_size,
    )
    return _finalize(beams, src_lengths, nbest=1, length_penalty=length_penalty)


@torch.inference_mode()
def beam_search(
    model: Searchable,
    src: Tensor,
    src_lengths: Tensor,
    *,
    beam_size: int = 5,
    nbest: int = 1,
    length_penalty: float = 1.0,
    coverage_penalty: float = 0.0,
    max_len_a: float = 1.5,
    max_len_b: float = 10,
    max_output_len: int | None = None,
    return_attention: bool = False,
    no_repeat_ngram_size: int = 0,
    prefix: list[list[int]] | None = None,
    prefix_ends_word: list[bool] | None = None,
    word_starts: Tensor | None = None,
    prefix_spellings: list[Spelling | None] | None = None,
) -> list[list[Hypothesis]]:
    """Batched beam search. Returns per sentence (input order) the `nbest` hypotheses, best first,
    scored by sum of log-probs / lp(length) with the GNMT penalty lp(L) = ((5 + L) / 6) ** alpha,
    plus GNMT's coverage penalty with beta = `coverage_penalty` (nmt.inference.coverage) if not 0,
    which re-ranks the final beam only.

    Impossible hypotheses (score -inf, only when the beam is wider than the search space) are left
    out, so a list can then be shorter than `nbest`. `prefix`: per sentence, the target ids every
    hypothesis must begin with ([] for none); `prefix_ends_word` / `word_starts`: which prefixes end
    with a whole word; `prefix_spellings`: per sentence, characters to spell after its prefix.
    """
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"need 1 <= nbest <= beam_size, got nbest={nbest}, beam_size={beam_size}")
    forced = _build_prefix(model, src, prefix, prefix_ends_word, word_starts, prefix_spellings)
    max_lens = _max_lengths(src_lengths, max_len_a, max_len_b, max_output_len, forced).to(src.device)  # (B,)
    select = partial(_select_topk, length_penalty=length_penalty)
    beams = _search(
        model, src, src_lengths, select, k=beam_size, max_lens=max_lens, return_attention=return_attention,
        track_coverage=coverage_penalty > 0, prefix=forced, no_repeat_ngram_size=no_repeat_ngram_size,
    )
    return _finalize(beams, src_lengths, nbest=nbest, length_penalty=length_penalty, coverage_beta=coverage_penalty)


@torch.inference_mode()
def forced_decode(
    model: Searchable,
    src: Tensor,
    src_lengths: Tensor,
    tgt: list[list[int]],
    *,
    length_penalty: float = 0.0,
    coverage_penalty: float = 0.0,
) -> list[Hypothesis]:
    """Teacher-forced scoring of given target ids (EOS is appended). The score is the sum of the
    model's log-probs of tgt + EOS, divided by lp(len + 1) (raw sum with the default 0), plus the
    coverage penalty of its attention with beta = `coverage_penalty`; the attention is always returned."""
    b, device = src.size(0), src.device
    if len(tgt) != b:
        raise ValueError(f"got {len(tgt)} target sentences for {b} source sentences")
    lengths = torch.tensor([len(t) + 1 for t in tgt], device=device)  # (B,)
    gold = _pad_targets(tgt, model.eos_id, model.pad_id, device)  # (B, T)
    bos = torch.full((b, 1), model.bos_id, dtype=torch.long, device=device)  # (B, 1)
    prev = torch.cat([bos, gold[:, :-1]], dim=1)  # (B, T) decoder inputs
    state = model.encode(src, src_lengths)
    token_scores, attention = [], []
    for t in range(gold.size(1)):
        log_probs, state, attn = model.decode_step(prev[:, t], state)  # (B, V), (B, S)
        token_scores.append(log_probs.gather(1, gold[:, t : t + 1]).squeeze(1))  # (B,)
        attention.append(attn)
    real = torch.arange(gold.size(1), device=device) < lengths[:, None]  # (B, T)
    scores = torch.stack(token_scores, dim=1).masked_fill(~real, 0.0).sum(dim=1)  # (B,)
    weights = torch.stack(attention, dim=1)  # (B, T, S)
    coverage = weights.float().masked_fill(~real[..., None], 0.0).sum(dim=1)  # (B, S)
    beams = _Beams(
        scores=scores[:, None],  # (B, 1)
        lengths=lengths[:, None],  # (B, 1)
        finished=torch.ones(b, 1, dtype=torch.bool, device=device),  # (B, 1)
        tokens=gold[:, None],  # (B, 1, T)
        attention=weights[:, None],  # (B, 1, T, S)
        coverage=coverage[:, None],  # (B, 1, S)
    )
    finalized = _finalize(beams, src_lengths, nbest=1, length_penalty=length_penalty, coverage_beta=coverage_penalty)
    return [hyps[0] for hyps in finalized]


@dataclass
class Sampling:
    """How `sample` draws each next token: from softmax(log-probs / temperature), restricted to the
    `topk` most likely tokens (0: all) and to the smallest set whose probability reaches `topp`
    (nucleus sampling; 1: all)."""

    temperature: float = 1.0
    topk: int = 0
    topp: float = 1.0
    seed: int = 1


@torch.inference_mode()
def sample(
    model: Searchable,
    src: Tensor,
    src_lengths: Tensor,
    *,
    samples: int = 1,
    sampling: Sampling | None = None,
    length_penalty: float = 0.0,
    max_len_a: float = 1.5,
    max_len_b: float = 10,
    max_output_len: int | None = None,
    return_attention: bool = False,
    generator: torch.Generator | None = None,
    no_repeat_ngram_size: int = 0,
    prefix: list[list[int]] | None = None,
    prefix_ends_word: list[bool] | None = None,
    word_starts: Tensor | None = None,
    prefix_spellings: list[Spelling | None] | None = None,
) -> list[list[Hypothesis]]:
    """`samples` independent random translations per sentence (as for back-translation), best
    first. Scores are the model's own log-probs (not the tempered ones) / lp(length), as the other
    searches score. `generator` (default: seeded with sampling.seed) makes the draws repeatable.
    `prefix`: per sentence, the target ids every sample must begin with ([] for none);
    `prefix_ends_word` / `word_starts`: which prefixes end with a whole word;
    `prefix_spellings`: per sentence, characters to spell after its prefix (None for none)."""
    sampling = sampling or Sampling()
    if generator is None:
        generator = torch.Generator(device=src.device).manual_seed(sampling.seed)
    forced = _build_prefix(model, src, prefix, prefix_ends_word, word_starts, prefix_spellings)
    max_lens = _max_lengths(src_lengths, max_len_a, max_len_b, max_output_len, forced).to(src.device)  # (B,)
    select = partial(_select_sample, sampling=sampling, generator=generator)
    beams = _search(model, src, src_lengths, select, k=samples, max_lens=max_lens,
                    return_attention=return_attention, distinct=False, prefix=forced,
                    no_repeat_ngram_size=no_repeat_ngram_size)
    return _finalize(beams, src_lengths, nbest=samples, length_penalty=length_penalty)


def _search(
    model: Searchable,
    src: Tensor,
    src_lengths: Tensor,
    select: Selector,
    *,
    k: int,
    max_lens: Tensor,
    return_attention: bool,
    distinct: bool = True,
    track_coverage: bool = False,
    prefix: TargetPrefix | None = None,
    no_repeat_ngram_size: int = 0,
) -> _Beams:
    """The step loop shared by greedy (k = 1), beam search and sampling; returns the final beams.
    `distinct`: the K hypotheses must differ (beam search), so all but one start at -inf.
    `track_coverage`: sum each hypothesis's attention, for a coverage penalty in the final ranking.
    `prefix`: the tokens each sentence's hypotheses must begin with.
    `no_repeat_ngram_size`: n > 0 bans repeating an n-gram of a hypothesis's own tokens."""
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size}")
    b = src.size(0)
    state = model.encode(src, src_lengths)
    if k > 1:
        to_beams = torch.arange(b, device=src.device).repeat_interleave(k)  # (B*K,)
        state = model.reorder_state(state, to_beams)
    beams = _start(b, k, src.device, src.size(1) if return_attention else None, distinct)
    if track_coverage:
        beams.coverage = torch.zeros(b, k, src.size(1), device=src.device)  # (B, K, S)
    prev = torch.full((b * k,), model.bos_id, dtype=torch.long, device=src.device)  # (B*K,)
    for step in range(int(max_lens.max()) + 1):  # + 1 for the forced EOS; host sync before the loop
        log_probs, state, attn = model.decode_step(prev, state)  # (B*K, V), (B*K, S)
        must_end = step >= max_lens[:, None]  # (B, 1)
        candidates = _candidates(model, log_probs.view(b, k, -1), beams, must_end)  # (B, K, V)
        if no_repeat_ngram_size and step >= no_repeat_ngram_size:  # Python numbers: no host sync
            free = ~beams.finished if prefix is None else ~beams.finished & prefix.done(step, k)  # (B, K)
            ban_repeated_ngrams_(candidates, beams.tokens, no_repeat_ngram_size, free)
        if prefix is not None and step <= prefix.last_step:  # Python numbers: no host sync
            prefix.restrict(candidates, step)
        candidate_lengths = beams.lengths + (~beams.finished).long()  # (B, K)
        if beams.coverage is not None:
            # This step's attention counts for the hypotheses still alive: it produced their token.
            step_weights = attn.view(b, k, -1).float() * (~beams.finished)[..., None]  # (B, K, S)
            beams.coverage = beams.coverage + step_weights  # (B, K, S), rows not yet reordered
        parent, token = select(candidates, candidate_lengths)  # (B, K), (B, K)
        if prefix is not None:
            prefix.advance(parent, token, step)
        beams = _advance(beams, parent, token, candidates, candidate_lengths, attn, model.eos_id)
        if k > 1:  # with one hypothesis per sentence the parent is always the row itself
            state = model.reorder_state(state, _flat_rows(parent))
        prev = token.view(-1)  # (B*K,)
        if beams.finished.all():  # the one host sync per step
            break
    return beams


def _start(b: int, k: int, device: torch.device, src_len: int | None, distinct: bool = True) -> _Beams:
    """K copies of the empty prefix; when `distinct`, all but the first start at -inf so the first
    step's topk picks K distinct tokens instead of K copies of the best one."""
    scores = torch.full((b, k), -math.inf if distinct else 0.0, device=device)  # (B, K)
    scores[:, 0] = 0.0
    attention = None if src_len is None else torch.zeros(b, k, 0, src_len, device=device)  # (B, K, 0, S)
    return _Beams(
        scores=scores,
        lengths=torch.zeros(b, k, dtype=torch.long, device=device),  # (B, K)
        finished=torch.zeros(b, k, dtype=torch.bool, device=device),  # (B, K)
        tokens=torch.zeros(b, k, 0, dtype=torch.long, device=device),  # (B, K, 0)
        attention=attention,
    )


def _candidates(model: Searchable, log_probs: Tensor, beams: _Beams, must_end: Tensor) -> Tensor:
    """Score of every (hypothesis, next token) pair: the hypothesis score plus the token's log-prob,
    restricted to the allowed continuations: never pad or BOS, only EOS once a sentence is at its
    length limit, and only pad at cost 0 after a hypothesis has finished.

    log_probs (B, K, V), beams with finished and scores (B, K), must_end (B, 1) -> (B, K, V).
    One new (B, K, V) tensor, then in-place updates: at a vocabulary of thousands these full passes
    cost as much as the model's own step on a CPU.
    """
    vocab = torch.arange(log_probs.size(-1), device=log_probs.device)  # (V,)
    banned = (vocab == model.pad_id) | (vocab == model.bos_id)  # (V,)
    banned = banned | (must_end[..., None] & (vocab != model.eos_id))  # (B, 1, V)
    candidates = log_probs.masked_fill(banned, -math.inf)  # (B, K, V)
    candidates.masked_fill_(beams.finished[..., None], -math.inf)  # finished: only pad, set next
    candidates[..., model.pad_id] = torch.zeros_like(beams.scores).masked_fill_(~beams.finished, -math.inf)
    return candidates.add_(beams.scores[..., None])  # (B, K, V)


def _select_greedy(candidates: Tensor, candidate_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Best token of the single hypothesis per sentence. candidates (B, 1, V)."""
    token = candidates.argmax(dim=-1)  # (B, 1)
    return torch.zeros_like(token), token


def _select_topk(
    candidates: Tensor, candidate_lengths: Tensor, *, length_penalty: float
) -> tuple[Tensor, Tensor]:
    """K best (hypothesis, token) pairs per sentence by length-normalised score.

    candidates (B, K, V), candidate_lengths (B, K) -> parent beam (B, K), token (B, K)
    """
    b, k, v = candidates.shape
    penalty = _length_penalty(candidate_lengths.to(candidates.dtype), length_penalty)  # (B, K)
    ranked = (candidates / penalty[..., None]).view(b, k * v)  # (B, K*V)
    best = ranked.topk(k, dim=1).indices  # (B, K) indices into K*V
    return best // v, best % v


def _select_sample(
    candidates: Tensor, candidate_lengths: Tensor, *, sampling: Sampling, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One drawn token per hypothesis, which stays its own parent.

    candidates (B, K, V) -> parent beam (B, K), token (B, K). A row's candidates are its score plus
    the token log-probs, and softmax ignores the constant score: it gives the model's distribution.
    A finished hypothesis has one candidate left (pad), so it draws pad.
    """
    b, k, v = candidates.shape
    logits = candidates.view(b * k, v)  # (B*K, V)
    # Tempered with the best token at 0 and the temperature within the dtype's range, so that any
    # temperature > 0 draws: 1e-300 (0 in float32) gave 0/0 and 1e300 (inf) -inf/inf, NaN
    # probabilities and a traceback; now they draw as greedy search and uniformly.
    finfo = torch.finfo(logits.dtype)
    temperature = min(max(sampling.temperature, finfo.tiny), finfo.max)
    logits = (logits - logits.max(dim=1, keepdim=True).values) / temperature  # (B*K, V)
    if 0 < sampling.topk < v:
        kth_best = logits.topk(sampling.topk, dim=1).values[:, -1:]  # (B*K, 1)
        logits = logits.masked_fill(logits < kth_best, -math.inf)
    if sampling.topp < 1.0:
        sorted_logits, order = logits.sort(dim=1, descending=True)  # (B*K, V)
        probs = sorted_logits.softmax(dim=1)  # (B*K, V)
        # Keep each token whose more likely tokens hold less than topp: the most likely always stays.
        drop_sorted = probs.cumsum(dim=1) - probs >= sampling.topp  # (B*K, V), in sorted order
        # topp below float32's smallest (1e-300) is 0 here: the comparison above would drop every token.
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # (B*K, V), in vocabulary order
        logits = logits.masked_fill(drop, -math.inf)
    token = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).view(b, k)  # (B, K)
    parent = torch.arange(k, device=candidates.device).expand(b, k)  # (B, K)
    return parent, token


def _advance(
    beams: _Beams,
    parent: Tensor,
    token: Tensor,
    candidates: Tensor,
    candidate_lengths: Tensor,
    attn: Tensor,
    eos_id: int,
) -> _Beams:
    """Beams after appending `token` to hypothesis `parent` in every slot.

    parent, token (B, K); candidates (B, K, V); candidate_lengths (B, K); attn (B*K, S)
    """
    b, k, v = candidates.shape
    rows = _flat_rows(parent)  # (B*K,)
    tokens = torch.cat([_take_rows(beams.tokens, rows), token[..., None]], dim=2)  # (B, K, T+1)
    attention = None
    if beams.attention is not None:
        step_attention = attn.view(b, k, 1, -1).to(beams.attention.dtype)  # (B, K, 1, S)
        history = torch.cat([beams.attention, step_attention], dim=2)  # (B, K, T+1, S)
        attention = _take_rows(history, rows)  # (B, K, T+1, S)
    return _Beams(
        scores=candidates.view(b, k * v).gather(1, parent * v + token),  # (B, K)
        lengths=candidate_lengths.gather(1, parent),  # (B, K)
        finished=beams.finished.gather(1, parent) | (token == eos_id),  # (B, K)
        tokens=tokens,
        attention=attention,
        coverage=None if beams.coverage is None else _take_rows(beams.coverage, rows),  # (B, K, S)
    )


def _flat_rows(parent: Tensor) -> Tensor:
    """Beam indices (B, K) within each sentence -> row indices (B*K,) among all B*K hypotheses."""
    b, k = parent.shape
    offsets = torch.arange(b, device=parent.device)[:, None] * k  # (B, 1)
    return (parent + offsets).view(-1)  # (B*K,)


def _take_rows(x: Tensor, rows: Tensor) -> Tensor:
    """x (B, K, ...) with hypothesis i replaced by old hypothesis rows[i] (over the flat B*K rows)."""
    return x.flatten(0, 1)[rows].view(x.shape)  # (B, K, ...)


def _finalize(
    beams: _Beams, src_lengths: Tensor, *, nbest: int, length_penalty: float, coverage_beta: float = 0.0
) -> list[list[Hypothesis]]:
    """Best `nbest` hypotheses per sentence, best first (host syncs happen here, once)."""
    penalty = _length_penalty(beams.lengths.to(beams.scores.dtype), length_penalty)  # (B, K)
    normalised = beams.scores / penalty  # (B, K)
    if coverage_beta and beams.coverage is not None:
        src_mask = source_mask(src_lengths.to(beams.coverage.device), beams.coverage.size(-1))  # (B, S)
        normalised = normalised + coverage_penalty(beams.coverage, src_mask, coverage_beta).to(normalised.dtype)
    order = normalised.argsort(dim=1, descending=True, stable=True)[:, :nbest]  # (B, N)
    scores, lengths, tokens = normalised.tolist(), beams.lengths.tolist(), beams.tokens.tolist()
    attention = None if beams.attention is None else beams.attention.to("cpu", torch.float32)
    results = []
    for i, (best, src_len) in enumerate(zip(order.tolist(), src_lengths.tolist(), strict=True)):
        hyps = [
            Hypothesis(
                tokens=tokens[i][j][: lengths[i][j] - 1],
                score=scores[i][j],
                attention=None if attention is None else attention[i, j, : lengths[i][j], :src_len].clone(),
            )
            for j in best
        ]
        results.append([h for h in hyps if h.score > -math.inf] or hyps[:1])
    return results


def _length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT length penalty ((5 + L) / 6) ** alpha of float lengths L; alpha = 0 gives 1.

    Capped at the dtype's largest number: an overflow to inf would make the scores of masked
    candidates (-inf / inf) NaN (alpha=60 did; the commands allow alpha up to 10)."""
    return (((5.0 + lengths) / 6.0) ** alpha).clamp(max=torch.finfo(lengths.dtype).max)


def _build_prefix(model: Searchable, src: Tensor, prefix, ends_word, word_starts, spellings) -> TargetPrefix | None:
    return TargetPrefix.build(prefix, batch=src.size(0), pad_id=model.pad_id, eos_id=model.eos_id,
                              special={model.pad_id, model.bos_id, model.eos_id}, device=src.device,
                              ends_word=ends_word, word_starts=word_starts, spellings=spellings)


def _max_lengths(src_lengths: Tensor, max_len_a: float, max_len_b: float, max_output_len: int | None = None,
                 prefix: TargetPrefix | None = None) -> Tensor:
    """Most tokens (before EOS) each sentence may produce: floor(a * src_len + b), at most
    `max_output_len` (None: no cap), but at least its prefix's length (and one token per character it
    must spell), so that a long prefix is never cut by a forced EOS. (B,) long."""
    limits = torch.floor(src_lengths.double() * max_len_a + max_len_b)  # (B,)
    limits = limits.clamp(min=0, max=max_output_len).long()  # (B,)
    if prefix is None:
        return limits
    return torch.maximum(limits, prefix.min_lengths.to(limits.device))  # (B,)


def _pad_targets(tgt: list[list[int]], eos_id: int, pad_id: int, device: torch.device) -> Tensor:
    """Target id lists -> (B, T) tensor with EOS appended and pad after it; T = longest + 1."""
    width = max(len(t) for t in tgt) + 1
    rows = [t + [eos_id] + [pad_id] * (width - len(t) - 1) for t in tgt]
    return torch.tensor(rows, dtype=torch.long, device=device)  # (B, T)
