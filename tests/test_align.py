"""Word alignment from attention (nmt.analysis.alignment) and the nmt-align command."""

import os
import subprocess

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint

from nmt.analysis.alignment import (
    GoldAlignment,
    alignment_scores,
    argmax_links,
    diagonal_links,
    drop_links_outside,
    encode_words,
    flip,
    format_pharaoh,
    read_gold,
    word_attention,
)
from nmt.cli import align
from nmt.cli.common import config_dir
from nmt.data.readers import read_lines
from nmt.data.tokenizer import BOS, EOS, PAD, Tokenizers
from nmt.errors import ConfigError, DataError
from nmt.inference.translator import Translator
from nmt.training.checkpoint import load_checkpoint

# --- AER by hand ---------------------------------------------------------------------------------------


def gold(sure, possible=()):
    return GoldAlignment(set(sure), set(sure) | set(possible))


def test_aer_of_a_hand_checked_sentence():
    # S = {0-0, 1-1}, P = S + {1-2}; A = {0-0, 1-2, 2-2}: A∩S = {0-0}, A∩P = {0-0, 1-2}.
    scores = alignment_scores([{(0, 0), (1, 2), (2, 2)}], [gold({(0, 0), (1, 1)}, {(1, 2)})])
    assert scores.precision == pytest.approx(2 / 3)  # |A∩P| / |A|
    assert scores.recall == pytest.approx(1 / 2)  # |A∩S| / |S|
    assert scores.aer == pytest.approx(1 - (1 + 2) / (3 + 2))  # 0.4
    assert (scores.links, scores.sure, scores.possible) == (3, 2, 3)


def test_aer_pools_counts_over_sentences_before_dividing():
    # Adding a sentence with one sure link and no prediction: |A∩S| 1, |A∩P| 2, |A| 3, |S| 3.
    scores = alignment_scores([{(0, 0), (1, 2), (2, 2)}, set()],
                              [gold({(0, 0), (1, 1)}, {(1, 2)}), gold({(0, 0)})])
    assert scores.aer == pytest.approx(1 - 3 / 6)
    assert scores.recall == pytest.approx(1 / 3) and scores.precision == pytest.approx(2 / 3)


def test_aer_is_zero_for_any_alignment_between_sure_and_possible():
    g = gold({(0, 0), (1, 1)}, {(1, 2), (2, 1)})
    for predicted in ({(0, 0), (1, 1)}, {(0, 0), (1, 1), (1, 2)}, {(0, 0), (1, 1), (1, 2), (2, 1)}):
        assert alignment_scores([predicted], [g]).aer == 0.0
    assert alignment_scores([{(2, 2)}], [g]).aer == 1.0  # nothing right


# --- links from weights ---------------------------------------------------------------------------------


def test_argmax_links_one_per_target_word_and_none_for_silent_rows():
    weights = np.array([[0.1, 0.9, 0.0], [0.6, 0.2, 0.2], [0.0, 0.0, 0.0]])  # (target words, source words)
    assert argmax_links(weights) == {(1, 0), (0, 1)}  # the all-zero row (attention on </s>) gets no link
    assert argmax_links(np.zeros((0, 3))) == set()


def test_argmax_links_take_the_maximum_of_each_target_row():
    # Rows are target words, columns source words: each target word links to its row's maximum,
    # which here differs from each column's maximum.
    weights = np.array([[0.1, 0.8, 0.1], [0.1, 0.5, 0.4], [0.6, 0.3, 0.1]])
    assert argmax_links(weights) == {(1, 0), (1, 1), (0, 2)}
    wide = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])  # 2 target words, 4 source words
    assert argmax_links(wide) == {(3, 0), (0, 1)}
    assert argmax_links(wide.T) == {(1, 0), (0, 1), (0, 2), (0, 3)}


def test_diagonal_baseline_and_flip_and_pharaoh_text():
    assert diagonal_links(3, 3) == {(0, 0), (1, 1), (2, 2)}
    assert diagonal_links(4, 2) == {(1, 0), (3, 1)}  # (j + 0.5) * 4 / 2 = 1, 3
    assert diagonal_links(1, 3) == {(0, 0), (0, 1), (0, 2)}
    assert diagonal_links(0, 3) == set()
    assert flip({(2, 0)}) == {(0, 2)}
    assert format_pharaoh({(10, 2), (0, 1), (2, 0)}) == "0-1 2-0 10-2"


# --- gold files -------------------------------------------------------------------------------------


