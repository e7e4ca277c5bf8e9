"""Invariants every attention variant must satisfy, plus each variant's formula checked by hand."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.errors import ConfigError
from nmt.models.attention import Attention, available_attentions, build_attention

NAMES = available_attentions()
QUERY_DIM, KEY_DIM = 8, 12  # different on purpose, like a bidirectional encoder
LENGTHS = [5, 3, 1]  # a batch with different source lengths, one of them maximal


def make(name: str, query_dim: int = QUERY_DIM, key_dim: int = KEY_DIM, **options) -> Attention:
    torch.manual_seed(0)
    return build_attention(name, query_dim, key_dim, **options).double()


def inputs(batch_lengths=LENGTHS, tq=3, query_dim=QUERY_DIM, key_dim=KEY_DIM, seed=1):
    """Random query, encoder states and the padding mask for the given source lengths."""
    gen = torch.Generator().manual_seed(seed)
    B, S = len(batch_lengths), max(batch_lengths)
    query = torch.randn(B, tq, query_dim, generator=gen, dtype=torch.double)
    states = torch.randn(B, S, key_dim, generator=gen, dtype=torch.double)
    mask = torch.arange(S)[None, :] < torch.tensor(batch_lengths)[:, None]  # (B, S)
    return query, states, mask


def attend(attention: Attention, query, states, mask):
    return attention(query, attention.precompute_keys(states), states, mask)


def test_registry_lists_exactly_the_six_names():
    assert available_attentions() == ["additive", "concat", "dot", "general", "multihead", "scaled_dot"]


@pytest.mark.parametrize("name", NAMES)
def test_weights_sum_to_one_over_real_tokens_and_are_exactly_zero_on_padding(name):
    query, states, mask = inputs()
    _, weights = attend(make(name), query, states, mask)
    assert torch.allclose(weights.sum(-1), torch.ones(len(LENGTHS), query.shape[1], dtype=torch.double))
    assert (weights[~mask[:, None, :].expand_as(weights)] == 0).all()
    assert (weights[mask[:, None, :].expand_as(weights)] > 0).all()


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    tq=st.integers(1, 4),
    key_dim=st.sampled_from([4, 8, 12]),
)
def test_weights_are_a_distribution_over_real_tokens_for_any_lengths(name, lengths, tq, key_dim):
    query, states, mask = inputs(lengths, tq=tq, query_dim=8, key_dim=key_dim)
    _, weights = attend(make(name, 8, key_dim), query, states, mask)
    assert torch.allclose(weights.sum(-1), torch.ones(len(lengths), tq, dtype=torch.double))
    assert (weights.masked_select(~mask[:, None, :]) == 0).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch_lengths", [[4], [4, 2, 3]], ids=["batch1", "batch3"])
@pytest.mark.parametrize("tq", [1, 5])
@pytest.mark.parametrize("query_dim,key_dim", [(8, 8), (8, 12)], ids=["same_dims", "different_dims"])
def test_shapes_for_any_batch_size_query_length_and_sizes(name, batch_lengths, tq, query_dim, key_dim):
    attention = make(name, query_dim, key_dim)
    query, states, mask = inputs(batch_lengths, tq, query_dim, key_dim)
    context, weights = attend(attention, query, states, mask)
    B, S = len(batch_lengths), max(batch_lengths)
    assert attention.context_dim == (query_dim if name == "multihead" else key_dim)
    assert context.shape == (B, tq, attention.context_dim)
    assert weights.shape == (B, tq, S)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "multihead"])
def test_context_equals_weights_times_values(name):
    query, states, mask = inputs()
    context, weights = attend(make(name), query, states, mask)
    assert torch.allclose(context, torch.bmm(weights, states))


def test_multihead_context_equals_manual_per_head_computation():
    attention = make("multihead", num_heads=2)
    query, states, mask = inputs()
    context, weights = attend(attention, query, states, mask)
    q, k, v = attention.query_proj(query), attention.key_proj(states), attention.value_proj(states)
    heads, head_weights = [], []
    for h in range(2):
        cols = slice(4 * h, 4 * (h + 1))
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / 2.0  # sqrt(head size 4)
        w = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
        heads.append(w @ v[..., cols])
        head_weights.append(w)
    assert torch.allclose(context, attention.out_proj(torch.cat(heads, dim=-1)))
    assert torch.allclose(weights, torch.stack(head_weights).mean(0))


def test_scaled_dot_equals_torch_scaled_dot_product_attention():
    query, states, mask = inputs(query_dim=KEY_DIM)
    context, _ = attend(make("scaled_dot", KEY_DIM, KEY_DIM), query, states, mask)
    expected = F.scaled_dot_product_attention(query, states, states, attn_mask=mask[:, None, :])
    assert torch.allclose(context, expected)


def test_scaled_dot_with_different_sizes_scales_by_the_query_size():
    """Keys are projected to query_dim first, so the scale is 1/sqrt(query_dim), not 1/sqrt(key_dim)."""
    attention = make("scaled_dot")  # query_dim 8, key_dim 12
    query, states, mask = inputs()
    context, weights = attend(attention, query, states, mask)
    projected = states @ attention.key_proj.weight.T  # (B, S, query_dim)
    expected = F.scaled_dot_product_attention(query, projected, states, attn_mask=mask[:, None, :])
    assert torch.allclose(context, expected)
    scores = torch.einsum("bqd,bsd->bqs", query, projected) / QUERY_DIM**0.5
    assert torch.allclose(weights, scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1))


def test_general_keeps_its_learned_matrix_when_the_sizes_are_equal():
    """Luong's "general" is qᵀ W k with a learned W even when query_dim == key_dim (where "dot" has none)."""
    general, dot = make("general", KEY_DIM, KEY_DIM), make("dot", KEY_DIM, KEY_DIM)
    assert [tuple(p.shape) for p in general.parameters()] == [(KEY_DIM, KEY_DIM)]
    assert list(dot.parameters()) == []
    query, states, mask = inputs(query_dim=KEY_DIM)
    _, weights = attend(general, query, states, mask)
    W = general.key_proj.weight  # (query_dim, key_dim)
    scores = torch.einsum("bqd,de,bse->bqs", query, W, states).masked_fill(~mask[:, None, :], float("-inf"))
    assert torch.allclose(weights, scores.softmax(-1))
    assert not torch.allclose(weights, attend(dot, query, states, mask)[1])


