"""Encoder-decoder invariants, for every attention variant, decoder style and RNN type."""

import itertools

import pytest
import torch

from nmt.errors import ConfigError
from nmt.models.attention import available_attentions
from nmt.models.seq2seq import build_model

VOCAB = 23


def model_cfg(**overrides) -> dict:
    cfg = {"rnn_type": "gru", "emb_size": 16, "enc_hidden": 12, "enc_layers": 1, "bidirectional": True,
           "dec_hidden": 20, "dec_layers": 1, "decoder_style": "bahdanau", "input_feeding": True,
           "dropout": 0.0, "tie_embeddings": True, "tie_output": False, "attention": {"name": "additive"}}
    cfg.update(overrides)
    return cfg


def batch(lengths=(7, 4, 1)):
    torch.manual_seed(0)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, VOCAB, (n,))
        src[i, n - 1] = 3  # EOS
    tgt_in = torch.randint(4, VOCAB, (len(lengths), 5))
    tgt_in[:, 0] = 2  # BOS
    return src, torch.tensor(lengths), tgt_in


VARIANTS = list(itertools.product(available_attentions(), ["bahdanau", "luong"], [True, False], ["gru", "lstm"]))


@pytest.mark.parametrize(("attention", "style", "feeding", "rnn"), VARIANTS)
def test_stepwise_decoding_equals_teacher_forcing(attention, style, feeding, rnn):
    """decode_step, one token at a time, reproduces forward()'s scores and attention exactly."""
    torch.manual_seed(1)
    model = build_model(model_cfg(attention={"name": attention}, decoder_style=style, input_feeding=feeding,
                                  rnn_type=rnn, dec_layers=2), VOCAB, VOCAB, shared_vocab=True).eval()
    src, lengths, tgt_in = batch()
    logits, weights = model(src, lengths, tgt_in)  # (B, T, V), (B, T, S)
    assert logits.shape == (3, 5, VOCAB) and weights.shape == (3, 5, src.shape[1])
    state = model.encode(src, lengths)
    for t in range(tgt_in.shape[1]):
        log_probs, state, w = model.decode_step(tgt_in[:, t], state)
        torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(w, weights[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_decode_step_equals_the_published_equations_run_with_the_nn_gru(style):
    """Each step against a reference written from the papers, with the decoder's own nn.GRU doing the
    recurrence (not the step code under test), two layers, input feeding for Luong:
    initial state: layer l of tanh(bridge(encoder summary)), the l-th block of H;
    Bahdanau: attend from the previous top-layer state, RNN on [emb; context],
    output tanh(W_p [emb; state; context]);
    Luong: RNN on [emb; previous attentional vector], attend from the new top-layer state,
    attentional vector tanh(W_c [context; state]), which is both the output and the next step's input."""
    torch.manual_seed(4)
    model = build_model(model_cfg(decoder_style=style, dec_layers=2, input_feeding=True), VOCAB, VOCAB,
                        shared_vocab=True).double().eval()
    src, lengths, tgt_in = batch()
    dec = model.decoder
    with torch.no_grad():
        memory, final = model.encoder(model.src_embed(src), lengths)  # (B, S, D), (B, D)
        mask, keys = src != model.pad_id, dec.attention.precompute_keys(memory)
        hidden = torch.stack(torch.tanh(dec.bridge(final)).split(dec.hidden_size, dim=-1))  # (L, B, H)
        feed = torch.zeros(len(lengths), dec.hidden_size, dtype=torch.float64)  # (B, H)
        state = model.encode(src, lengths)
        torch.testing.assert_close(state.hidden, hidden)
        for t in range(tgt_in.shape[1]):
            emb = model.tgt_embed(tgt_in[:, t])  # (B, E)
            if style == "bahdanau":
                context, weights = dec.attention(hidden[-1][:, None], keys, memory, mask)  # (B, 1, C)
                out, hidden = dec.rnn(torch.cat([emb, context[:, 0]], -1)[:, None], hidden)  # (B, 1, H)
                output = torch.tanh(dec.pre_output(torch.cat([emb, out[:, 0], context[:, 0]], -1)))
            else:
                out, hidden = dec.rnn(torch.cat([emb, feed], -1)[:, None], hidden)  # (B, 1, H)
                context, weights = dec.attention(out, keys, memory, mask)  # (B, 1, C)
                output = feed = torch.tanh(dec.combine(torch.cat([context[:, 0], out[:, 0]], -1)))  # (B, H)
            log_probs, state, w = model.decode_step(tgt_in[:, t], state)
            torch.testing.assert_close(log_probs, torch.log_softmax(model.logits(output), -1).float())
            torch.testing.assert_close(w, weights[:, 0])
            torch.testing.assert_close(state.hidden, hidden)


@pytest.mark.parametrize("attention", available_attentions())
def test_attention_ignores_source_padding(attention):
    """Weights on padding are 0 and a sentence's output does not depend on its batch neighbours."""
    torch.manual_seed(2)
    model = build_model(model_cfg(attention={"name": attention}), VOCAB, VOCAB, shared_vocab=True).eval()
    src, lengths, tgt_in = batch()
    logits, weights = model(src, lengths, tgt_in)
    assert torch.all(weights[2, :, 1:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    alone_logits, _ = model(src[2:, :1], lengths[2:], tgt_in[2:])
    torch.testing.assert_close(alone_logits, logits[2:], atol=1e-5, rtol=1e-4)


def test_reorder_state_selects_rows():
    model = build_model(model_cfg(decoder_style="luong", rnn_type="lstm"), VOCAB, VOCAB, True).eval()
    src, lengths, _ = batch()
    state = model.encode(src, lengths)
    picked = model.reorder_state(state, torch.tensor([2, 0, 0]))
    assert torch.equal(picked.hidden[:, 1], state.hidden[:, 0])
    assert torch.equal(picked.cell[:, 0], state.cell[:, 2])
    assert torch.equal(picked.mask[0], state.mask[2]) and torch.equal(picked.keys[2], state.keys[0])


def test_tied_embeddings_and_output_share_one_matrix():
    model = build_model(model_cfg(tie_output=True), VOCAB, VOCAB, shared_vocab=True)
    assert model.src_embed.weight is model.tgt_embed.weight is model.generator.weight
    untied = build_model(model_cfg(tie_embeddings=False), VOCAB, VOCAB + 5, shared_vocab=False)
    assert untied.generator.weight.shape == (VOCAB + 5, 20)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in untied.parameters())


def test_gradients_reach_every_parameter():
    model = build_model(model_cfg(decoder_style="luong", attention={"name": "multihead", "num_heads": 2}),
                        VOCAB, VOCAB, True)
    src, lengths, tgt_in = batch()
    logits, _ = model(src, lengths, tgt_in)
    logits.logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_word_dropout_blanks_whole_tokens_in_training_only():
    model = build_model(model_cfg(word_dropout=0.5), VOCAB, VOCAB, True)
    src, _, _ = batch()
    torch.manual_seed(1)
    embedded = model._embed(model.src_embed, src)  # (B, S, E)
    blank = embedded.abs().sum(-1) == 0  # (B, S): a token is blanked in every dimension or in none
    real = src != model.pad_id
    assert 0 < blank[real].float().mean() < 1
    kept = real & ~blank
    assert torch.equal(embedded[kept], model.src_embed(src)[kept])  # kept tokens are not rescaled
    model.eval()
    assert torch.equal(model._embed(model.src_embed, src), model.src_embed(src))


def test_word_dropout_blanks_tokens_at_its_rate_on_both_sides_independently_per_sentence():
    """model.word_dropout=0.2 blanks a fifth of the source words the encoder reads and of the previous
    target words the decoder reads under teacher forcing, drawn anew for every token of every sentence."""
    model = build_model(model_cfg(word_dropout=0.2), VOCAB, VOCAB, True).train()
    seen = {}
    for name in ("encoder", "decoder"):  # the hook keeps the embedded input each is given
        getattr(model, name).register_forward_pre_hook(lambda module, args, name=name: seen.update({name: args[0]}))
    torch.manual_seed(0)
    sentence = torch.randint(4, VOCAB, (40,))
    src = sentence.repeat(64, 1)  # (64, 40): one sentence 64 times, all real tokens
    tgt_in = src.clone()
    tgt_in[:, 0] = 2  # BOS
    model(src, torch.full((64,), 40), tgt_in)
    for name in ("encoder", "decoder"):
        blank = seen[name].abs().sum(-1) == 0  # (64, 40)
        assert abs(blank.float().mean().item() - 0.2) < 0.03, name  # 2,560 tokens: sd 0.008
        assert len({tuple(row.tolist()) for row in blank}) > 32, name  # not the same positions in every copy


@pytest.mark.parametrize(("key", "value", "message"), [
    ("rnn_type", "transformer", "rnn_type"), ("decoder_style", "vaswani", "bahdanau, luong"),
    ("word_dropout", 1.0, "model.word_dropout"), ("word_dropout", "high", "model.word_dropout"),
])
def test_invalid_choices_name_the_option_and_the_valid_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_model(model_cfg(**{key: value}), VOCAB, VOCAB, True)


def test_tied_embeddings_need_a_joint_vocabulary():
    with pytest.raises(ConfigError, match="tokenizer.joint"):
        build_model(model_cfg(), VOCAB, VOCAB, shared_vocab=False)


def test_cpu_rnn_calls_run_without_onednn_and_leave_it_on_for_the_rest():
    """oneDNN rebuilds its RNN primitive for every new batch shape (seconds per step on CPU), so the
    whole-sequence nn.GRU call of the Luong decoder without input feeding runs with it off; everything
    else keeps it (bf16 products need it). The CPU encoder does not call its nn.GRU at all
    (`padded_recurrence`), but trains its parameters."""
    model = build_model(model_cfg(decoder_style="luong", input_feeding=False), VOCAB, VOCAB, shared_vocab=True)
    seen, encoder_calls = [], []
    model.decoder.rnn.register_forward_pre_hook(lambda module, args: seen.append(torch.backends.mkldnn.enabled))
    model.encoder.rnn.register_forward_pre_hook(lambda module, args: encoder_calls.append(1))
    assert torch.backends.mkldnn.enabled
    logits, _ = model(*batch())
    assert seen == [False]
    assert torch.backends.mkldnn.enabled  # restored afterwards
    assert encoder_calls == []
    logits.sum().backward()  # the backward follows the native kernels the forward chose
    assert all(p.grad is not None for p in model.encoder.rnn.parameters())
    assert all(p.grad is not None for p in model.decoder.rnn.parameters())


def test_cpu_bf16_autocast_keeps_the_decoder_rnn_call_in_fp32_and_the_loss_close():
    """Under CPU bf16 autocast the nn.GRU call runs in fp32 (its native per-step products in bf16,
    without oneDNN, would run on a far slower kernel); the rest runs in bf16 and the loss stays close."""
    torch.manual_seed(3)
    model = build_model(model_cfg(decoder_style="luong", input_feeding=False), VOCAB, VOCAB, shared_vocab=True)
    src, lengths, tgt_in = batch()
    seen = []
    model.decoder.rnn.register_forward_hook(lambda module, args, out: seen.append(
        (torch.is_autocast_enabled("cpu"), out[0].dtype)))
    full, _ = model(src, lengths, tgt_in)
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = model(src, lengths, tgt_in)
    assert seen == [(False, torch.float32)]
    assert half.dtype == torch.bfloat16  # the output layer did run in bf16
    loss = torch.nn.functional.cross_entropy
    target = torch.randint(4, VOCAB, tgt_in.shape)
    full_loss = loss(full.flatten(0, 1), target.flatten())
    half_loss = loss(half.float().flatten(0, 1), target.flatten())
    assert abs(full_loss.item() - half_loss.item()) < 0.05


def test_step_weights_are_cast_once_per_sequence_under_autocast():
    model = build_model(model_cfg(dec_layers=2), VOCAB, VOCAB, shared_vocab=True)
    products = model.decoder._step_weights()
    assert {p.weight.dtype for p in [products.extra, *products.hidden, *products.below]} == {torch.float32}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        products = model.decoder._step_weights()
    assert {p.weight.dtype for p in [products.extra, *products.hidden, *products.below]} == {torch.bfloat16}
    assert len(products.hidden) == 2 and len(products.below) == 1


def test_logits_can_be_computed_at_the_requested_positions_only():
    model = build_model(model_cfg(), VOCAB, VOCAB, shared_vocab=True).eval()
    src, lengths, tgt_in = batch()
    positions = torch.rand(tgt_in.shape, generator=torch.Generator().manual_seed(1)) < 0.6  # (B, T)
    with torch.no_grad():
        full, _ = model(src, lengths, tgt_in)  # (B, T, V)
        selected, _ = model(src, lengths, tgt_in, positions)  # (N, V)
    assert selected.shape == (int(positions.sum()), VOCAB)
    assert torch.allclose(selected, full[positions], atol=1e-6)


class PlainProduct:
    """StepProduct without the deferred weight gradient: autograd's own step-by-step one."""

    def __init__(self, weight, bias=None):
        self.weight, self.bias = weight, bias

    def __call__(self, x):
        return x @ self.weight if self.bias is None else x @ self.weight + self.bias


@pytest.mark.parametrize("style, feeding, rnn_type, attention", [
    ("bahdanau", True, "gru", "additive"), ("luong", True, "lstm", "additive"), ("luong", False, "gru", "additive"),
    ("luong", True, "gru", "concat"), ("bahdanau", True, "gru", "general"), ("luong", True, "gru", "multihead")])
def test_teacher_forcing_gradients_equal_plain_autograd_in_float64(monkeypatch, style, feeding, rnn_type, attention):
    """The deferred gradients (encoder and decoder steps, the attention's query projection and
    encoder states, the Luong combination) against plain per-step autograd."""
    import nmt.models.attention
    import nmt.models.decoder
    import nmt.models.recurrence

    torch.manual_seed(5)
    model = build_model(model_cfg(decoder_style=style, input_feeding=feeding, rnn_type=rnn_type, dec_layers=2,
                                  enc_layers=2, attention={"name": attention}), VOCAB, VOCAB,
                        shared_vocab=True).double()
    src, lengths, tgt_in = batch()

    def gradients():
        model.zero_grad()
        logits, _ = model(src, lengths, tgt_in)
        (logits * torch.linspace(-1, 1, VOCAB, dtype=torch.float64)).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    deferred = gradients()
    monkeypatch.setattr(nmt.models.decoder, "StepProduct", PlainProduct)
    monkeypatch.setattr(nmt.models.recurrence, "StepProduct", PlainProduct)
    monkeypatch.setattr(nmt.models.attention, "StepProduct", PlainProduct)
    plain = gradients()
    assert deferred.keys() == plain.keys()
    for name in plain:
        assert torch.allclose(deferred[name], plain[name], atol=1e-10), name


def test_padding_rows_added_to_the_output_layer_change_neither_loss_nor_gradients():
    """The trainer rounds the output layer's rows up with padding positions (fewer oneDNN primitive
    sizes on a CPU); their PAD targets are ignored, so the step is the one on real tokens only."""
    from nmt.training.loss import label_smoothed_nll
    from nmt.training.step import OUTPUT_ROWS_MULTIPLE, output_positions

    torch.manual_seed(2)
    model = build_model(model_cfg(decoder_style="luong"), VOCAB, VOCAB, shared_vocab=True).double()
    src, lengths = batch((9, 4, 2))[:2]
    tgt_out = torch.randint(4, VOCAB, (3, 50))
    tgt_out[1, 30:] = tgt_out[2, 5:] = 0  # PAD
    tgt_in = torch.cat([torch.full((3, 1), 1), tgt_out[:, :-1]], dim=1)
    real = tgt_out != 0
    rows = output_positions(real)
    assert real.sum() % OUTPUT_ROWS_MULTIPLE != 0 and rows.sum() == OUTPUT_ROWS_MULTIPLE
    assert torch.equal(rows & real, real)  # every real position is kept, in order

    def loss_and_grads(positions):
        model.zero_grad()
        logits, _ = model(src, lengths, tgt_in, positions)
        loss = label_smoothed_nll(logits, tgt_out[positions], 0.1, ignore_index=0)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    (plain_loss, plain), (padded_loss, padded) = loss_and_grads(real), loss_and_grads(rows)
    assert padded_loss == pytest.approx(plain_loss, rel=1e-12)
    for a, b in zip(plain, padded, strict=True):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-10)
    full = torch.ones(2, OUTPUT_ROWS_MULTIPLE, dtype=torch.bool)
    assert output_positions(full) is full  # a multiple already: nothing added
