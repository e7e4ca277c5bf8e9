"""The encoder-decoder model and its builder.

Search talks to it only through `encode`, `decode_step` and `reorder_state`; training uses `forward`.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.errors import ConfigError
from nmt.models.attention import build_attention
from nmt.models.decoder import DECODER_STYLES, RNNDecoder
from nmt.models.dropout import Dropout
from nmt.models.encoder import RNN_TYPES, RNNEncoder
from nmt.models.state import DecoderState
from nmt.values import is_number


class Seq2Seq(nn.Module):
    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, src_embed: nn.Embedding, tgt_embed: nn.Embedding, encoder: RNNEncoder,
                 decoder: RNNDecoder, tie_output: bool, dropout: float, word_dropout: float = 0.0):
        super().__init__()
        self.src_embed, self.tgt_embed = src_embed, tgt_embed
        self.encoder, self.decoder = encoder, decoder
        self.embed_dropout = Dropout(dropout)
        self.word_dropout = word_dropout
        emb_size, vocab = tgt_embed.embedding_dim, tgt_embed.num_embeddings
        # A tied output layer reuses the target embedding matrix, so its input must have the
        # embedding size: project the decoder output down first when sizes differ.
        needs_proj = tie_output and decoder.output_size != emb_size
        self.output_proj = nn.Linear(decoder.output_size, emb_size) if needs_proj else nn.Identity()
        self.generator = nn.Linear(emb_size if tie_output else decoder.output_size, vocab, bias=False)
        if tie_output:
            self.generator.weight = tgt_embed.weight

    def encode(self, src: Tensor, src_lengths: Tensor) -> DecoderState:
        """src (B, S) ids, src_lengths (B,) -> the decoder's initial state (holding the encoder states)."""
        mask = src != self.pad_id  # (B, S)
        memory, final = self.encoder(self._embed(self.src_embed, src), src_lengths)  # (B,S,D), (B,D)
        return self.decoder.init_state(final, memory, mask)

    def _embed(self, table: nn.Embedding, ids: Tensor) -> Tensor:
        """ids (B, ...) -> dropped-out embeddings (B, ..., E).

        In training, word dropout first blanks whole tokens (their embedding becomes 0, unscaled, as
        a word the model has never seen), so the encoder learns to read past a missing word and the
        decoder leans on the source more than on its own previous words.
        """
        embedded = table(ids)  # (B, ..., E)
        if self.training and self.word_dropout > 0:
            kept = torch.rand(ids.shape, device=ids.device) >= self.word_dropout  # (B, ...)
            embedded = embedded * kept.unsqueeze(-1).to(embedded.dtype)
        return self.embed_dropout(embedded)

    def logits(self, decoder_output: Tensor) -> Tensor:
        """(..., H_out) -> (..., V) unnormalised scores."""
        return self.generator(self.output_proj(decoder_output))

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """prev_tokens (B,) -> log-probs (B, V), new state, attention weights (B, S)."""
        embedded = self._embed(self.tgt_embed, prev_tokens)  # (B, E)
        output, state, weights = self.decoder.step(embedded, state)  # (B, H_out)
        return F.log_softmax(self.logits(output).float(), dim=-1), state, weights

    def reorder_state(self, state: DecoderState, index: Tensor) -> DecoderState:
        return state.index_select(index)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, positions: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Teacher forcing: src (B, S), tgt_in (B, T) = BOS + target -> logits (B, T, V), weights (B, T, S).

        With `positions` (B, T) bool, the logits are computed at those positions only and come back
        as (N, V), N = positions.sum(), in the order of `tgt_out[positions]`: the output layer is the
        largest product of a step, and padding positions need none of it.
        """
        state = self.encode(src, src_lengths)
        outputs, weights = self.decoder(self._embed(self.tgt_embed, tgt_in), state)  # (B,T,H_out)
        if positions is not None:
            outputs = outputs[positions]  # (N, H_out)
        return self.logits(outputs), weights


def _choice(cfg: Mapping, key: str, valid: Mapping) -> type:
    value = cfg[key]
    if value not in valid:
        raise ConfigError(f"model.{key}={value!r} is not valid; choose one of: {', '.join(valid)}")
    return valid[value]


# Model options that checkpoints older than them lack, with the value those models were built with.
ADDED_MODEL_OPTIONS = {"input_feeding": True, "word_dropout": 0.0}


def build_model(cfg: Mapping, src_vocab: int, tgt_vocab: int, shared_vocab: bool) -> Seq2Seq:
    """Builds the model from the `model` config section and the vocabulary sizes."""
    cfg = {**ADDED_MODEL_OPTIONS, **cfg}
    _choice(cfg, "rnn_type", RNN_TYPES)
    decoder_cls = _choice(cfg, "decoder_style", DECODER_STYLES)
    if cfg["tie_embeddings"] and not shared_vocab:
        raise ConfigError("model.tie_embeddings=true needs one vocabulary for both languages: "
                          "set tokenizer.joint=true or model.tie_embeddings=false")
    emb = cfg["emb_size"]
    src_embed = nn.Embedding(src_vocab, emb, padding_idx=PAD)
    tgt_embed = src_embed if cfg["tie_embeddings"] else nn.Embedding(tgt_vocab, emb, padding_idx=PAD)
    encoder = RNNEncoder(cfg["rnn_type"], emb, cfg["enc_hidden"], cfg["enc_layers"], cfg["bidirectional"],
                         cfg["dropout"])
    att_cfg = dict(cfg["attention"])
    attention = build_attention(att_cfg.pop("name"), query_dim=cfg["dec_hidden"],
                                key_dim=encoder.output_size,
                                **{k: v for k, v in att_cfg.items() if v is not None})
    decoder = decoder_cls(cfg["rnn_type"], emb, cfg["dec_hidden"], cfg["dec_layers"], encoder.output_size,
                          attention, cfg["dropout"], input_feeding=cfg["input_feeding"])
    word_dropout = cfg["word_dropout"]
    if not (is_number(word_dropout) and 0 <= word_dropout < 1):
        raise ConfigError(f"model.word_dropout must be a number in [0, 1); got {word_dropout!r}")
    model = Seq2Seq(src_embed, tgt_embed, encoder, decoder, cfg["tie_output"], cfg["dropout"], word_dropout)
    _init_weights(model)
    return model


def _init_weights(model: nn.Module) -> None:
    """Xavier for matrices, zeros for biases, N(0, 1) for embeddings; the padding row stays 0.

    Unit-scale embeddings matter: with N(0, 1/d) the encoder's first states barely depend on the
    input words, and a model took hundreds of updates before its attention used the source at all.
    """
    for name, param in model.named_parameters():
        if "embed" in name:
            nn.init.normal_(param, std=1.0)
            with torch.no_grad():
                param[PAD].zero_()
        elif param.dim() > 1:
            nn.init.xavier_uniform_(param)
        else:
            nn.init.zeros_(param)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
