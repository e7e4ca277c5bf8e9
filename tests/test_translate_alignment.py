"""The word alignment of a translation, from its attention (`nmt-translate alignment=true`; the
command itself is also tested end to end in test_end_to_end.py, on a trained model)."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint

from nmt.analysis.alignment import translation_links
from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_links_join_each_target_word_to_the_source_word_it_attends_to_most():
    src = ["▁Ein", "▁Hund", "e", "▁läuft", "</s>"]  # words: Ein, Hunde, läuft
    tgt = ["▁A", "▁dog", "s", "▁run", "</s>"]  # words: A, dogs, run
    attention = np.array([  # (target pieces, source pieces)
        [0.7, 0.1, 0.1, 0.0, 0.1],  # A -> Ein
        [0.3, 0.2, 0.2, 0.2, 0.1],  # dogs (row 1 of 2): Hunde gets 0.4 summed over its pieces
        [0.3, 0.2, 0.2, 0.2, 0.1],  # dogs (row 2 of 2): the mean of the two rows is the word's row
        [0.0, 0.1, 0.0, 0.3, 0.6],  # run -> läuft: </s> gets more, but </s> is no word
        [0.1, 0.1, 0.1, 0.1, 0.6],  # the </s> row is no word either
    ])
    assert translation_links(attention, src, tgt) == {(0, 0), (1, 1), (2, 2)}
    attention[1:3] = [0.4, 0.1, 0.1, 0.3, 0.1]  # now Ein (0.4) beats Hunde (0.2) for "dogs"
    assert translation_links(attention, src, tgt) == {(0, 0), (0, 1), (2, 2)}


def test_translate_writes_each_hypothesis_with_the_links_of_its_own_attention(tmp_path, capsys):
    """nmt-translate alignment=true nbest=2: every line ends with its own hypothesis's links,
    `source word-target word`, within both sentences' words."""
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    sources = ["ein hund läuft über die wiese", "", "zwei männer spielen fußball"]
    (tmp_path / "in.txt").write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", f"input={tmp_path / 'in.txt'}",
                                              "beam_size=2", "nbest=2", "alignment=true", "max_len_b=4"])
    translate.run(cfg)
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * len(sources) and all(len(row) == 3 for row in rows)
    api = Translator.load(checkpoint, "cpu").translate(sources, beam_size=2, nbest=2, max_len_b=4,
                                                       return_attention=True)
    for k, (source, hyps) in enumerate(zip(sources, api, strict=True)):
        for (_, text, links), hyp in zip(rows[2 * k: 2 * k + 2], hyps + hyps[-1:] * (2 - len(hyps)), strict=True):
            assert text == hyp.text
            pairs = {tuple(map(int, link.split("-"))) for link in links.split()}
            assert all(0 <= i < len(source.split()) and 0 <= j < len(text.split()) for i, j in pairs)
            expected = set() if hyp.attention is None else translation_links(hyp.attention, hyp.src_pieces,
                                                                              hyp.tgt_pieces)
            assert pairs == expected
    own = [set(rows[2 * k + n][2].split()) for k in (0, 2) for n in (0, 1)]
    assert own[0] != own[1] or own[2] != own[3]  # the hypotheses' links differ: each line has its own
