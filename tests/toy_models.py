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


def reference_beam_search(model: ToyModel, sentence: list[int], k: int, alpha: float, max_len: int,
                          prefix: list[int] = (), after_prefix: set[int] | None = None, spell: str = "",
                          pieces: list[str] | None = None, no_repeat: int = 0) -> list[tuple[list[int], float]]:
    """Plain-Python beam search over one sentence with the batched search's rules: finished
    hypotheses stay in the beam with frozen score and compete by score / lp(length); EOS forced after
    max_len tokens; while step < len(prefix) the only continuation is prefix[step] (and max_len grows
    to fit the prefix); at step len(prefix), a non-empty prefix's next token must be in `after_prefix`
    when given (a whole-word prefix); after the prefix, until a hypothesis's tokens (as `pieces`) have
    spelled `spell`, a token is allowed only if its piece spells all the rest (and maybe beyond) or
    more of it with a rest that pieces can still spell. With `no_repeat` = n > 0, a hypothesis past
    all of that may not add a token that ends an n-gram its tokens already hold.
    Returns (tokens without EOS, normalised score), best first."""
    def lp(length: int) -> float:
        return ((5 + length) / 6) ** alpha

    words = [t for t in range(model.vocab_size) if t not in (model.pad_id, model.bos_id)]
    max_len = max(max_len, len(prefix))
    max_len = max_len if not spell else max(max_len, len(prefix) + len(spell))
    beam = [([], 0.0, False, model.encode(torch.tensor([sentence]), torch.tensor([len(sentence)])))]
    for step in range(max_len + 1):
        candidates = []
        for tokens, score, done, state in beam:
            if done:
                candidates.append((tokens, score, done, state))
                continue
            log_probs, state, _ = model.decode_step(torch.tensor([([model.bos_id] + tokens)[-1]]), state)
            if step < len(prefix):
                allowed = [prefix[step]]
            else:
                allowed = [model.eos_id] if step == max_len else words
            if after_prefix is not None and prefix and step == len(prefix):
                allowed = [t for t in allowed if t in after_prefix]
            spelled = "".join(pieces[t] for t in tokens[len(prefix):]) if spell else ""
            if spell and step >= len(prefix) and len(spelled) < len(spell):
                rest = spell[len(spelled):]
                allowed = [t for t in allowed if pieces[t] and (pieces[t].startswith(rest) or (
                    rest.startswith(pieces[t]) and can_spell(rest[len(pieces[t]):], pieces)))]
            elif no_repeat and step >= len(prefix):
                allowed = [t for t in allowed if t not in repeated_ngram_ends(tokens, no_repeat)]
            for t in allowed:
                candidates.append((tokens + [t], score + float(log_probs[0, t]), t == model.eos_id, state))
        beam = sorted(candidates, key=lambda c: c[1] / lp(len(c[0])), reverse=True)[:k]
        if all(done for _, _, done, _ in beam):
            break
    return [(tokens[:-1], score / lp(len(tokens))) for tokens, score, _, _ in beam]


def repeated_ngram_ends(tokens: list[int], n: int) -> set[int]:
    """The tokens that would repeat an n-gram of `tokens` if added next."""
    context = tokens[len(tokens) - n + 1:] if n > 1 else []
    return {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i : i + n - 1] == context}


def can_spell(text: str, pieces: list[str]) -> bool:
    """Whether some sequence of the non-empty `pieces` spells `text` (and maybe more), by plain recursion."""
    return not text or any(p and (p.startswith(text) or (text.startswith(p) and can_spell(text[len(p):], pieces)))
                           for p in pieces)
