"""Minimum risk training: a sequence-level objective that fine-tunes a trained model towards BLEU.

Token-level cross-entropy trains every step on the reference's prefix, while the model is judged on
its own beam-search output by a sentence-level metric. Minimum risk training (Shen et al., 2016)
closes that gap: for each source x it scores a set U(x) of the model's own candidate translations,
renormalises their sequence probabilities over the set,

    q(u | x) = exp(log p(u | x)) / sum over u' in U(x) of exp(log p(u' | x)),

and minimises the expected cost  R(x) = sum over u of q(u | x) * (1 - sentence BLEU(u, reference) / 100).
Following Edunov et al. (2018), the candidates are the n-best list of a beam search with the current
weights (dropout off), regenerated at every update, and the risk is mixed with the token-level loss,
which keeps the model a good language model: loss = (1 - w) * NLL per token + w * risk per sentence.

The gradient of R moves probability from candidates costlier than the set's average to cheaper ones:
dR/d log p(u) = q(u) * (cost(u) - R). It needs a trained model: at random weights every candidate
costs ~1 and the signal is noise, so it is meant for `init_from` fine-tuning.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from sacrebleu.metrics import BLEU
from torch import Tensor

from nmt.data.batching import Batch, teacher_forcing_pair
from nmt.data.tokenizer import EOS, PAD, SubwordTokenizer
from nmt.inference.batching import evaluation_mode
from nmt.inference.search import beam_search
from nmt.training.loss import label_smoothed_nll

# Smoothed sentence BLEU: with effective order, a short sentence without a matching 4-gram is not
# scored 0 (sacreBLEU's default "exp" smoothing), so short candidates still differ in cost.
_SENTENCE_BLEU = BLEU(effective_order=True)


def sentence_costs(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """1 - sentence BLEU / 100 of each hypothesis against its reference: 0 for a perfect match,
    1 for nothing in common. Detokenized text with sacreBLEU's 13a tokenizer, as evaluation scores."""
    return [1.0 - _SENTENCE_BLEU.sentence_score(hyp, [ref]).score / 100.0
            for hyp, ref in zip(hypotheses, references, strict=True)]


def expected_risk(sequence_log_probs: Tensor, costs: Tensor, present: Tensor) -> Tensor:
    """sequence_log_probs (B, K), costs (B, K), present (B, K) bool (False for a missing candidate)
    -> (B,) the expected cost of each source under the candidates' renormalised probabilities."""
    scores = sequence_log_probs.float().masked_fill(~present, float("-inf"))  # (B, K)
    weights = torch.softmax(scores, dim=1)  # (B, K), 0 where missing
    return (weights * costs.masked_fill(~present, 0.0)).sum(1)  # (B,)


def candidate_targets(candidates: Sequence[Sequence[Sequence[int]]], k: int) -> tuple[Tensor, Tensor, Tensor]:
    """candidates[b] = up to k token lists (no BOS/EOS) for source b -> tgt_in (B*K, T) BOS + tokens,
    tgt_out (B*K, T) tokens + EOS, present (B, K) bool. Row b*K + j holds source b's j-th candidate;
    a missing candidate is an EOS-only row marked absent (it is scored but weighs nothing)."""
    present = _present(candidates, k)  # (B, K)
    rows = [list(nbest[j]) if j < len(nbest) else [] for nbest in candidates for j in range(k)]
    return (*teacher_forcing_pair(rows), present)


def _present(candidates: Sequence[Sequence[Sequence[int]]], k: int) -> Tensor:
    """(B, K) bool: True for the candidates the search found (a beam wider than the search space
    finds fewer than K). Row-major, its True entries are in the order of the flattened n-best lists."""
    return torch.arange(k) < torch.tensor([len(nbest) for nbest in candidates])[:, None]


