"""Our reference model in Joey NMT 2.3's terms: its config, its vocabulary file and its weights.

Joey's recurrent encoder-decoder with the reference's sizes is the same network as
``experiment=m30k_deen_ref`` (bidirectional GRU 512, GRU decoder 512 attending after its RNN step
with additive ("bahdanau") attention and input feeding, embeddings 256 shared between source and
target, an output layer without bias): 12,577,280 parameters in both, matrix for matrix. Three
things differ in layout only, and `joey_state_dict` maps them:
- Joey's special ids are <unk>=0 <pad>=1 (ours <pad>=0 <unk>=1): rows 0 and 1 of the embedding
  and output matrices trade places; every other piece keeps its id (Joey reads our pieces in order).
- Joey's attentional layer reads [state; context], ours [context; state]: its columns swap.
- Parameter names.
"""

from pathlib import Path

import sentencepiece
import torch
from torch import Tensor

from nmt.errors import ConfigError

CONTEXT_SIZE = 1024  # the bidirectional encoder's states: 2 x 512
# What the reference is; a checkpoint of any other architecture has no Joey counterpart here.
REFERENCE_MODEL = {"rnn_type": "gru", "emb_size": 256, "enc_hidden": 512, "enc_layers": 1, "bidirectional": True,
                   "dec_hidden": 512, "dec_layers": 1, "decoder_style": "luong", "input_feeding": True,
                   "tie_embeddings": True, "tie_output": False}
# Our parameter -> Joey's, for those that keep their layout.
SAME_LAYOUT = {
    "decoder.combine.bias": "decoder.att_vector_layer.bias",
    "decoder.attention.key_proj.weight": "decoder.attention.key_layer.weight",
    "decoder.attention.query_proj.weight": "decoder.attention.query_layer.weight",
    "decoder.attention.v.weight": "decoder.attention.energy_layer.weight",
    "decoder.bridge.weight": "decoder.bridge_layer.weight",
    "decoder.bridge.bias": "decoder.bridge_layer.bias",
}


def write_joey_vocab(spm_model: bytes, path: Path) -> int:
    """The SentencePiece model's pieces as Joey's vocabulary file, one per line, without the
    control and unknown pieces: Joey puts its own <unk> <pad> <s> </s> first, so the vocabulary
    has the same size and the same ids as ours (but for <unk> and <pad>). Returns the number of
    pieces written."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i))]
    path.write_text("".join(f"{piece}\n" for piece in pieces), encoding="utf-8")
    return len(pieces)


def joey_config(model_dir: Path, spm_model: Path, vocab: Path, src: str, tgt: str) -> dict:
    """Joey NMT 2.3's config for the reference model, data and training left for the caller to add:
    dropout 0.3, Adam 5e-4, label smoothing 0.1, 4096-token batches as experiment=m30k_deen_ref."""

    def side(lang: str) -> dict:
        return {"lang": lang, "level": "bpe", "lowercase": False, "max_length": 100, "voc_file": str(vocab),
                "tokenizer_type": "sentencepiece", "tokenizer_cfg": {"model_file": str(spm_model)}}

    def rnn(**extra) -> dict:
        return {"type": "recurrent", "rnn_type": "gru", "hidden_size": 512, "num_layers": 1, "dropout": 0.3,
                "embeddings": {"embedding_dim": 256, "scale": False, "dropout": 0.3}, **extra}

    return {
        "name": "m30k_deen_ref_joey", "joeynmt_version": "2.3.0", "model_dir": str(model_dir),
        "use_cuda": False, "fp16": False, "random_seed": 42,
        "data": {"dataset_type": "plain", "src": side(src), "trg": side(tgt)},
        "training": {"optimizer": "adam", "learning_rate": 0.0005, "batch_size": 4096, "batch_type": "token",
                     "label_smoothing": 0.1, "shuffle": True, "overwrite": True, "early_stopping_metric": "bleu",
                     # Joey needs a schedule; this one keeps the rate (its plateau schedule passes
                     # verbose=, which torch >= 2.7 refuses, and no validation runs here anyway)
                     "scheduling": "exponential", "decrease_factor": 1.0, "learning_rate_min": 1.0e-8},
        "model": {"initializer": "xavier_uniform", "embed_initializer": "normal", "tied_embeddings": True,
                  "encoder": rnn(bidirectional=True),
                  "decoder": rnn(hidden_dropout=0.3, input_feeding=True, init_hidden="bridge",
                                 attention="bahdanau")},
        "testing": {"beam_size": 5, "beam_alpha": 1.0, "batch_size": 64, "batch_type": "sentence",
                    "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"}},  # as nmt-evaluate
    }


def check_reference_model(model_config: dict, attention: str) -> None:
    """ConfigError unless a checkpoint's model is the reference's architecture (what Joey can run)."""
    differing = [f"model.{key}={model_config.get(key)!r} (the reference: {value!r})"
                 for key, value in REFERENCE_MODEL.items() if model_config.get(key) != value]
    if attention != "additive":
        differing.append(f"model/attention={attention} (the reference: additive)")
    if differing:
        raise ConfigError(f"the checkpoint is not experiment=m30k_deen_ref's model, which Joey NMT runs: "
                          f"{', '.join(differing)}")


def joey_state_dict(ours: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our reference model's parameters under Joey's names and layout (see the module's docstring)."""
    rows = torch.arange(ours["src_embed.weight"].shape[0])
    rows[[0, 1]] = rows[[1, 0]]  # Joey's <unk>=0 <pad>=1 are our 1 and 0
    embedding = ours["src_embed.weight"].float()[rows]
    combine = ours["decoder.combine.weight"].float()  # (H, C + H): [context; state]
    joey = {
        "src_embed.lut.weight": embedding,
        "trg_embed.lut.weight": embedding.clone(),  # tied: one matrix in both models
        "decoder.output_layer.weight": ours["generator.weight"].float()[rows],
        "decoder.att_vector_layer.weight": torch.cat([combine[:, CONTEXT_SIZE:], combine[:, :CONTEXT_SIZE]], dim=1),
    }
    joey.update({theirs: ours[name].float() for name, theirs in SAME_LAYOUT.items()})
    joey.update({name: value.float() for name, value in ours.items() if name.startswith(("encoder.rnn.", "decoder.rnn."))})
    mapped = {"src_embed.weight", "tgt_embed.weight", "generator.weight", "decoder.combine.weight", *SAME_LAYOUT,
              *(name for name in ours if name.startswith(("encoder.rnn.", "decoder.rnn.")))}
    if set(ours) != mapped or not torch.equal(ours["src_embed.weight"], ours["tgt_embed.weight"]):
        raise ConfigError(f"the checkpoint's parameters are not the reference model's: "
                          f"{sorted(set(ours) ^ mapped) or 'untied embeddings'}")
    return joey
