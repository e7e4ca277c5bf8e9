"""The word alignment of a translation, from its attention (`nmt-translate alignment=true`; the
command itself is also tested end to end in test_end_to_end.py, on a trained model).

Its words are the whitespace tokens (str.split()) of the input line and of the printed translation,
as nmt-align's are, whatever SentencePiece's normalisation makes of them: a word it removes, splits
or glues keeps its number, and so do all words after it."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint

from nmt.analysis.alignment import printed_word_pieces, sentence_word_pieces, translation_links
from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.inference.translator import Translation, Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLEAN = "ein hund läuft über die wiese"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def tokenizers(checkpoint):
    return Translator.load(checkpoint, "cpu").tokenizers


def pieces_of_words(tokenizer, text):
    """sentence_word_pieces, checked to give every piece of the text's own encoding to one word, in order."""
    ids, groups = sentence_word_pieces(tokenizer, text)
    assert ids == tokenizer.encode([text.strip()])[0]
    assert len(groups) == len(text.split())
    assert [i for g in groups for i in g] == list(range(len(ids)))
    return ids, groups


@pytest.mark.parametrize("junk", ["\x01", "\u200b", "\x01 \u200b"])
def test_a_word_that_normalises_away_gets_no_pieces_but_keeps_its_number(tokenizers, junk):
    ids, groups = pieces_of_words(tokenizers.src, CLEAN)
    junk_ids, junk_groups = pieces_of_words(tokenizers.src, f"ein {junk} hund läuft über die wiese")
    assert junk_ids == ids  # the model reads the same pieces
    assert junk_groups == [groups[0], *[[] for _ in junk.split()], *groups[1:]]


@pytest.mark.parametrize("text", ["ein  hund läuft über   die wiese", "ein\u00a0hund läuft über die\u00a0wiese",
                                  " ein hund\tläuft über die wiese\u3000", "ein hund läuft über die ｗｉｅｓｅ"])
def test_spaces_of_any_kind_and_number_and_fullwidth_letters_change_nothing(tokenizers, text):
    assert pieces_of_words(tokenizers.src, text) == pieces_of_words(tokenizers.src, CLEAN)


def test_a_zero_width_space_inside_a_word_leaves_it_one_word(tokenizers):
    ids, groups = pieces_of_words(tokenizers.src, CLEAN)
    glued_ids, glued_groups = pieces_of_words(tokenizers.src, "ein hund\u200bläuft über die wiese")
    assert glued_ids == ids  # SentencePiece reads "hund läuft"
    assert glued_groups == [groups[0], groups[1] + groups[2], *groups[3:]]


def test_a_character_that_nfkc_spells_with_a_space_stays_in_its_word(tokenizers):
    """"´" (U+00B4) is " ́" after NFKC: SentencePiece reads "ein hund ́ läuft", four words."""
    tokenizer = tokenizers.src
    ids, groups = pieces_of_words(tokenizer, "ein hund´ läuft")
    assert len(tokenizer.decode([ids])[0].split()) == 4
    first, last = (len(tokenizer.encode([word])[0]) for word in ("ein", "läuft"))
    assert [len(g) for g in groups] == [first, len(ids) - first - last, last]


def test_a_control_character_that_str_split_splits_on_but_sentencepiece_removes(tokenizers):
    """U+001C separates two words for str.split; SentencePiece drops it and reads one word."""
    ids, groups = pieces_of_words(tokenizers.src, "hund\x1cläuft")
    assert len(tokenizers.src.decode([ids])[0].split()) == 1
    assert groups[0] and groups[0] == list(range(len(tokenizers.src.encode(["hund"])[0])))


def test_printed_words_are_the_whitespace_tokens_of_the_decoded_text(tokenizers):
    """"<unk>" is printed " ⁇ ", a word of its own; a trailing lone "▁" spells no word."""
    tokenizer = tokenizers.tgt
    pieces = [*tokenizer.pieces("a dog"), "<unk>", *tokenizer.pieces("runs"), "\u2581"]
    text = tokenizer.decode_pieces(pieces)
    groups = printed_word_pieces(tokenizer, pieces)
    assert text.split() == ["a", "dog", "\u2047", "runs"]
    assert [tokenizer.decode_pieces([pieces[i] for i in g]).strip() for g in groups] == text.split()
    assert [i for g in groups for i in g] == list(range(len(pieces) - 1))