def risk_surrogate(logits: Tensor, targets: Tensor, sequence_of_row: Tensor, costs: Tensor, present: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """logits (N, V) at the candidates' real target positions, targets (N,), sequence_of_row (N,) the
    candidate (b * K + j) of each position, costs and present (B, K) -> (surrogate, risk (B,)).

    The surrogate, a scalar, has the gradient of risk.sum() in the logits, but costs no fp32 copy of
    them: the gradient of R in a candidate's log-probability is the small (B, K) tensor
    g = q (cost - R); the surrogate is the weighted token loss sum over rows of -g(row's candidate) x
    NLL(row), whose gradient is sum over u of g(u) x d log p(u). `label_smoothed_nll` reads the logits
    once for the rows' losses, which give both the candidates' log-probabilities and the surrogate,
    and its backward writes the gradient over the logits (the training step reads them no more).
    """
    b, k = costs.shape
    nll = label_smoothed_nll(logits, targets, 0.0, overwrite=True, reduction="none")  # (N,) -log p(token)
    log_probs = torch.zeros(b * k, device=logits.device).index_add(0, sequence_of_row, -nll.detach())  # (B*K,)
    log_probs = log_probs.view(b, k).requires_grad_()  # (B, K) a leaf: only its gradient is wanted
    with torch.enable_grad():
        risk = expected_risk(log_probs, costs, present)  # (B,)
        (gradient,) = torch.autograd.grad(risk.sum(), log_probs)  # (B, K)
    row_weights = -gradient.flatten()[sequence_of_row]  # (N,)
    return (nll * row_weights).sum(), risk.detach()


@dataclass
class RiskObjective:
    """The sequence-level part of a training step (trainer.risk_weight > 0).

    weight: w in loss = (1 - w) * NLL + w * risk; candidates: K, the beam size and n-best list size;
    max_len_a, max_len_b: the candidates' length limit, as in validation.
    expected_cost: the mean risk of the last batch, for the training log.
    """

    weight: float
    candidates: int
    tokenizer: SubwordTokenizer
    max_len_a: float = 1.5
    max_len_b: float = 10
    expected_cost: float = field(default=float("nan"))

    def search(self, model, batch: Batch) -> list[list[list[int]]]:
        """The K best translations of each source by beam search with the model in eval mode."""
        with evaluation_mode(model):
            nbest = beam_search(model, batch.src, batch.src_lengths, beam_size=self.candidates,
                                nbest=self.candidates, max_len_a=self.max_len_a, max_len_b=self.max_len_b)
        return [[hyp.tokens for hyp in hyps] for hyps in nbest]

    def costs(self, candidates: list[list[list[int]]], batch: Batch) -> Tensor:
        """(B, K) costs of the candidates against the batch's references (0 where one is missing)."""
        references = self.tokenizer.decode([row[: row.index(EOS)] for row in batch.tgt_out.tolist()])
        flat_texts = self.tokenizer.decode([c for nbest in candidates for c in nbest])
        flat_refs = [ref for ref, nbest in zip(references, candidates, strict=True) for _ in nbest]
        costs = torch.zeros(len(candidates), self.candidates)  # (B, K)
        costs[_present(candidates, self.candidates)] = torch.tensor(sentence_costs(flat_texts, flat_refs))
        return costs

    def risk(self, model, search_model, batch: Batch, autocast) -> Tensor:
        """A scalar whose gradient is that of the summed expected cost of the batch's sources (see
        `risk_surrogate`). `model` is what training calls (maybe a DDP wrapper), `search_model` the
        model itself."""
        with autocast():  # the training precision: in bf16 the search takes 30% less time on the CPU
            candidates = self.search(search_model, batch)
        costs = self.costs(candidates, batch).to(batch.src.device)  # (B, K)
        tgt_in, tgt_out, present = (t.to(batch.src.device) for t in candidate_targets(candidates, self.candidates))
        src = batch.src.repeat_interleave(self.candidates, dim=0)  # (B*K, S)
        src_lengths = batch.src_lengths.repeat_interleave(self.candidates, dim=0)  # (B*K,)
        positions = tgt_out != PAD  # (B*K, T)
        with autocast():
            logits, _ = model(src, src_lengths, tgt_in, positions)  # (N, V)
        rows = positions.nonzero()[:, 0]  # (N,) the candidate row of each position, in logits' order
        surrogate, risk = risk_surrogate(logits, tgt_out[positions], rows, costs, present)
        self.expected_cost = float(risk.mean())
        return surrogate