def test_dot_equals_manual_softmax_of_query_key_products():
    query, states, mask = inputs(query_dim=KEY_DIM)
    context, weights = attend(make("dot", KEY_DIM, KEY_DIM), query, states, mask)
    scores = torch.einsum("bqd,bsd->bqs", query, states).masked_fill(~mask[:, None, :], float("-inf"))
    assert torch.allclose(weights, scores.softmax(-1))
    assert torch.allclose(context, scores.softmax(-1) @ states)


def test_dot_with_different_sizes_is_general_with_a_learned_key_projection():
    dot, general = make("dot"), make("general")
    general.load_state_dict(dot.state_dict())
    query, states, mask = inputs()
    W = dot.key_proj.weight  # (query_dim, key_dim)
    scores = torch.einsum("bqd,de,bse->bqs", query, W, states).masked_fill(~mask[:, None, :], float("-inf"))
    _, weights = attend(dot, query, states, mask)
    assert torch.allclose(weights, scores.softmax(-1))
    assert torch.allclose(weights, attend(general, query, states, mask)[1])


def test_additive_equals_bahdanau_formula():
    attention = make("additive", hidden_size=6)
    query, states, mask = inputs()
    _, weights = attend(attention, query, states, mask)
    Wq, Wk, v = attention.query_proj.weight, attention.key_proj.weight, attention.v.weight[0]
    hidden = torch.tanh((query @ Wq.T)[:, :, None] + (states @ Wk.T)[:, None])  # (B, Tq, S, A)
    scores = (hidden @ v).masked_fill(~mask[:, None, :], float("-inf"))
    assert torch.allclose(weights, scores.softmax(-1))


