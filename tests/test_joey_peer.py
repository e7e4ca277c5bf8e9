"""scripts/joey_peer.py and joey_format.py: Joey NMT measured on our machine must run our reference
model, with our weights where it decodes.

Joey NMT itself is not installed here (the script runs it from a Python of its own; BENCHMARKS.md
has its runs, in which it translated 999 of 1,000 test sentences as we do from the same weights). These
check what the script hands Joey and what it reads back: the config against experiment=m30k_deen_ref,
the vocabulary against the SentencePiece model, the weights' mapping against Joey's layout, the
parsing of Joey's logs, and the user's mistakes."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece
import torch

from nmt.cli.common import compose_checked
from nmt.data.readers import read_lines
from nmt.data.tokenizer import SubwordTokenizer
from nmt.errors import ConfigError
from nmt.models.seq2seq import build_model, count_parameters

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCRIPT = SCRIPTS / "joey_peer.py"
VOCAB = 8000
# Joey NMT 2.3's parameter names for the reference model, from its checkpoint.
JOEY_NAMES = {
    "src_embed.lut.weight", "trg_embed.lut.weight", "decoder.att_vector_layer.weight", "decoder.att_vector_layer.bias",
    "decoder.output_layer.weight", "decoder.attention.key_layer.weight", "decoder.attention.query_layer.weight",
    "decoder.attention.energy_layer.weight", "decoder.bridge_layer.weight", "decoder.bridge_layer.bias",
    *(f"{side}.rnn.{kind}_l0{direction}" for side, directions in (("encoder", ("", "_reverse")), ("decoder", ("",)))
      for direction in directions for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
}
# Lines of Joey NMT 2.3's logs, as it wrote them on our CPU.
TRAINING_LOG = """\
2026-12-07 04:50:11,266 - INFO - joeynmt.model - Total params: 12577280
2026-12-07 04:50:51,596 - INFO - joeynmt.training - Epoch   1, Step:       10, Batch Loss:    97.196045, \
Batch Acc: 0.078495, Tokens per Sec:      458, Lr: 0.000500
2026-12-07 04:51:33,459 - INFO - joeynmt.training - Epoch   1, Step:       20, Batch Loss:    78.841324, \
Batch Acc: 0.075897, Tokens per Sec:      401, Lr: 0.000500
2026-12-07 04:52:15,101 - INFO - joeynmt.training - Epoch   1, Step:       30, Batch Loss:    70.000000, \
Batch Acc: 0.080000, Tokens per Sec:      420, Lr: 0.000500
"""
TEST_LOG = """\
2026-12-07 05:07:18,576 - INFO - joeynmt.prediction - Generation took 64.9408[sec].
2026-12-07 05:07:18,670 - INFO - joeynmt.prediction - Evaluation result (beam search): bleu:  39.88, 0.0830[sec]
"""


@pytest.fixture(scope="module")
def scripts():
    """(joey_peer, joey_format), imported as the script imports its neighbours."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("joey_peer"), importlib.import_module("joey_format")
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def reference():
    """experiment=m30k_deen_ref's config and a model built from it (random weights)."""
    cfg = compose_checked("train", ["experiment=m30k_deen_ref"])
    torch.manual_seed(0)
    return cfg, build_model(cfg.model, VOCAB, VOCAB, shared_vocab=True)


