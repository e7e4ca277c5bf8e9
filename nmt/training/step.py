"""One training update: the forward over the positions whose logits count, the token-level loss
(label-smoothed cross-entropy, plus R-Drop's agreement term or minimum risk training's expected cost
when they are on), the backward over this rank's accumulated batches, clipping and the optimizer step.
The loop around it is `nmt.training.trainer`."""

import contextlib
import math

import torch

from nmt.data.batching import Batch
from nmt.data.tokenizer import PAD
from nmt.training.distributed import ONE_PROCESS, World
from nmt.training.loss import label_smoothed_nll
from nmt.training.rdrop import stacked_twice, symmetric_kl
from nmt.training.risk import RiskObjective
from nmt.training.runtime import autocast_context

# oneDNN builds a primitive for every new size of a matrix product: 2-14 ms at its first call on the
# AMX Xeon of BENCHMARKS.md's ninth round, 0.3-3 ms after. The output layer's rows are the batch's
# target tokens, a new count at nearly every update; rounded up to a multiple of this with padding
# positions (whose PAD targets the loss ignores), they come in a few sizes: +10% bf16 training there.
OUTPUT_ROWS_MULTIPLE = 128


def output_positions(real: torch.Tensor) -> torch.Tensor:
    """real (B, T) bool, True on real target tokens -> the positions whose logits a training step
    computes: on a CPU, the real ones plus the first padding positions that round their count up to
    a multiple of OUTPUT_ROWS_MULTIPLE (as many as the batch has); elsewhere `real` itself."""
    missing = -int(real.sum()) % OUTPUT_ROWS_MULTIPLE if real.device.type == "cpu" else 0
    if missing == 0:
        return real
    flat = real.flatten().clone()  # (B * T,)
    flat[(~flat).nonzero()[:missing, 0]] = True
    return flat.view_as(real)


def token_objective(model, batch: Batch, tcfg, device) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (objective, loss), fp32 scalars summed over the batch's real target tokens: the token-level
    objective to differentiate, and the label-smoothed cross-entropy it contains, to report.
    They are the same tensor unless `trainer.rdrop_alpha` adds R-Drop's agreement term (nmt.training.rdrop)."""
    rows = output_positions(batch.tgt_out != PAD)  # (B, T): real tokens (+ padding on a CPU)
    alpha = tcfg.get("rdrop_alpha") or 0.0  # absent from configs older than the option
    if not alpha:
        with autocast_context(device, tcfg.precision):
            logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in, rows)  # (N, V)
        # The loss is computed in fp32 and summed over real target tokens (padding rows are ignored),
        # not sentences. The logits are read no more: their gradient may take their memory (overwrite).
        summed = label_smoothed_nll(logits, batch.tgt_out[rows], tcfg.label_smoothing, overwrite=True,
                                    ignore_index=PAD)
        return summed, summed
    twice = stacked_twice(batch)  # (2B, ...): each copy draws its own dropout masks
    with autocast_context(device, tcfg.precision):
        # Rows [0, N) of the logits are the first copy's positions, [N, 2N) the same ones of the second.
        logits, _ = model(twice.src, twice.src_lengths, twice.tgt_in, torch.cat([rows, rows]))  # (2N, V)
    target = batch.tgt_out[rows]  # (N,)
    # The mean of the two copies' losses; no overwrite: the agreement term reads the logits too.
    summed = label_smoothed_nll(logits, torch.cat([target, target]), tcfg.label_smoothing,
                                ignore_index=PAD) / 2
    agreement = symmetric_kl(logits, (target != PAD).float())
    return summed + alpha / 2 * agreement, summed


def train_step(model, optimizer, batches, tcfg, device, weights=None, total_tokens=None,
               world: World = ONE_PROCESS, risk: RiskObjective | None = None,
               total_sentences: int | None = None) -> tuple[float, float]:
    """One update on `batches` (one Batch, or this rank's list of them: gradient accumulation);
    returns the loss per target token of the whole update (all ranks) and the gradient norm.

    The summed loss is divided by `total_tokens` (default: the tokens of `batches`), the target tokens
    of every batch of the update on every rank, so the gradient is that of one batch holding them all.
    `weights` (default 1) is 0 for a rank's stand-in batch. A NaN/Inf loss or gradient norm skips the
    update (the weights and optimizer state stay as they were); the caller sees it in the values.
    With `risk` (minimum risk training), the objective is (1 - w) x that loss + w x the expected cost
    per sentence, over `total_sentences` (default: the sentences of `batches`); the returned loss
    stays the token-level one, comparable with a run without it.
    """
    batches = [batches] if isinstance(batches, Batch) else batches
    weights = weights or [1.0] * len(batches)
    total_tokens = total_tokens or sum(b.n_tgt_tokens for b in batches)
    total_sentences = total_sentences or sum(len(b) for b in batches)
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=device)
    for i, (batch, weight) in enumerate(zip(batches, weights, strict=True)):
        last = i == len(batches) - 1
        # Only the last accumulated batch all-reduces the gradients (DDP's no_sync skips the others).
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            objective, summed = token_objective(model, batch, tcfg, device)
            objective, summed = objective * weight, summed * weight
            # DDP averages gradients over ranks; the factor world.size turns the average into the sum.
            token_loss = objective * world.size / total_tokens
            (token_loss if risk is None else token_loss * (1.0 - risk.weight)).backward()
            if risk is not None:  # a second forward and backward, on the model's own candidates
                expected = risk.risk(model, getattr(model, "module", model), batch,
                                     lambda: autocast_context(device, tcfg.precision)) * weight
                (expected * (risk.weight * world.size / total_sentences)).backward()
        loss_sum += summed.detach()
    loss = (world.sum(loss_sum) / total_tokens).item()
    if not math.isfinite(loss):
        optimizer.zero_grad(set_to_none=True)
        return loss, math.nan
    max_norm = tcfg.clip_grad_norm or math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if torch.isfinite(grad_norm):
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)  # the skipped update's gradients are of no use
    return loss, grad_norm.item()
