"""The Python API's scores: every beam size and forced decoding divide by the same length penalty."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint

from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.errors import CheckpointError
from nmt.inference.translator import Translator, warn_longer_than_training
from nmt.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCE, TRANSLATION = "ein hund läuft über die wiese", "a dog runs across the meadow"


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    return Translator.load(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt"), "cpu")


def gnmt_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_greedy_score_is_divided_by_the_length_penalty(translator, alpha):
    [[raw]] = translator.translate([SOURCE], beam_size=1, length_penalty=0.0)
    [[penalised]] = translator.translate([SOURCE], beam_size=1, length_penalty=alpha)
    assert penalised.tgt_pieces == raw.tgt_pieces
    length = len(raw.tgt_pieces)  # produced pieces, EOS included
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(length, alpha), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_forced_score_uses_the_penalty_translate_uses(translator, alpha):
    raw = translator.force(SOURCE, TRANSLATION, length_penalty=0.0)
    penalised = translator.force(SOURCE, TRANSLATION, length_penalty=alpha)
    assert penalised.score == pytest.approx(raw.score / gnmt_penalty(len(raw.tgt_pieces), alpha), rel=1e-6)
    assert translator.force(SOURCE, TRANSLATION).score == pytest.approx(
        raw.score / gnmt_penalty(len(raw.tgt_pieces), 1.0), rel=1e-6)  # the default is translate's 1.0


def broken_copy(source, target, **changes):
    state = load_checkpoint(source)
    state.pop("format_version")
    save_checkpoint({**state, **changes}, target)
    return target


def test_a_checkpoint_that_does_not_fit_the_model_names_the_file_and_the_weight(tmp_path):
    source = make_checkpoint(tmp_path / "good.pt")
    weights = {**load_checkpoint(source)["model"], "src_embed.weight": torch.zeros(3, 3)}
    path = broken_copy(source, tmp_path / "shape.pt", model=weights)
    with pytest.raises(CheckpointError, match=f"^checkpoint {path} does not match this version of nmt: "
                                              "size mismatch for src_embed.weight"):
        Translator.load(path, "cpu")
    path = broken_copy(source, tmp_path / "tokenizer.pt", tokenizers={"joint": True, "src": b"garbage"})
    with pytest.raises(CheckpointError, match=f"^{path}: checkpoint has no usable tokenizer models"):
        Translator.load(path, "cpu")


def test_nbest_lines_give_each_inputs_hypotheses_in_input_order_best_first_with_their_scores(tmp_path, capsys):
    """nmt-translate nbest=3: three `score<TAB>translation` lines per input line, in input order, each
    input's best first; a blank input still gets its three (empty) lines."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    sources = ["ein hund läuft über die wiese", "", "zwei männer"]
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", f"input={tmp_path / 'in.txt'}",
                                              "beam_size=3", "nbest=3"])
    translate.run(cfg)
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 * len(sources) and all(len(row) == 2 for row in rows)
    api = Translator.load(checkpoint, "cpu").translate(sources, beam_size=3, nbest=3)
    for k, hyps in enumerate(api):
        group = rows[3 * k: 3 * k + 3]
        scores = [float(score) for score, _ in group]
        assert scores == sorted(scores, reverse=True)  # best first
        if not sources[k]:
            assert group == [["0.0000", ""]] * 3
            continue
        assert len({h.text for h in hyps}) > 1  # distinct hypotheses: their order can be checked
        assert [text for _, text in group] == [h.text for h in hyps]
        assert scores == pytest.approx([h.score for h in hyps], abs=1e-4)


def test_inputs_longer_than_any_training_sentence_are_named_in_a_warning(translator, caplog):
    """A paragraph on one line came back as its first sentence or two, without a word of why."""
    long_line = " ".join([SOURCE] * 20)  # 120 words, more subwords than data.max_len (100)
    pieces = len(translator.tokenizers.src.encode([long_line])[0])
    assert pieces > translator.config["data"]["max_len"] == 100
    translator.translate([SOURCE, long_line], beam_size=1, max_len_a=0, max_len_b=2)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"input line 2: {pieces} subwords, longer than any sentence the model was trained on (data.max_len "
        "100): the translation may stop early; give long text one sentence a line"]
    caplog.clear()
    translator.translate([SOURCE] * 3, beam_size=1, max_len_a=0, max_len_b=2)
    assert not caplog.records


def test_the_warning_for_many_long_inputs_names_the_first_five_and_the_longest(caplog):
    lengths = [3, 101, 5, 150, 120, 101, 102, 103, 104, 100]
    warn_longer_than_training([[7] * n for n in lengths], max_len=100)
    assert [r.getMessage() for r in caplog.records] == [
        "input lines 2, 4, 5, 6, 7 and 2 more: up to 150 subwords, longer than any sentence the model was "
        "trained on (data.max_len 100): the translation may stop early; give long text one sentence a line"]
    caplog.clear()
    warn_longer_than_training([[7] * 101], max_len=100)  # a typed line, a plot's sentence
    assert caplog.records[0].getMessage().startswith("the input: 101 subwords, longer than any sentence")
    caplog.clear()
    warn_longer_than_training([[7] * n for n in lengths], max_len=None)  # trained without a limit: nothing known
    assert not caplog.records
