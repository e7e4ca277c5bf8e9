"""Attention mechanisms behind one interface, chosen by name from a registry.

Every variant is called as ``forward(query, keys, values, mask) -> (context, weights)``. The decoder
calls ``precompute_keys`` once per sentence on the encoder states and passes the result as ``keys`` at
every step, so work that depends only on the source (key projections) is not repeated per target word.

Scores are batched matrix products over (B, Tq, d) x (B, d, S), normalised by a softmax over source
positions in which padding is set to -inf, so padded positions get a weight of exactly 0. The context is
the batched product ``weights @ values``. Every sentence must hold at least one real token.
"""

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.errors import ConfigError
from nmt.models.additive_scores import SummedKeys, additive_scores, step_scores
from nmt.models.deferred import StepProduct
from nmt.models.fusion import fusion_enabled
from nmt.values import is_int

_REGISTRY: dict[str, type["Attention"]] = {}


def register_attention(name: str):
    """Class decorator: make an ``Attention`` subclass buildable as ``build_attention(name, ...)``."""

    def wrap(cls: type["Attention"]) -> type["Attention"]:
        if name in _REGISTRY:
            raise ValueError(f"attention '{name}' is registered twice")
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_attentions() -> list[str]:
    """The registered attention names, sorted."""
    return sorted(_REGISTRY)


