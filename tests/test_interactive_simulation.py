"""The simulated interactive translator (word stroke ratio): hand-counted cases on a scripted model, and
nmt-evaluate interactive_simulation=true on a real checkpoint."""

import json

import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import one_line_error

from nmt.analysis.interactive import first_difference, simulate_corrections
from nmt.cli import evaluate as evaluate_cli
from nmt.cli.common import config_dir
from nmt.inference.translator import Translator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ScriptedModel:
    """Believes in one translation per source and continues any prefix with the rest of it (from the
    prefix's word count on); `glue` appends "s" to the prefix's last word, as a subword model would if
    it could lengthen a word the user has finished."""

    def __init__(self, beliefs: dict[str, str], glue: bool = False):
        self.beliefs, self.glue, self.calls = beliefs, glue, []

    def __call__(self, sources, prefixes):
        self.calls.append(list(prefixes))
        outputs = []
        for source, prefix in zip(sources, prefixes, strict=True):
            words, belief = prefix.split(), self.beliefs[source].split()
            if self.glue and words:
                words[-1] += "s"
            outputs.append(" ".join(words + belief[len(prefix.split()):]))
        return outputs


@pytest.mark.parametrize(("hypothesis", "reference", "index"), [
    ("a b c", "a b c", None),
    ("a x c", "a b c", 1),
    ("a b", "a b c", 2),
    ("a b c d", "a b c", 3),
    ("", "a", 0),
])
def test_first_difference(hypothesis, reference, index):
    assert first_difference(hypothesis.split(), reference.split()) == index


@pytest.mark.parametrize(("belief", "typed", "rounds"), [
    ("a b c d", 0, 1),        # right as it comes
    ("a x c d", 1, 2),        # one wrong word, the rest follows
    ("x y z w", 4, 5),        # every word typed
    ("a b", 2, 3),            # ends too early twice: "c", then "d"
    ("a b c d e", 1, 1),      # runs on: the user ends the sentence
    ("a x c d e f", 2, 2),    # one word typed, then ending it
])
def test_typed_words_of_one_sentence(belief, typed, rounds):
    result = simulate_corrections(ScriptedModel({"s": belief}), ["s"], ["a b c d"])
    assert (result.typed, result.rounds) == (typed, rounds)
    assert result.stroke_ratio == pytest.approx(typed / 4)
    assert result.right_unaided == (typed == 0)


def test_a_model_that_changes_an_accepted_word_costs_the_rest_of_the_reference():
    result = simulate_corrections(ScriptedModel({"s": "x b c d"}, glue=True), ["s"], ["a b c d"])
    # Round 1: "x" is wrong, "a" typed; round 2: "as b c d" changed it, so "b c d" are typed too.
    assert (result.typed, result.accepted_changed, result.rounds) == (4, 1, 2)


def test_sentences_run_in_rounds_and_blank_references_are_left_out():
    model = ScriptedModel({"s1": "a b c", "s2": "x b", "s3": "q"})
    result = simulate_corrections(model, ["s1", "s2", "s3"], ["a b c", "a b c", "  "])
    # Finished sentences drop out of later rounds; a prefix ends with a space: its last word is whole.
    assert model.calls == [["", ""], ["a "], ["a b c "]]
    assert (result.sentences, result.reference_units, result.typed, result.right_unaided) == (2, 6, 2, 1)
    assert result.stroke_ratio == pytest.approx(2 / 6)


def test_given_first_translations_replace_the_first_round():
    model = ScriptedModel({"s1": "a x c", "s2": "a b c"})
    fresh = simulate_corrections(model, ["s1", "s2"], ["a b c", "a b c"])
    reused = ScriptedModel(model.beliefs)
    given = simulate_corrections(reused, ["s1", "s2"], ["a b c", "a b c"], first_outputs=["a x c", "a b c"])
    assert given == fresh
    assert reused.calls == model.calls[1:]