def test_read_gold_numbered_format_with_sure_and_possible(tmp_path):
    path = tmp_path / "gold.wa"
    path.write_text("1 0 0 S\n1 1 2 P\n3 3 1\n\n", encoding="utf-8")
    g = read_gold(path, 3)
    assert g[0].sure == {(0, 0)} and g[0].possible == {(0, 0), (1, 2)}
    assert g[1].sure == g[1].possible == set()  # a sentence in between may have no links
    assert g[2].sure == g[2].possible == {(3, 1)}  # no S/P means sure
    with pytest.raises(DataError, match="sentence 4 is outside 1..3"):
        path.write_text("4 0 0 S\n")
        read_gold(path, 3)
    path.write_text("1 0 0 X\n")  # a bad mark on the first line: still this format, named as such
    with pytest.raises(DataError, match=r"gold.wa:1: expected `sentence src tgt \[S\|P\]`, got '1 0 0 X'"):
        read_gold(path, 2)
    path.write_bytes(b"1 0 0 S\n\xeb\n")  # the hint fits nmt-align, which has no data.* options
    with pytest.raises(DataError, match=r"gold.wa:2: invalid UTF-8 .*; convert the file to UTF-8"):
        read_gold(path, 2)


def test_read_gold_pharaoh_lines(tmp_path):
    path = tmp_path / "gold.txt"
    path.write_text("0-0 1?2\n\n2p1\n", encoding="utf-8")
    g = read_gold(path, 3)
    assert (g[0].sure, g[0].possible) == ({(0, 0)}, {(0, 0), (1, 2)})
    assert g[2].sure == set() and g[2].possible == {(2, 1)}
    with pytest.raises(DataError, match="has 3 lines of links but there are 2"):
        read_gold(path, 2)
    path.write_text("0:0\n")
    with pytest.raises(DataError, match="'0:0' is not a link"):
        read_gold(path, 1)


def test_numbered_gold_that_stops_before_the_last_sentence_is_refused(tmp_path):
    """The gold of the first 51 of 100 sentences was scored as if the rest had no links (AER 77.4, not 67.1)."""
    path = tmp_path / "gold.wa"
    path.write_text("1 0 0 S\n2 1 1 S\n")
    with pytest.raises(DataError) as refused:
        read_gold(path, 3)
    assert str(refused.value) == (f"{path} has links for sentences 1..2 only, but there are 3 sentence pairs: the "
                                  "gold must reach the last sentence (is it cut short, or another set's?); if the "
                                  "last ones truly have no links, write it one sentence a line (`i-j`), where an "
                                  "empty line is a sentence without links")
    path.write_text("0-0\n1-1\n\n")  # the way out the message names: the same gold, the third sentence empty
    assert [g.sure for g in read_gold(path, 3)] == [{(0, 0)}, {(1, 1)}, set()]


@pytest.mark.parametrize("text", ["\n\n", "0?0\n1p1\n", "1 0 0 P\n2 0 0 P\n"])
def test_gold_without_sure_links_is_refused(tmp_path, text):
    """Empty lines gave `recall nan | AER 100.0`: recall and AER count the sure links."""
    path = tmp_path / "gold"
    path.write_text(text)
    with pytest.raises(DataError) as refused:
        read_gold(path, 2)
    assert str(refused.value) == (f"{path} holds no sure links (`i-j`, or S in `sentence src tgt S`): recall and "
                                  "AER count them; is it a gold alignment?")


def test_gold_links_beyond_the_words_are_dropped_unless_too_many():
    g = [gold({(0, 0), (5, 1)}), gold({(1, 1), (0, 0), (2, 2), (1, 0), (0, 1)})]
    assert drop_links_outside(g, [2, 3], [2, 3], "gold", max_share=0.2) == [
        "sentence 1: 5-1 (only 2 source and 2 target words)"]
    assert g[0].sure == g[0].possible == {(0, 0)}
    with pytest.raises(DataError, match="2 of 3 gold links"):
        drop_links_outside([gold({(0, 0), (5, 1), (1, 7)})], [2], [2], "gold")


@pytest.fixture(scope="module")
def europarl(multi30k_root):
    folder = multi30k_root / "alignment" / "deen-europarl-100"
    if not (folder / "de-en.ref.wa").is_file():
        pytest.skip(f"no alignment test set at {folder}")
    return folder


def test_europarl_gold_formats_agree_and_the_bom_is_not_a_word(europarl):
    src = read_lines(europarl / "test.de")
    assert len(src) == 100 and src[0].split()[0] == "herr"  # the file starts with a byte-order mark
    numbered, pharaoh = read_gold(europarl / "de-en.ref.wa", 100), read_gold(europarl / "de-en.wa", 100)
    assert [g.sure for g in numbered] == [g.sure for g in pharaoh]
    assert numbered[0].sure == {(0, 0), (1, 1), (2, 2), (4, 3), (6, 5), (8, 7), (10, 11), (16, 14), (17, 15),
                                (18, 15), (19, 16)}  # sentence 1 of the README's example


