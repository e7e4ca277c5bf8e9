"""A tiny deterministic attention RNN implementing the search protocol, for search tests.

It depends on nothing in `nmt`: random but fixed weights (seeded), float64 so that batched and
single-sentence runs agree to rounding, and a call counter to check when search stops.
"""

from __future__ import annotations

import torch
from torch import Tensor

State = dict[str, Tensor]


class ToyModel:
    """h_t = tanh(h_{t-1} W + E[y_{t-1}]); dot attention over the masked source encodings;
    log_probs = log_softmax([h_t; context] O + bias). `eos_bias` shifts the EOS logit."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(
        self,
        vocab_size: int = 7,
        src_vocab_size: int = 9,
        hidden: int = 8,
        seed: int = 0,
        eos_bias: float = 0.0,
    ):
        g = torch.Generator().manual_seed(seed)

        def rand(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=torch.float64)

        self.vocab_size = vocab_size
        self.src_embed = rand(src_vocab_size, hidden)  # (Vs, H)
        self.tgt_embed = rand(vocab_size, hidden)  # (V, H)
        self.recurrent = rand(hidden, hidden) / hidden**0.5  # (H, H)
        self.output = 1.5 * rand(2 * hidden, vocab_size) / hidden**0.5  # (2H, V)
        self.bias = torch.zeros(vocab_size, dtype=torch.float64)  # (V,)
        self.bias[self.eos_id] = eos_bias
        self.decode_calls = 0

    def encode(self, src: Tensor, src_lengths: Tensor) -> State:
        mask = torch.arange(src.size(1))[None] < src_lengths[:, None]  # (B, S)
        enc = torch.tanh(self.src_embed[src])  # (B, S, H)
        h = (enc * mask[..., None]).sum(1) / src_lengths[:, None]  # (B, H)
        return {"h": h, "enc": enc, "mask": mask}

    def decode_step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State, Tensor]:
        self.decode_calls += 1
        h = torch.tanh(state["h"] @ self.recurrent + self.tgt_embed[prev_tokens])  # (B, H)
        energies = (state["enc"] @ h[..., None]).squeeze(-1)  # (B, S)
        weights = energies.masked_fill(~state["mask"], float("-inf")).softmax(-1)  # (B, S)
        context = (weights[..., None] * state["enc"]).sum(1)  # (B, H)
        logits = torch.cat([h, context], -1) @ self.output + self.bias  # (B, V)
        return logits.log_softmax(-1), {**state, "h": h}, weights

    def reorder_state(self, state: State, index: Tensor) -> State:
        return {name: value[index] for name, value in state.items()}


def score_by_hand(model: ToyModel, src: list[int], tokens: list[int]) -> tuple[float, Tensor]:
    """Sum of log-probs of tokens + EOS and the attention rows, one sentence, one step at a time."""
    state = model.encode(torch.tensor([src]), torch.tensor([len(src)]))
    total, rows = 0.0, []
    for prev, gold in zip([model.bos_id, *tokens], [*tokens, model.eos_id], strict=True):
        log_probs, state, attn = model.decode_step(torch.tensor([prev]), state)
        total += float(log_probs[0, gold])
        rows.append(attn[0])
    return total, torch.stack(rows)


def pad_batch(sentences: list[list[int]], pad_id: int = ToyModel.pad_id) -> tuple[Tensor, Tensor]:
    """Id lists -> padded (B, S) tensor and lengths (B,)."""
    width = max(len(s) for s in sentences)
    src = torch.tensor([s + [pad_id] * (width - len(s)) for s in sentences])  # (B, S)
    return src, torch.tensor([len(s) for s in sentences])  # (B,)