def build_attention(name: str, query_dim: int, key_dim: int, **options) -> "Attention":
    """Build the attention registered as ``name``; a wrong name or option raises ``ConfigError``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown attention '{name}'; choose one of: {', '.join(available_attentions())}")
    cls = _REGISTRY[name]
    _positive_int(name, "query_dim", query_dim)
    _positive_int(name, "key_dim", key_dim)
    # The options of a variant are the keyword arguments of its constructor beyond the two sizes.
    valid = list(inspect.signature(cls.__init__).parameters)[3:]
    for option in options:
        if option not in valid:
            raise ConfigError(
                f"attention '{name}' has no option '{option}'; valid options: {', '.join(valid) or '(none)'}"
            )
    return cls(query_dim, key_dim, **options)


def _positive_int(attention: str, option: str, value) -> int:
    if not (is_int(value) and value > 0):
        raise ConfigError(f"attention '{attention}': {option} must be a positive integer, got {value!r}")
    return value


@dataclass
class SequenceProducts:
    """What an attention applies at every step of one teacher-forced sequence, with the gradients
    summed once per sequence: as `StepProduct`s (nmt/models/deferred.py) the weighted sum over the
    encoder states and the query projection where the variant has one; the keys of the additive
    scores on a CPU (`SummedKeys`, nmt/models/additive_scores.py), else None."""

    values: StepProduct
    query: StepProduct | None
    keys: SummedKeys | None = None


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis with ``mask == False`` positions forced to exactly 0.

    ``mask`` must broadcast against ``scores``; True marks a real token.
    """
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Attention(nn.Module):
    """Base class: scores each query against every key and averages the values with the softmax weights.

    Subclasses implement ``score`` (and ``precompute_keys`` when keys can be projected once). The size
    of the returned context is ``self.context_dim``: ``key_dim`` unless a subclass sets otherwise.
    """

    sums_keys = False  # whether step loops hand the keys to `_additive` as `SummedKeys`

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.context_dim = key_dim

    def query_weight(self) -> Tensor | None:
        """The (A, query_dim) weight, stored as nn.Linear stores it, that the scores apply to the query
        at every step (no bias), or None."""
        return None

    def sequence_products(self, keys: Tensor, values: Tensor) -> SequenceProducts:
        """keys = ``precompute_keys(...)`` (B, S, *), values (B, S, key_dim) -> the products of a step
        loop over one batch (``forward(products=)``)."""
        query = self.query_weight()
        # Eagerly the summed form's fp32 backward costs what it saves (measured: the same tokens/s).
        summed = self.sums_keys and keys.device.type == "cpu" and fusion_enabled()
        return SequenceProducts(values=StepProduct(values), query=None if query is None else StepProduct(query.t()),
                                keys=SummedKeys(keys) if summed else None)

    def _project_query(self, query: Tensor, products: SequenceProducts | None) -> Tensor:
        """query (B, Tq, query_dim) -> W query (B, Tq, A), W = ``query_weight()``, through ``products``
        when given."""
        if products is not None and products.query is not None:
            return products.query(query)
        return F.linear(query, self.query_weight())

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """(B, S, key_dim) encoder states -> whatever ``forward`` takes as ``keys``.

        Called once per sentence before decoding, so source-only work (e.g. the W_k k projection of
        additive attention) is not repeated at each target step. Default: identity.
        """
        return keys

    def score(self, query: Tensor, keys: Tensor, products: SequenceProducts | None = None) -> Tensor:
        """query (B, Tq, query_dim), precomputed keys (B, S, *) -> unnormalised scores (B, Tq, S)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor,
                products: SequenceProducts | None = None) -> tuple[Tensor, Tensor]:
        """Attend from each query over the source.

        query (B, Tq, query_dim); keys = ``precompute_keys(encoder states)`` (B, S, *); values
        (B, S, key_dim) raw encoder states; mask (B, S) bool, True = real token, False = padding;
        ``products``: ``sequence_products(values)`` inside a teacher-forced step loop (its values
        product then replaces ``values``), else None.
        Returns context (B, Tq, context_dim) and weights (B, Tq, S), rows summing to 1 over unmasked
        positions and exactly 0 on padding.
        """
        weights = masked_softmax(self.score(query, keys, products), mask[:, None, :])  # (B, Tq, S)
        # The StepProduct is the same batched product, with the states' gradient summed at the end.
        context = torch.bmm(weights, values) if products is None else products.values(weights)
        return context, weights  # (B, Tq, key_dim), (B, Tq, S)


def _additive(query_part: Tensor, keys: Tensor, v: Tensor, products: SequenceProducts | None) -> Tensor:
    """vᵀ tanh(query_part + keys) (B, Tq, S), in a step loop through its `SummedKeys`."""
    if products is not None and products.keys is not None:
        return step_scores(query_part, products.keys, v)
    return additive_scores(query_part, keys, v)


@register_attention("additive")
class AdditiveAttention(Attention):
    """Bahdanau et al. (2015): score(q, k) = vᵀ tanh(W_q q + W_k k); W_k k is precomputed.

    ``hidden_size`` is the width A of the tanh layer (default: query_dim).
    """

    sums_keys = True

    def __init__(self, query_dim: int, key_dim: int, hidden_size: int | None = None):
        super().__init__(query_dim, key_dim)
        hidden_size = (
            query_dim if hidden_size is None else _positive_int("additive", "hidden_size", hidden_size)
        )
        self.query_proj = nn.Linear(query_dim, hidden_size, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, A)

    def query_weight(self) -> Tensor:
        return self.query_proj.weight  # (A, query_dim)

    def score(self, query: Tensor, keys: Tensor, products: SequenceProducts | None = None) -> Tensor:
        return _additive(self._project_query(query, products), keys, self.v.weight, products)


@register_attention("concat")
class ConcatAttention(Attention):
    """Luong et al. (2015) "concat": score(q, k) = v_aᵀ tanh(W_a [q; k] + b).

    W_a applied to the concatenation [q; k] equals W_q q + W_k k, where W_q and W_k are the column
    blocks of W_a acting on q and on k. The parameter is kept as the single matrix W_a of the paper,
    but its key block (with the bias) is applied once per sentence in ``precompute_keys`` and only the
    query block at each step. This is the additive form above with a bias inside the tanh.
    """

    sums_keys = True

    def __init__(self, query_dim: int, key_dim: int, hidden_size: int | None = None):
        super().__init__(query_dim, key_dim)
        hidden_size = (
            query_dim if hidden_size is None else _positive_int("concat", "hidden_size", hidden_size)
        )
        self.W_a = nn.Linear(query_dim + key_dim, hidden_size, bias=True)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        key_block = self.W_a.weight[:, self.query_dim :]  # (A, key_dim)
        return F.linear(keys, key_block, self.W_a.bias)  # (B, S, A)

    def query_weight(self) -> Tensor:
        return self.W_a.weight[:, : self.query_dim]  # (A, query_dim), the query block

    def score(self, query: Tensor, keys: Tensor, products: SequenceProducts | None = None) -> Tensor:
        return _additive(self._project_query(query, products), keys, self.v.weight, products)


@register_attention("dot")
class DotAttention(Attention):
    """Luong et al. (2015) "dot": score(q, k) = qᵀk.

    The dot product needs query_dim == key_dim. When they differ (a bidirectional encoder gives
    key_dim = 2 x hidden) the keys are first mapped to query_dim by a learned linear projection W,
    applied once per sentence in ``precompute_keys``; the score is then qᵀ W k, which is exactly
    ``general`` attention. Values are never projected, so the context keeps size key_dim.
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__(query_dim, key_dim)
        self.key_proj = nn.Identity() if query_dim == key_dim else nn.Linear(key_dim, query_dim, bias=False)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, query_dim)

    def score(self, query: Tensor, keys: Tensor, products: SequenceProducts | None = None) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, Tq, d) x (B, d, S) -> (B, Tq, S)