def test_concat_equals_luong_formula_on_the_concatenation():
    attention = make("concat", hidden_size=6)
    query, states, mask = inputs()
    _, weights = attend(attention, query, states, mask)
    B, Tq, S = query.shape[0], query.shape[1], states.shape[1]
    q_rep = query[:, :, None].expand(B, Tq, S, QUERY_DIM)  # (B, Tq, S, query_dim)
    k_rep = states[:, None].expand(B, Tq, S, KEY_DIM)  # (B, Tq, S, key_dim)
    pairs = torch.cat([q_rep, k_rep], dim=-1)  # (B, Tq, S, query_dim + key_dim)
    scores = attention.v(torch.tanh(attention.W_a(pairs))).squeeze(-1)  # (B, Tq, S)
    assert torch.allclose(weights, scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1))


@pytest.mark.parametrize("name", NAMES)
def test_appending_padding_changes_neither_context_nor_real_weights(name):
    attention = make(name)
    query, states, mask = inputs()
    context, weights = attend(attention, query, states, mask)
    extra = torch.randn(len(LENGTHS), 4, KEY_DIM, dtype=torch.double)  # garbage in the padding
    padded_states = torch.cat([states, extra], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(len(LENGTHS), 4, dtype=torch.bool)], dim=1)
    padded_context, padded_weights = attend(attention, query, padded_states, padded_mask)
    assert torch.allclose(padded_context, context)
    assert torch.allclose(padded_weights[..., : states.shape[1]], weights)
    assert (padded_weights[..., states.shape[1] :] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_precompute_keys_is_deterministic(name):
    attention = make(name)
    _, states, _ = inputs()
    assert torch.equal(attention.precompute_keys(states), attention.precompute_keys(states))


@pytest.mark.parametrize("name", NAMES)
def test_many_queries_at_once_equal_stacked_single_step_calls(name):
    attention = make(name)
    query, states, mask = inputs(tq=4)
    keys = attention.precompute_keys(states)
    context, weights = attention(query, keys, states, mask)
    steps = [attention(query[:, t : t + 1], keys, states, mask) for t in range(4)]
    assert torch.allclose(context, torch.cat([c for c, _ in steps], dim=1))
    assert torch.allclose(weights, torch.cat([w for _, w in steps], dim=1))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter_and_the_inputs(name):
    attention = make(name)
    query, states, mask = inputs()
    query.requires_grad_(True)
    states.requires_grad_(True)
    context, _ = attend(attention, query, states, mask)
    context.square().sum().backward()
    for param_name, param in attention.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    assert query.grad.abs().sum() > 0 and states.grad.abs().sum() > 0


def test_unknown_name_raises_config_error_listing_valid_names():
    with pytest.raises(ConfigError) as info:
        build_attention("luong", 8, 8)
    assert str(info.value) == (
        "unknown attention 'luong'; choose one of: additive, concat, dot, general, multihead, scaled_dot"
    )


@pytest.mark.parametrize(
    "name,options,culprit",
    [
        ("dot", {"hidden_size": 4}, "hidden_size"),
        ("additive", {"num_heads": 2}, "num_heads"),
        ("additive", {"hidden_size": 0}, "hidden_size"),
        ("concat", {"hidden_size": 2.5}, "hidden_size"),
        ("multihead", {"num_heads": 3}, "num_heads"),
        ("multihead", {"num_heads": 0}, "num_heads"),
    ],
)
def test_bad_option_raises_config_error_naming_it(name, options, culprit):
    with pytest.raises(ConfigError, match=culprit) as info:
        build_attention(name, 8, 12, **options)
    assert "\n" not in str(info.value)


def test_unknown_option_message_lists_the_valid_options():
    with pytest.raises(ConfigError, match="valid options: num_heads"):
        build_attention("multihead", 8, 8, heads=2)


def test_bad_sizes_raise_config_error():
    with pytest.raises(ConfigError, match="key_dim"):
        build_attention("dot", 8, 0)
