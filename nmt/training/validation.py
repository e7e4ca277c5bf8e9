"""Validation: loss and perplexity under teacher forcing, BLEU and chrF of the greedy (or beam-search)
output, attention statistics of that output, and the attention of a few sentences for plots."""

import math
from dataclasses import dataclass, field

import torch

from nmt.analysis.attention_stats import AttentionStatistics, corpus_statistics
from nmt.data.batching import collate, longest_side, sort_by_length_batches
from nmt.data.tokenizer import EOS, PAD, Tokenizers
from nmt.inference.batching import search_many
from nmt.inference.metrics import bleu_score, chrf_score
from nmt.training.loss import label_smoothed_nll

# trainer.best_metric: the validation figure that decides best.pt, kept checkpoints, early stopping and
# the plateau schedule.
METRIC_NAMES = {"bleu": "BLEU", "chrf": "chrF", "loss": "validation loss"}


def metric_score(metric: str, *, loss: float, bleu: float, chrf: float) -> float:
    """The figure `metric` names as a score where higher is better (-loss for loss), so that one
    comparison serves every metric."""
    return {"bleu": bleu, "chrf": chrf, "loss": -loss}[metric]


def metric_value(metric: str, score: float) -> float:
    """A metric_score back in the metric's own units (the loss, not its negative)."""
    return -score if metric == "loss" else score


def metric_text(metric: str, value: float) -> str:
    """A metric's value as the log shows it: 'BLEU 27.54', 'chrF 50.12' or 'loss 2.333'."""
    return f"loss {value:.3f}" if metric == "loss" else f"{METRIC_NAMES[metric]} {value:.2f}"


@dataclass
class ValidationData:
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    references: list[str]  # detokenized target text, as a user would compare against


@dataclass
class ValidationResult:
    loss: float       # mean token NLL without label smoothing
    ppl: float
    bleu: float
    chrf: float
    hypotheses: list[str]
    attention: list[tuple[list[str], list[str], torch.Tensor]] = field(default_factory=list)
    # for the first few sentences: (source pieces, target pieces, weights (T, S))
    attention_stats: AttentionStatistics | None = None  # over the greedy output of every sentence


def long_pairs_warning(data: ValidationData, batch_tokens: int) -> str | None:
    """A warning for validation pairs that no training batch could hold (a side longer than
    nmt.data.batching.longest_side): data.max_len and the batch budget filter the training split only, so
    every validation decodes them in full, each as long as 1.5 x its length (one of 20,000 words:
    minutes, and gigabytes for its logits)."""
    sides = [max(len(s), len(t)) for s, t in zip(data.src_ids, data.tgt_ids, strict=True)]
    too_long = [n for n in sides if n > longest_side(batch_tokens)]
    if not too_long:
        return None
    return (f"{len(too_long):,} of {len(sides):,} validation pairs are longer than one batch of "
            f"trainer.batch_tokens={batch_tokens} holds (the longest: {max(too_long):,} subword tokens); every "
            "validation decodes them in full, which may take long or run out of memory: shorten or drop them in "
            "the validation data (data.max_len filters the training split only)")


@torch.inference_mode()
def validation_loss(model, data: ValidationData, batch_tokens: int, device) -> float:
    model.eval()
    total, tokens = 0.0, 0
    lengths = [max(len(s), len(t)) + 1 for s, t in zip(data.src_ids, data.tgt_ids, strict=True)]
    for positions in sort_by_length_batches(lengths, 10**9, batch_tokens):
        batch = collate([data.src_ids[i] for i in positions], [data.tgt_ids[i] for i in positions],
                        positions).to(device)
        real = batch.tgt_out != PAD  # (B, T)
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in, real)  # (N, V)
        total += label_smoothed_nll(logits, batch.tgt_out[real]).item()
        tokens += batch.n_tgt_tokens
    return total / max(tokens, 1)


def validate(model, data: ValidationData, tokenizers: Tokenizers, *, batch_tokens: int, batch_sentences: int,
             max_len_b: int, plot_sentences: int, device, beam_size: int = 1) -> ValidationResult:
    """`beam_size` 1: greedy output; K > 1: beam search with the commands' default length penalty (1.0),
    so that validation BLEU is the figure `nmt-evaluate beam_size=K` would give."""
    loss = validation_loss(model, data, batch_tokens, device)
    hyps = search_many(model, data.src_ids, beam_size=beam_size, length_penalty=1.0, max_len_b=max_len_b,
                       return_attention=True, batch_sentences=batch_sentences, device=device)
    best = [nbest[0] if nbest else None for nbest in hyps]
    texts = tokenizers.tgt.decode([h.tokens if h else [] for h in best])
    pieces = [(tokenizers.src.ids_to_pieces(src + [EOS]), tokenizers.tgt.ids_to_pieces(h.tokens + [EOS]))
              if h is not None else None for src, h in zip(data.src_ids, best, strict=True)]
    stats = corpus_statistics((h.attention, *p) for h, p in zip(best, pieces, strict=True) if h is not None)
    attention = [(*pieces[i], best[i].attention) for i in range(min(plot_sentences, len(best)))
                 if best[i] is not None]
    return ValidationResult(loss=loss, ppl=math.exp(min(loss, 50.0)), bleu=bleu_score(texts, data.references),
                            chrf=chrf_score(texts, data.references), hypotheses=texts, attention=attention,
                            attention_stats=stats)
