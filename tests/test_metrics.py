"""Corpus metrics (nmt.inference.metrics) agree with sacreBLEU's own command-line tool."""

import json
import subprocess
import sys

import pytest

from nmt.inference.metrics import bleu_score, chrf_score, corpus_scores, format_scores

REFERENCES = [
    "The cat sat on the mat.",
    "A dog runs through the park, doesn't it?",
    "Zwei Männer stehen am Straßenrand.",
    "Hello World",
    "It costs $3.50 (roughly).",
]
HYPOTHESES = [
    "The cat sat on a mat.",
    "A dog is running in the park, isn't it?",
    "Zwei Männer stehen an der Straße.",
    "hello world",
    "It costs $3.50, roughly.",
]


@pytest.fixture(scope="module")
def cli_scores(tmp_path_factory) -> dict[str, dict]:
    """sacreBLEU's CLI on the same sentences, as {name: {"score", "signature", ...}}."""
    folder = tmp_path_factory.mktemp("sacrebleu")
    ref, hyp = folder / "ref.txt", folder / "hyp.txt"
    ref.write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    hyp.write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "sacrebleu",
        str(ref),
        "-i",
        str(hyp),
        "-m",
        "bleu",
        "chrf",
        "ter",
        "-w",
        "4",
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout
    return {entry["name"]: entry for entry in json.loads(output)}  # JSON is the CLI's default output


@pytest.mark.parametrize(("key", "cli_name"), [("bleu", "BLEU"), ("chrf", "chrF2"), ("ter", "TER")])
def test_scores_and_signatures_equal_the_sacrebleu_cli(cli_scores, key, cli_name):
    ours = corpus_scores(HYPOTHESES, REFERENCES)[key]
    assert ours["score"] == pytest.approx(
        cli_scores[cli_name]["score"], abs=1e-4
    )  # the CLI rounds to 4 places
    assert ours["signature"] == cli_scores[cli_name]["signature"]
    assert ours["text"].startswith(f"{cli_name} = ")


def test_bleu_score_equals_the_bleu_of_corpus_scores(cli_scores):
    assert bleu_score(HYPOTHESES, REFERENCES) == corpus_scores(HYPOTHESES, REFERENCES)["bleu"]["score"]
    assert 0.0 < bleu_score(HYPOTHESES, REFERENCES) < 100.0


def test_chrf_score_equals_the_chrf2_of_the_sacrebleu_cli(cli_scores):
    """chrF weights recall twice as much as precision, so hypotheses and references must not swap."""
    assert chrf_score(HYPOTHESES, REFERENCES) == pytest.approx(cli_scores["chrF2"]["score"], abs=1e-4)
    assert chrf_score(HYPOTHESES, REFERENCES) == corpus_scores(HYPOTHESES, REFERENCES)["chrf"]["score"]
    assert chrf_score(REFERENCES, REFERENCES) == pytest.approx(100.0)


def test_signatures_name_one_reference_and_the_13a_tokenizer():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert all("nrefs:1" in entry["signature"] for entry in scores.values())
    assert "tok:13a" in scores["bleu"]["signature"]
    assert "case:mixed" in scores["bleu"]["signature"]


def test_types_of_the_result():
    for entry in corpus_scores(HYPOTHESES, REFERENCES).values():
        assert isinstance(entry["score"], float)
        assert isinstance(entry["text"], str) and isinstance(entry["signature"], str)


def test_perfect_hypotheses_score_100_bleu_and_0_ter():
    scores = corpus_scores(REFERENCES, REFERENCES)
    assert scores["bleu"]["score"] == pytest.approx(100.0)
    assert scores["chrf"]["score"] == pytest.approx(100.0)
    assert scores["ter"]["score"] == pytest.approx(0.0)
    assert bleu_score(REFERENCES, REFERENCES) == pytest.approx(100.0)


def test_bleu_is_case_sensitive():
    reference = ["The Quick Brown Fox Jumps Over The Lazy Dog"]  # long enough to have 4-grams
    assert (
        bleu_score([reference[0].lower()], reference)
        < bleu_score(reference, reference)
        == pytest.approx(100.0)
    )


@pytest.mark.parametrize("score", [corpus_scores, bleu_score])
def test_mismatched_lengths_raise_with_both_counts(score):
    with pytest.raises(ValueError, match=r"5 hypotheses.*4 references"):
        score(HYPOTHESES, REFERENCES[:4])


@pytest.mark.parametrize("score", [corpus_scores, bleu_score])
def test_empty_corpus_raises(score):
    with pytest.raises(ValueError, match="empty"):
        score([], [])


def test_format_scores_lists_each_score_with_its_signature():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    summary = format_scores(scores)
    for entry in scores.values():
        assert entry["text"] in summary
        assert entry["signature"] in summary
    assert summary.splitlines()[0].startswith("BLEU = ")