def test_diagonal_baseline_on_europarl(europarl, capsys):
    run_align(["method=diagonal", f"src_file={europarl / 'test.de'}", f"tgt_file={europarl / 'test.en'}",
               f"gold={europarl / 'de-en.ref.wa'}"])
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 100
    assert "de-en.ref.wa: precision 30.2 | recall 36.2 | AER 67.1" in err  # the baseline in docs/attention.md
    assert "sentence 63: 12-16" in err  # the one gold link beyond its sentence is reported and skipped


@pytest.mark.parametrize("output", ["-", "links.txt"])
def test_output_dash_is_standard_output_and_a_name_is_a_file(europarl, tmp_path, monkeypatch, capsys, output):
    monkeypatch.chdir(tmp_path)
    run_align(["method=diagonal", f"src_file={europarl / 'test.de'}", f"tgt_file={europarl / 'test.en'}",
               f"output={output}"])
    written = sorted(p.name for p in tmp_path.iterdir())
    links = capsys.readouterr().out if output == "-" else (tmp_path / output).read_text(encoding="utf-8")
    assert written == ([] if output == "-" else [output])  # "-" is never a file's name
    assert len(links.splitlines()) == 100 and links.splitlines()[0].startswith("0-0 ")


# --- from pieces to words -----------------------------------------------------------------------------


