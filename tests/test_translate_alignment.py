"""The word alignment of a translation, from its attention (`nmt-translate alignment=true`; the
command itself is tested end to end in test_end_to_end.py, on a trained model)."""

import numpy as np
import pytest

from nmt.analysis.alignment import translation_links

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
