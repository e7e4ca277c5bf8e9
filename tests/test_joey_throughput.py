"""scripts/joey_throughput.py: Joey NMT measured on our machine must train our reference model.

Joey NMT itself is not installed here (the script runs it from a Python of its own), so these check
what the script hands it and what it reads back: the config against experiment=m30k_deen_ref, the
vocabulary against the SentencePiece model, the parsing of Joey's log, and the user's mistakes."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece

from nmt.cli.common import compose_checked
from nmt.data.readers import read_lines
from nmt.data.tokenizer import SubwordTokenizer
from nmt.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "joey_throughput.py"

# Two lines of Joey NMT 2.3's training log, as it wrote them on our CPU.
JOEY_LOG = """\
2026-12-07 04:50:11,266 - INFO - joeynmt.model - Total params: 12577280
2026-12-07 04:50:51,596 - INFO - joeynmt.training - Epoch   1, Step:       10, Batch Loss:    97.196045, \
Batch Acc: 0.078495, Tokens per Sec:      458, Lr: 0.000500
2026-12-07 04:51:33,459 - INFO - joeynmt.training - Epoch   1, Step:       20, Batch Loss:    78.841324, \
Batch Acc: 0.075897, Tokens per Sec:      401, Lr: 0.000500
2026-12-07 04:52:15,101 - INFO - joeynmt.training - Epoch   1, Step:       30, Batch Loss:    70.000000, \
Batch Acc: 0.080000, Tokens per Sec:      420, Lr: 0.000500
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    sys.path.insert(0, str(SCRIPT.parent))  # it imports scripts/benchmark.py as a neighbour
    try:
        spec = importlib.util.spec_from_file_location("joey_throughput", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.fixture(scope="module")
def spm_model(multi30k_root, tmp_path_factory) -> Path:
    """A SentencePiece model trained as nmt-train trains one (our special ids), on the real corpus."""
    texts = read_lines(multi30k_root / "multi30k" / "val.en.gz")
    path = tmp_path_factory.mktemp("spm") / "spm.model"
    path.write_bytes(SubwordTokenizer.train(texts, vocab_size=300).to_bytes())
    return path


def test_the_vocabulary_is_the_models_pieces_after_joeys_four_specials(script, spm_model, tmp_path):
    """Joey puts <unk> <pad> <s> </s> first: with ours left out, the vocabulary keeps our size."""
    written = script.write_joey_vocab(spm_model, tmp_path / "vocab.txt")

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert written == len(lines) == processor.get_piece_size() - 4
    assert not {"<unk>", "<pad>", "<s>", "</s>"} & set(lines)
    assert lines == [processor.id_to_piece(i) for i in range(4, processor.get_piece_size())]


def test_joeys_config_is_the_reference_experiments_model_and_training(script, tmp_path):
    cfg = compose_checked("train", ["experiment=m30k_deen_ref"])
    joey = script.joey_config(tmp_path, tmp_path / "corpus", tmp_path / "spm.model", tmp_path / "vocab.txt",
                              "de", "en", cfg.trainer.batch_tokens, 60, "cpu")

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
    assert training["updates"] == 60 and training["validation_freq"] > 60  # no validation in the timing
    assert joey["data"]["src"]["lang"] == cfg.data.src_lang and joey["data"]["trg"]["lang"] == cfg.data.tgt_lang


def test_the_rate_is_the_median_of_joeys_intervals_after_the_first(script):
    params, points = script.parse_joey_log(JOEY_LOG)

    assert params == 12_577_280
    assert points == [(10, 458), (20, 401), (30, 420)]
    assert script.measured_rate(points) == 410.5
    with pytest.raises(ConfigError, match="fewer than two speed intervals"):
        script.measured_rate(points[:1])


def test_the_corpus_is_written_as_joeys_plain_files(script, multi30k_root, tmp_path):
    script.write_plain_corpus(multi30k_root / "multi30k", tmp_path, ["val"], ["de", "en"])

    for lang in ("de", "en"):
        assert read_lines(tmp_path / f"val.{lang}") == read_lines(multi30k_root / "multi30k" / f"val.{lang}.gz")


@pytest.mark.parametrize(("args", "message"), [
    (["--spm", "x.model", "--updates", "20"], "error: the following arguments are required: --joey-python"),
    (["--joey-python", "python", "--spm", "x.model", "--updates", "20"], "--updates must be at least 30"),
    (["--joey-python", "python", "--spm", "missing/spm.model"], "error: --spm missing/spm.model does not exist"),
    (["--joey-python", "python", "--spm", str(SCRIPT), "--data-root", "/nowhere"],
     "error: /nowhere/multi30k/train.de (or .gz) does not exist: --data-root must hold multi30k/"),
])
def test_a_mistake_is_one_line_and_exit_status_2(tmp_path, args, message):
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path)

    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