@register_attention("general")
class GeneralAttention(DotAttention):
    """Luong et al. (2015) "general": score(q, k) = qᵀ W k, with W k precomputed once per sentence."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__(query_dim, key_dim)
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)


@register_attention("scaled_dot")
class ScaledDotAttention(DotAttention):
    """Vaswani et al. (2017): softmax(q kᵀ / sqrt(d)) v, with d = query_dim.

    Keys are projected to query_dim as in ``dot`` when the sizes differ. With equal sizes this equals
    ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])``.
    """

    def score(self, query: Tensor, keys: Tensor, products: SequenceProducts | None = None) -> Tensor:
        return super().score(query, keys) / math.sqrt(self.query_dim)  # (B, Tq, S)


@register_attention("multihead")
class MultiHeadAttention(Attention):
    """Multi-head scaled dot-product attention with d_model = query_dim (Vaswani et al., 2017).

    Queries, keys and values are projected to d_model, split into ``num_heads`` heads (num_heads must
    divide query_dim), attended per head, concatenated and passed through an output projection, so
    context_dim = query_dim. ``precompute_keys`` projects the encoder states to keys *and* values once
    per sentence and returns them concatenated along the last axis (B, S, 2 * d_model); ``forward``
    splits them again and therefore does not read its ``values`` argument (the same encoder states).
    The returned weights are the mean over heads, so rows still sum to 1 and padding stays exactly 0.
    """

    def __init__(self, query_dim: int, key_dim: int, num_heads: int = 4):
        super().__init__(query_dim, key_dim)
        _positive_int("multihead", "num_heads", num_heads)
        if query_dim % num_heads:
            raise ConfigError(
                f"attention 'multihead': num_heads={num_heads} does not divide query_dim={query_dim}"
            )
        self.num_heads = num_heads
        self.context_dim = query_dim
        self.query_proj = nn.Linear(query_dim, query_dim)
        self.key_proj = nn.Linear(key_dim, query_dim)
        self.value_proj = nn.Linear(key_dim, query_dim)
        self.out_proj = nn.Linear(query_dim, query_dim)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        return torch.cat([self.key_proj(keys), self.value_proj(keys)], dim=-1)  # (B, S, 2 * d_model)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.num_heads, D // self.num_heads).transpose(1, 2)  # (B, H, T, D/H)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor,
                products: SequenceProducts | None = None) -> tuple[Tensor, Tensor]:
        B, Tq, D = query.shape
        k, v = keys.split(D, dim=-1)  # (B, S, D) each
        q, k, v = self._split_heads(self.query_proj(query)), self._split_heads(k), self._split_heads(v)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // self.num_heads)  # (B, H, Tq, S)
        weights = masked_softmax(scores, mask[:, None, None, :])  # (B, H, Tq, S)
        heads = (weights @ v).transpose(1, 2).reshape(B, Tq, D)  # (B, H, Tq, D/H) -> (B, Tq, D)
        return self.out_proj(heads), weights.mean(dim=1)  # (B, Tq, D), (B, Tq, S)
