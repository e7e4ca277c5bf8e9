"""Blocking repeated n-grams (no_repeat_ngram_size): no output holds an n-gram of subwords twice, beam
and greedy search equal a plain-Python search with the same rule, scores stay the model's, target
prefixes are still obeyed, and the commands take the option."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from toy_models import ToyModel, pad_batch, reference_beam_search, repeated_ngram_ends

from nmt.analysis.repeats import holds_repeated_ngram
from nmt.cli import translate
from nmt.cli.common import config_dir
from nmt.inference.prefix import PieceIndex, Spelling
from nmt.inference.repetition import ban_repeated_ngrams_
from nmt.inference.search import Sampling, beam_search, forced_decode, greedy_search, sample
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Long sources and a small vocabulary: without the rule the toy model repeats itself.
SENTENCES = [[3, 5, 1, 7, 8, 2, 4], [2, 6, 6, 6, 6, 6], [4, 4, 6, 8, 1, 2, 3, 5], [5, 3, 7]]
SEEDS = range(4)


def test_a_repeated_ngram_of_ids_is_found_wherever_it_is():
    assert holds_repeated_ngram([3, 4, 5, 3, 4], 2)  # "3 4" twice
    assert holds_repeated_ngram([5, 5, 5], 2)  # overlapping windows count
    assert not holds_repeated_ngram([3, 4, 4, 3], 2) and not holds_repeated_ngram([3, 4, 5, 3, 4], 3)
    assert not holds_repeated_ngram([], 1) and holds_repeated_ngram([7, 7], 1)


def test_the_tokens_that_would_repeat_an_ngram_are_banned_for_active_hypotheses_only():
    tokens = torch.tensor([[[3, 4, 5, 3, 4], [3, 4, 5, 3, 4], [5, 5, 5, 5, 5]]])  # (B=1, K=3, T=5)
    active = torch.tensor([[True, False, True]])  # (1, 3)
    for n, banned in ((3, {5}), (2, {5}), (1, {3, 4, 5}), (5, set()), (6, set())):
        candidates = torch.zeros(1, 3, 8)  # (B, K, V)
        ban_repeated_ngrams_(candidates, tokens, n, active)
        assert {t for t in range(8) if candidates[0, 0, t] == -math.inf} == banned, n
        assert not (candidates[0, 1] == -math.inf).any()  # inactive: untouched
        # "5 5 5 5 5": every n-gram is all 5s, so 5 ends one (several windows ban the same token).
        assert {t for t in range(8) if candidates[0, 2, t] == -math.inf} == ({5} if n <= 5 else set())
    with pytest.raises(ValueError, match="n-gram size must be >= 1"):
        ban_repeated_ngrams_(torch.zeros(1, 3, 8), tokens, 0, active)


def test_the_plain_python_rule_agrees_with_a_hand_count():
    assert repeated_ngram_ends([3, 4, 5, 3, 4], 3) == {5}
    assert repeated_ngram_ends([3, 4, 5, 3, 4], 2) == {5}
    assert repeated_ngram_ends([3, 4, 5, 3, 4], 1) == {3, 4, 5}
    assert repeated_ngram_ends([3, 4], 3) == set()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_beam_and_greedy_search_block_repeats_as_the_reference_does(seed, n):
    model, k = ToyModel(seed=seed, eos_bias=-2.0), 3
    src, lengths = pad_batch(SENTENCES)
    beams = beam_search(model, src, lengths, beam_size=k, nbest=k, length_penalty=1.0, max_len_b=4,
                        no_repeat_ngram_size=n)
    greedy = greedy_search(model, src, lengths, max_len_b=4, no_repeat_ngram_size=n)
    for sentence, hyps, best in zip(SENTENCES, beams, greedy, strict=True):
        max_len = math.floor(1.5 * len(sentence) + 4)
        expected = reference_beam_search(model, sentence, k, 1.0, max_len, no_repeat=n)
        assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
        assert [h.score for h in hyps] == pytest.approx([score for _, score in expected])
        assert best[0].tokens == reference_beam_search(model, sentence, 1, 0.0, max_len, no_repeat=n)[0][0]
        assert not any(holds_repeated_ngram(h.tokens, n) for h in hyps + best)


def test_without_the_rule_the_toy_model_repeats_itself():
    # The tests above would prove little if the searches never repeated an n-gram anyway.
    src, lengths = pad_batch(SENTENCES)
    outputs = [h.tokens for seed in SEEDS for hyps in beam_search(ToyModel(seed=seed, eos_bias=-2.0), src, lengths,
                                                                   beam_size=3, nbest=3, max_len_b=4) for h in hyps]
    assert sum(holds_repeated_ngram(tokens, 2) for tokens in outputs) >= 10
    assert any(holds_repeated_ngram(tokens, 3) for tokens in outputs)


@pytest.mark.parametrize("seed", SEEDS)
def test_samples_repeat_no_ngram_and_keep_the_models_scores(seed):
    model = ToyModel(seed=seed, eos_bias=-2.0)
    src, lengths = pad_batch(SENTENCES)
    drawn = sample(model, src, lengths, samples=4, sampling=Sampling(temperature=1.5, seed=seed), max_len_b=4,
                   no_repeat_ngram_size=2)
    for sentence, hyps in zip(SENTENCES, drawn, strict=True):
        for hyp in hyps:
            assert not holds_repeated_ngram(hyp.tokens, 2)
            # Scores are the model's own log-probs: forced decoding of the output gives them back.
            one_src, one_length = pad_batch([sentence])
            assert forced_decode(model, one_src, one_length, [hyp.tokens])[0].score == pytest.approx(hyp.score)


def test_a_prefix_that_repeats_itself_is_still_forced_and_blocking_starts_after_it():
    model = ToyModel(seed=1, eos_bias=-2.0)
    src, lengths = pad_batch(SENTENCES)
    prefix = [[3, 4, 3, 4], [], [5, 5, 5], [6]]
    for search in (beam_search, greedy_search):
        results = search(model, src, lengths, max_len_b=4, no_repeat_ngram_size=2, prefix=prefix)
        for sentence, p, hyps in zip(SENTENCES, prefix, results, strict=True):
            max_len = math.floor(1.5 * len(sentence) + 4)
            k, alpha = (5, 1.0) if search is beam_search else (1, 0.0)
            expected = reference_beam_search(model, sentence, k, alpha, max_len, prefix=p, no_repeat=2)
            assert hyps[0].tokens[: len(p)] == p
            assert hyps[0].tokens == expected[0][0]
            # After the prefix no new token ends a bigram that came before it.
            assert all(hyps[0].tokens[i] not in repeated_ngram_ends(hyps[0].tokens[:i], 2)
                       for i in range(len(p), len(hyps[0].tokens)))


PIECES = ["", "", "", "\u2581a", "b", "\u2581ab", "bc"]  # the toy vocabulary's texts, as in test_prefix.py


def test_a_word_being_spelled_may_repeat_itself_and_blocking_starts_after_it():
    # Every way to spell "▁abbbb" repeats the bigram "b b": blocking must wait until it is spelled.
    model = ToyModel(seed=2, eos_bias=-2.0)
    src, lengths = pad_batch(SENTENCES[:2])
    spellings = [Spelling.of("\u2581abbbb", PieceIndex(PIECES)), None]
    for search, k, alpha in ((beam_search, 5, 1.0), (greedy_search, 1, 0.0)):
        results = search(model, src, lengths, max_len_b=4, no_repeat_ngram_size=2, prefix=[[], []],
                         prefix_spellings=spellings)
        for sentence, spell, hyps in zip(SENTENCES[:2], ("\u2581abbbb", ""), results, strict=True):
            expected = reference_beam_search(model, sentence, k, alpha, math.floor(1.5 * len(sentence) + 4),
                                             spell=spell, pieces=PIECES, no_repeat=2)
            assert hyps[0].tokens == expected[0][0]
            assert "".join(PIECES[t] for t in hyps[0].tokens).startswith(spell)
        assert holds_repeated_ngram(results[0][0].tokens, 2) and not holds_repeated_ngram(results[1][0].tokens, 2)


def test_a_negative_size_is_refused_by_search():
    src, lengths = pad_batch(SENTENCES)
    with pytest.raises(ValueError, match="no_repeat_ngram_size must be >= 0"):
        beam_search(ToyModel(), src, lengths, no_repeat_ngram_size=-1)


SOURCES = ["ein hund läuft über die wiese", "zwei männer und zwei frauen", "eine frau spielt fußball"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("repetition") / "model.pt", decoder_style="luong")


def test_the_translator_passes_the_size_to_search(checkpoint):
    translator = Translator.load(checkpoint, "cpu")
    for beam_size in (1, 4):
        free = translator.translate(SOURCES, beam_size=beam_size, max_len_b=30)
        blocked = translator.translate(SOURCES, beam_size=beam_size, max_len_b=30, no_repeat_ngram_size=2)
        # The untrained model loops: the rule has something to change (pieces end with </s>).
        assert any(holds_repeated_ngram(best[0].tgt_pieces[:-1], 2) for best in free)
        assert not any(holds_repeated_ngram(best[0].tgt_pieces[:-1], 2) for best in blocked)


def command_config(checkpoint, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("translate", overrides=[f"checkpoint={checkpoint}", "device=cpu", *overrides])


def test_nmt_translate_takes_the_option(checkpoint, tmp_path, capsys):
    source = tmp_path / "src.txt"
    source.write_text("".join(f"{s}\n" for s in SOURCES), encoding="utf-8")
    translate.run(command_config(checkpoint, f"input={source}", "no_repeat_ngram_size=2", "max_len_b=30"))
    lines = capsys.readouterr().out.splitlines()
    blocked = Translator.load(checkpoint, "cpu").translate(SOURCES, beam_size=5, max_len_b=30, no_repeat_ngram_size=2)
    assert lines == [best[0].text for best in blocked]
    # Bad values: tests/test_bad_input.py.