def evaluate(checkpoint, folder, sources, references, unit="word"):
    (folder / "src.txt").write_text("".join(f"{s}\n" for s in sources), encoding="utf-8")
    (folder / "ref.txt").write_text("".join(f"{r}\n" for r in references), encoding="utf-8")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[
            f"checkpoint={checkpoint}", "device=cpu", "beam_size=2", f"src_file={folder / 'src.txt'}",
            f"ref_file={folder / 'ref.txt'}", f"output_dir={folder}", "interactive_simulation=true",
            f"interactive_unit={unit}", "attention_stats=false"])
    evaluate_cli.run(cfg)
    return json.loads((folder / f"{checkpoint.stem}.src.txt.beam2.json").read_text(encoding="utf-8"))["interactive"]


SOURCES = ["ein hund läuft über die wiese", "zwei männer spielen fußball", "eine frau"]
REFERENCES = ["a dog runs across the meadow", "two men play football", "a woman"]


@pytest.mark.parametrize(("unit", "ratio", "units"), [("word", "word stroke ratio", 12),
                                                      ("character", "key stroke ratio", 56)])  # 28 + 21 + 7 characters
def test_evaluate_reports_the_stroke_ratio_of_a_real_model(tmp_path, capsys, unit, ratio, units):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    report = evaluate(checkpoint, tmp_path, SOURCES, REFERENCES, unit)
    out = capsys.readouterr().out
    assert f"interactive simulation: {ratio} {report['stroke_ratio']:.3f}" in out
    assert report["unit"] == unit and report["sentences"] == 3 and report["reference_units"] == units
    # An untrained model gets units wrong, and each unit is typed at most once, plus one ending.
    assert 0 < report["typed"] <= report["reference_units"] + report["sentences"]
    assert report["rounds"] >= 2
    assert report["accepted_changed"] == 0  # every output begins with the prefix the user accepted

    # Its own translations as references: nothing to type.
    own = [hyps[0].text for hyps in Translator.load(checkpoint, "cpu").translate(SOURCES, beam_size=2)]
    (tmp_path / "own").mkdir()
    report = evaluate(checkpoint, tmp_path / "own", SOURCES, own, unit)
    assert report["typed"] == 0 and report["right_unaided"] == report["sentences"] == 3
    assert report["rounds"] == 1


def test_key_by_key_the_user_types_characters_and_a_completed_word_saves_keys():
    # The model completes any word from its first typed letter: "a" is wrong ("x b"), one key gives "a b".
    class Completing:
        def __init__(self):
            self.calls = []

        def __call__(self, sources, prefixes):
            self.calls.append(list(prefixes))
            return [p + {"": "x b", "a": " b"}.get(p, "") for p in prefixes]

    model = Completing()
    result = simulate_corrections(model, ["s"], ["a b"], unit="character")
    assert model.calls == [[""], ["a"]]
    assert (result.unit, result.reference_units, result.typed, result.rounds) == ("character", 3, 1, 2)
    assert result.stroke_ratio == pytest.approx(1 / 3)
    # Ending the translation right after accepted whole words ("a " -> "a") is ending early, not a change.
    ends = simulate_corrections(lambda sources, prefixes: [p.rstrip() for p in prefixes], ["s"], ["a b"],
                                unit="character", first_outputs=["a"])
    assert (ends.typed, ends.accepted_changed, ends.rounds) == (2, 0, 3)  # " ", then "b"; then it is right
    with pytest.raises(ValueError, match="unit must be one of word, character"):
        simulate_corrections(model, ["s"], ["a b"], unit="letter")


def test_key_by_key_a_run_of_whitespace_in_the_reference_is_one_space():
    """A reference with doubled or trailing spaces is the text "a b c" to type: the translation
    "a b c" needs no key."""
    result = simulate_corrections(ScriptedModel({"s": "a b c"}), ["s"], [" a  b\tc "], unit="character")
    assert (result.reference_units, result.typed, result.right_unaided) == (5, 0, 1)


def test_an_unknown_unit_is_a_one_line_error(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "model.pt")
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("evaluate", overrides=[f"checkpoint={checkpoint}", "device=cpu", "split=val",
                                             "interactive_simulation=true", "interactive_unit=letter"])
    message = one_line_error(capsys, evaluate_cli.run, cfg)
    assert message == "interactive_unit='letter' is not valid; choose one of: word, character"