class DiagonalStub:
    """Forced decoding at step t attends to source piece t (the last, </s>, once t runs past it)."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def eval(self):
        return self

    def encode(self, src, src_lengths):
        return {"lengths": src_lengths, "width": src.size(1), "step": 0}

    def decode_step(self, prev_tokens, state):
        b = prev_tokens.size(0)
        position = torch.clamp(state["lengths"] - 1, max=state["step"])  # (B,)
        attention = torch.nn.functional.one_hot(position, state["width"]).float()  # (B, S)
        log_probs = torch.full((b, self.vocab_size), -float(np.log(self.vocab_size)))  # (B, V)
        return log_probs, {**state, "step": state["step"] + 1}, attention

    def reorder_state(self, state, index):
        return state


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {"forward": make_checkpoint(folder / "de-en.pt"),
            "reverse": make_checkpoint(folder / "en-de.pt", src_lang="en", tgt_lang="de", seed=1)}


@pytest.fixture(scope="module")
def stub_translator(checkpoints):
    tokenizers = Tokenizers.from_dict(load_checkpoint(checkpoints["forward"])["tokenizers"])
    return Translator(DiagonalStub(tokenizers.tgt.vocab_size), tokenizers, {}, torch.device("cpu"))


def test_encode_words_groups_every_piece_under_its_whitespace_token(stub_translator):
    tokenizer = stub_translator.tokenizers.src
    ids, groups = encode_words(tokenizer, ["ein", "hund", "läuft."])
    assert [i for g in groups for i in g] == list(range(len(ids)))
    assert [tokenizer.decode([[ids[i] for i in g]])[0] for g in groups] == ["ein", "hund", "läuft."]
    assert len(groups[1]) > 1  # "hund" is several pieces with this small vocabulary
    assert encode_words(tokenizer, []) == ([], [])


def test_diagonal_piece_attention_on_an_identical_sentence_aligns_each_word_with_itself(stub_translator):
    # Words of 1 to 6 pieces: target piece t lies in word j exactly when source piece t does.
    words = [["ein", "hund", "läuft", "über", "die", "wiese"], ["zwei", "männer", "x7"]]
    weights = word_attention(stub_translator, words, words, batch_sentences=1)
    for w, sentence in zip(weights, words, strict=True):
        assert w.shape == (len(sentence), len(sentence))
        np.testing.assert_allclose(w, np.eye(len(sentence)))
        assert argmax_links(w) == {(j, j) for j in range(len(sentence))}


def test_empty_sides_give_no_attention(stub_translator):
    assert word_attention(stub_translator, [[], ["ein"]], [["a"], []]) == [None, None]


# --- the command ------------------------------------------------------------------------------------------


def run_align(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        align.run(compose("align", overrides=[*overrides, "device=cpu"]))


@pytest.fixture
def texts(tmp_path):
    (tmp_path / "s.de").write_text("\ufeffein hund läuft\n\nzwei männer spielen fußball\n", encoding="utf-8")
    (tmp_path / "s.en").write_text("a dog runs\n\ntwo men play football\n", encoding="utf-8")
    (tmp_path / "gold").write_text("1 0 0 S\n1 1 1 S\n1 2 2 P\n3 0 0 S\n3 1 1 S\n3 2 2 S\n3 3 3 S\n")
    return tmp_path


def test_attention_alignment_links_every_target_word_once(checkpoints, texts, capsys):
    run_align([f"checkpoint={checkpoints['forward']}", f"src_file={texts / 's.de'}",
               f"tgt_file={texts / 's.en'}", f"output={texts / 'out.txt'}", f"gold={texts / 'gold'}"])
    lines = (texts / "out.txt").read_text().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    for line, n_src, n_tgt in ((lines[0], 3, 3), (lines[2], 4, 4)):
        links = [tuple(map(int, link.split("-"))) for link in line.split()]
        assert sorted(j for _, j in links) == list(range(n_tgt))  # one link per target word
        assert all(0 <= i < n_src for i, _ in links)
    assert "gold: precision" in capsys.readouterr().out  # with output= the scores go to stdout


def test_intersection_with_the_reverse_model_is_a_subset_of_both(checkpoints, texts, capsys):
    common = [f"src_file={texts / 's.de'}", f"tgt_file={texts / 's.en'}"]
    run_align([f"checkpoint={checkpoints['forward']}", *common])
    forward = capsys.readouterr().out.splitlines()
    backward = Translator.load(checkpoints["reverse"], "cpu")
    de, en = ([s.split() for s in read_lines(texts / name)] for name in ("s.de", "s.en"))
    reverse = [flip(argmax_links(w)) if w is not None else set() for w in word_attention(backward, en, de)]
    run_align([f"checkpoint={checkpoints['forward']}", f"reverse_checkpoint={checkpoints['reverse']}", *common])
    both = capsys.readouterr().out.splitlines()
    for f, r, b in zip(forward, reverse, both, strict=True):
        assert b == format_pharaoh({tuple(map(int, x.split("-"))) for x in f.split()} & r)
    run_align([f"checkpoint={checkpoints['forward']}", f"reverse_checkpoint={checkpoints['reverse']}",
               "symmetrize=union", *common])
    union = capsys.readouterr().out.splitlines()
    assert all(set(b.split()) <= set(u.split()) for b, u in zip(both, union, strict=True))


@pytest.mark.parametrize(("overrides", "message"), [
    (["method=attention"], "method=attention needs checkpoint=PATH"),
    (["method=nearest"], "method='nearest' is not valid"),
    (["method=diagonal", "symmetrize=grow"], "symmetrize='grow' is not valid"),
    # silently ignored without a second model
    (["method=diagonal", "symmetrize=union"], r"symmetrize=union combines the links of two models; give "
                                              r"reverse_checkpoint=PATH \(a tgt->src model\) too"),
])
def test_option_mistakes_name_the_option(texts, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_align([f"src_file={texts / 's.de'}", f"tgt_file={texts / 's.en'}", *overrides])


def test_empty_texts_are_refused(tmp_path):
    """They gave `precision nan | recall nan | AER nan` and exit status 0."""
    for name in ("s.de", "s.en", "gold"):
        (tmp_path / name).write_text("")
    with pytest.raises(DataError) as refused:
        run_align(["method=diagonal", f"src_file={tmp_path / 's.de'}", f"tgt_file={tmp_path / 's.en'}",
                   f"gold={tmp_path / 'gold'}"])
    assert str(refused.value) == f"src_file={tmp_path / 's.de'} and tgt_file={tmp_path / 's.en'} are empty: nothing to align"


def test_reverse_checkpoint_of_the_same_direction_is_refused(checkpoints, texts):
    with pytest.raises(ConfigError, match="must be the opposite direction"):
        run_align([f"checkpoint={checkpoints['forward']}", f"reverse_checkpoint={checkpoints['forward']}",
                   f"src_file={texts / 's.de'}", f"tgt_file={texts / 's.en'}"])


def test_console_script_writes_pharaoh_and_scores(checkpoints, texts):
    result = subprocess.run(["nmt-align", f"checkpoint={checkpoints['forward']}", "src_file=s.de", "tgt_file=s.en",
                             "gold=gold"], capture_output=True, text=True, cwd=texts, timeout=120,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.split("\n")) == 4 and "gold: precision" in result.stderr
    assert sorted(p.name for p in texts.iterdir()) == ["gold", "s.de", "s.en"]  # no Hydra output folder