def test_links_join_each_target_word_to_the_input_word_it_attends_to_most(tokenizers):
    """Source columns of a word are summed, target rows of a word averaged, </s> is no word, and the
    numbers count the input's whitespace words: the zero-width space is word 1."""
    source, target = "ein \u200b hund läuft", "a dog runs"
    ids, src_groups = sentence_word_pieces(tokenizers.src, source)
    tgt_pieces = tokenizers.tgt.pieces(target)
    tgt_groups = printed_word_pieces(tokenizers.tgt, tgt_pieces)
    attention = np.full((len(tgt_pieces) + 1, len(ids) + 1), 0.01)  # (target pieces, source pieces), </s> last
    attention[:, -1] = 0.5  # </s> gets the most, but it is no word
    for j, i in [(0, 0), (1, 2), (2, 3)]:
        attention[tgt_groups[j], src_groups[i][0]] = 0.2
    translation = Translation(target, 0.0, tokenizers.src.ids_to_pieces(ids) + ["</s>"], tgt_pieces + ["</s>"],
                              attention)
    assert translation_links(translation, source, tokenizers) == {(0, 0), (2, 1), (3, 2)}
    assert len(src_groups[0]) == 1 and len(src_groups[2]) > 1  # "▁ein"; "hund" in several pieces
    attention[tgt_groups[1], src_groups[0][0]] = 0.3  # "dog": more on "ein" than on any piece of "hund"...
    attention[np.ix_(tgt_groups[1], src_groups[2])] = 0.2  # ...but less than on all of "hund"'s together
    assert translation_links(translation, source, tokenizers) == {(0, 0), (2, 1), (3, 2)}
    attention[np.ix_(tgt_groups[1], src_groups[2])] = 0.01
    assert translation_links(translation, source, tokenizers) == {(0, 0), (0, 1), (3, 2)}


def test_translate_writes_each_hypothesis_with_the_links_of_its_own_attention(checkpoint, tmp_path, capsys):
    """nmt-translate alignment=true nbest=2: every line ends with its own hypothesis's links,
    `source word-target word`, within both sentences' words."""
    sources = ["ein hund läuft über die wiese", "", "zwei männer spielen fußball"]
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", f"input={tmp_path / 'in.txt'}",
                                              "beam_size=2", "nbest=2", "alignment=true", "max_len_b=4"])
    translate.run(cfg)
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * len(sources) and all(len(row) == 3 for row in rows)
    translator = Translator.load(checkpoint, "cpu")
    api = translator.translate(sources, beam_size=2, nbest=2, max_len_b=4, return_attention=True)
    for k, (source, hyps) in enumerate(zip(sources, api, strict=True)):
        for (_, text, links), hyp in zip(rows[2 * k: 2 * k + 2], hyps + hyps[-1:] * (2 - len(hyps)), strict=True):
            assert text == hyp.text
            pairs = {tuple(map(int, link.split("-"))) for link in links.split()}
            assert all(0 <= i < len(source.split()) and 0 <= j < len(text.split()) for i, j in pairs)
            assert pairs == translation_links(hyp, source, translator.tokenizers)
    own = [set(rows[2 * k + n][2].split()) for k in (0, 2) for n in (0, 1)]
    assert own[0] != own[1] or own[2] != own[3]  # the hypotheses' links differ: each line has its own


def test_translate_numbers_the_input_words_the_model_does_not_see(checkpoint, tmp_path, capsys):
    """Junk SentencePiece normalises away (a zero-width space, a control character, a second space, a
    no-break space) leaves the model's input, so its translation and attention, as they were; the links
    point at the same words, whose numbers count every whitespace word of the line, junk included.
    A prefix makes the untrained model's translations several words long."""
    lines = {  # line -> the number in it of each word of CLEAN
        CLEAN: [0, 1, 2, 3, 4, 5],
        "ein \u200b hund läuft über die wiese": [0, 2, 3, 4, 5, 6],
        "ein hund \x01 \u200b läuft über  die\u00a0wiese": [0, 1, 4, 5, 6, 7],
        "ein hund\u200bläuft über die wiese": [0, 1, 1, 2, 3, 4],
    }
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    (tmp_path / "prefix.txt").write_text("a dog runs across the meadow\n" * len(lines), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", f"input={tmp_path / 'in.txt'}",
                                              f"prefix={tmp_path / 'prefix.txt'}", "beam_size=1", "alignment=true",
                                              "max_len_b=2"])
    translate.run(cfg)
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    links = [{tuple(map(int, link.split("-"))) for link in row[1].split()} for row in rows]
    assert len({text for text, _ in rows}) == 1 and len(rows[0][0].split()) >= 6  # one translation, all words linked
    assert len(links[0]) == len(rows[0][0].split()) and any(i >= 2 for i, _ in links[0])  # links beyond the junk
    for (line, number), line_links in zip(lines.items(), links, strict=True):
        assert all(i < len(line.split()) for i, _ in line_links)
        assert line_links == {(number[i], j) for i, j in links[0]}