def test_the_vocabulary_is_the_models_pieces_after_joeys_four_specials(scripts, multi30k_root, tmp_path):
    """Joey puts <unk> <pad> <s> </s> first: with ours left out, every other piece keeps its id."""
    texts = read_lines(multi30k_root / "multi30k" / "val.en.gz")
    spm_model = SubwordTokenizer.train(texts, vocab_size=300).to_bytes()  # as nmt-train trains one

    written = scripts[1].write_joey_vocab(spm_model, tmp_path / "vocab.txt")

    processor = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert written == len(lines) == processor.get_piece_size() - 4
    assert lines == [processor.id_to_piece(i) for i in range(4, processor.get_piece_size())]
    assert [processor.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_joeys_config_is_the_reference_experiments_model_and_training(scripts, reference, tmp_path):
    cfg, _ = reference
    joey = scripts[1].joey_config(tmp_path / "model", tmp_path / "spm.model", tmp_path / "vocab.txt", "de", "en")

    model, training = joey["model"], joey["training"]
    encoder, decoder = model["encoder"], model["decoder"]
    assert (cfg.model.decoder_style, cfg.model.input_feeding, cfg.model.attention.name) == ("luong", True, "additive")
    assert (decoder["attention"], decoder["input_feeding"]) == ("bahdanau", True)  # Joey attends after its RNN step
    assert encoder["rnn_type"] == decoder["rnn_type"] == cfg.model.rnn_type
    assert (encoder["hidden_size"], encoder["num_layers"], encoder["bidirectional"]) == (
        cfg.model.enc_hidden, cfg.model.enc_layers, cfg.model.bidirectional)
    assert (decoder["hidden_size"], decoder["num_layers"]) == (cfg.model.dec_hidden, cfg.model.dec_layers)
    assert encoder["embeddings"]["embedding_dim"] == decoder["embeddings"]["embedding_dim"] == cfg.model.emb_size
    assert encoder["dropout"] == decoder["dropout"] == decoder["embeddings"]["dropout"] == cfg.model.dropout
    assert model["tied_embeddings"] == cfg.model.tie_embeddings and not model.get("tied_softmax", False)
    assert (training["optimizer"], training["learning_rate"]) == (cfg.optimizer.name, cfg.optimizer.lr)
    assert training["label_smoothing"] == cfg.trainer.label_smoothing
    assert (training["batch_type"], training["batch_size"]) == ("token", cfg.trainer.batch_tokens)
    assert joey["testing"]["beam_alpha"] == compose_checked("evaluate", ["checkpoint=x.pt"]).length_penalty


def test_the_timed_training_never_validates_and_takes_the_batch_size_asked_for(scripts, tmp_path):
    joey_peer, joey_format = scripts
    config = joey_format.joey_config(tmp_path / "model", tmp_path / "spm.model", tmp_path / "vocab.txt", "de", "en")

    training = joey_peer.timed_training(config, tmp_path / "corpus", 60, 8192)["training"]

    assert (training["updates"], training["batch_size"], training["logging_freq"]) == (60, 8192, 10)
    assert training["validation_freq"] > 60  # no validation inside the timed updates
    assert config["data"]["train"] == str(tmp_path / "corpus" / "train")


def test_our_weights_fill_joeys_model_exactly(scripts, reference):
    _, model = reference
    ours = model.state_dict()

    joey = scripts[1].joey_state_dict(ours)

    assert set(joey) == JOEY_NAMES
    tied_once = sum(value.numel() for name, value in joey.items() if name != "trg_embed.lut.weight")
    assert tied_once == count_parameters(model) == 12_577_280  # Joey logs "Total params: 12577280"
    for name in ("src_embed.lut.weight", "trg_embed.lut.weight"):
        assert torch.equal(joey[name][0], ours["src_embed.weight"][1])  # Joey's <unk>=0 is our 1
        assert torch.equal(joey[name][1], ours["src_embed.weight"][0])  # its <pad>=1 our 0
        assert torch.equal(joey[name][2:], ours["src_embed.weight"][2:])
    assert torch.equal(joey["decoder.output_layer.weight"][[1, 0]], ours["generator.weight"][:2])
    assert torch.equal(joey["decoder.rnn.weight_ih_l0"], ours["decoder.rnn.weight_ih_l0"])


def test_joeys_attentional_layer_computes_ours_from_its_order_of_inputs(scripts, reference):
    """Ours reads [context; state], Joey's [state; context]: the same layer once its columns swap."""
    _, model = reference
    ours = model.state_dict()
    joey = scripts[1].joey_state_dict(ours)
    state, context = torch.randn(3, 512), torch.randn(3, 1024)

    our_vector = torch.nn.functional.linear(torch.cat([context, state], -1), ours["decoder.combine.weight"],
                                            ours["decoder.combine.bias"])
    joey_vector = torch.nn.functional.linear(torch.cat([state, context], -1), joey["decoder.att_vector_layer.weight"],
                                             joey["decoder.att_vector_layer.bias"])
    torch.testing.assert_close(joey_vector, our_vector)


def test_a_model_joey_cannot_run_is_refused_naming_what_differs(scripts, reference):
    cfg, model = reference
    with pytest.raises(ConfigError, match=r"model.decoder_style='bahdanau' \(the reference: 'luong'\)"):
        scripts[1].check_reference_model({**cfg.model, "decoder_style": "bahdanau"}, "additive")
    with pytest.raises(ConfigError, match=r"model/attention=dot \(the reference: additive\)"):
        scripts[1].check_reference_model(dict(cfg.model), "dot")
    untied = {**model.state_dict(), "tgt_embed.weight": torch.zeros(VOCAB, 256)}
    with pytest.raises(ConfigError, match="untied embeddings"):
        scripts[1].joey_state_dict(untied)


def test_joeys_logs_give_its_speed_and_bleu(scripts):
    joey_peer = scripts[0]
    params, points = joey_peer.parse_training_log(TRAINING_LOG)

    assert params == 12_577_280
    assert points == [(10, 458), (20, 401), (30, 420)]
    assert joey_peer.measured_rate(points) == 410.5  # the first interval holds the start-up
    with pytest.raises(ConfigError, match="fewer than two speed intervals"):
        joey_peer.measured_rate(points[:1])
    assert joey_peer.parse_test_log(TEST_LOG) == (64.9408, 39.88)
    with pytest.raises(ConfigError, match="no generation time or BLEU"):
        joey_peer.parse_test_log(TEST_LOG.splitlines()[0])


def test_the_runs_corpus_is_written_as_joeys_plain_files(scripts, reference, multi30k_root, tmp_path, monkeypatch):
    """Read as training reads it, from --data-root or NMT_DATA_DIR rather than the training machine's root."""
    cfg, _ = reference
    stored = {**cfg.data, "root": "/the/training/machines/data"}
    monkeypatch.setenv("NMT_DATA_DIR", str(multi30k_root))
    data_cfg = scripts[0].run_corpus(stored, None)
    assert data_cfg["root"] == str(multi30k_root)
    assert scripts[0].run_corpus(stored, "/given")["root"] == "/given"

    sources = scripts[0].write_plain_corpus(data_cfg, tmp_path, ["val"])

    for lang in ("de", "en"):
        assert read_lines(tmp_path / f"val.{lang}") == read_lines(multi30k_root / "multi30k" / f"val.{lang}.gz")
    assert sources == {"val": read_lines(multi30k_root / "multi30k" / "val.de.gz")}
    with pytest.raises(ConfigError, match="'nope' is not a Multi30k split"):
        scripts[0].write_plain_corpus(data_cfg, tmp_path, ["nope"])


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--checkpoint", "x.pt"], "error: the following arguments are required: --joey-python"),
    (["--joey-python", "python", "train", "--checkpoint", "x.pt", "--updates", "20"], "--updates must be at least 30"),
    (["--joey-python", "python", "decode", "--checkpoint", "missing.pt"], "error: --checkpoint missing.pt does not exist"),
    (["--joey-python", "/nowhere/python", "decode", "--checkpoint", str(SCRIPT)],
     "error: --joey-python /nowhere/python cannot be run: No such file or directory"),
    (["--joey-python", "./python", "decode", "--checkpoint", str(SCRIPT)],  # a Python without joeynmt
     "error: --joey-python ./python cannot import joeynmt: install it as scripts/joey_peer.py's help says"),
])
def test_a_mistake_is_one_line_and_exit_status_2(tmp_path, args, message):
    without_joey = tmp_path / "python"
    without_joey.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no module named joeynmt' >&2\nexit 1\n")
    without_joey.chmod(0o755)
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path)

    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
