"""nmt-plot comparisons: several checkpoints and sentences, decoding modes, word level, saved weights.

The figures are checked through the weights saved beside them (compared with what the Python API
gives for the same sentence) and through the image's pixel size, which grows with the grid.
"""

import json
import sys

import matplotlib.image
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from tiny_checkpoint import make_checkpoint
from user_errors import main_error

from nmt.cli import plot
from nmt.cli.common import config_dir, quote_text_overrides
from nmt.errors import ConfigError, DataError
from nmt.inference.translator import Translator
from nmt.viz.word_level import merge_to_words

SOURCES = ["ein hund läuft über die wiese", "zwei männer"]
REFERENCES = ["a dog runs across the meadow", "two men"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return [make_checkpoint(folder / "additive.pt"),
            make_checkpoint(folder / "scaled_dot.pt", attention="scaled_dot", decoder_style="luong", seed=1)]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "src.txt").write_text("\n".join(SOURCES) + "\n\n", encoding="utf-8")  # blank lines are skipped
    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n\n", encoding="utf-8")
    return tmp_path


def run_plot(overrides):
    """What `nmt-plot OVERRIDES` runs, in this process (free text quoted as the command does)."""
    overrides = quote_text_overrides([*overrides, "device=cpu"], {"src", "ref", "prefix"})
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        plot.run(compose("plot", overrides=overrides))


def pixels(path):
    return matplotlib.image.imread(path).shape[:2]  # (height, width)


def test_checkpoints_by_sentences_with_references_at_word_level(checkpoints, files, capsys):
    a, b = checkpoints
    run_plot([f"checkpoint=[{a},{b}]", f"src_file={files / 'src.txt'}", f"ref_file={files / 'ref.txt'}",
              "level=word", "save_weights=json", f"output={files / 'grid.png'}"])
    record = json.loads((files / "grid.json").read_text(encoding="utf-8"))
    assert record["figure"] == "given translation (forced decoding), word level"
    panels = record["panels"]
    # Reading order: sentence by sentence, the checkpoints left to right.
    assert [(p["checkpoint"], p["source"]) for p in panels] == [
        (str(a), SOURCES[0]), (str(b), SOURCES[0]), (str(a), SOURCES[1]), (str(b), SOURCES[1])]
    assert [p["title"] for p in panels[:2]] == ["additive attention, bahdanau decoder",
                                                "scaled_dot attention, luong decoder"]
    for panel, ref in zip(panels, [REFERENCES[0]] * 2 + [REFERENCES[1]] * 2, strict=True):
        weights = np.array(panel["weights"])
        assert panel["translation"] == ref
        assert panel["tgt_tokens"] == ref.split() + ["</s>"] and panel["src_tokens"][-1] == "</s>"
        assert weights.shape == (len(panel["tgt_tokens"]), len(panel["src_tokens"]))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # word rows stay distributions
    # The saved weights are the model's: forced decoding through the Python API, merged to words.
    forced = Translator.load(b, "cpu").force(SOURCES[1], REFERENCES[1])
    expected, _, _ = merge_to_words(forced.attention, forced.src_pieces, forced.tgt_pieces)
    np.testing.assert_allclose(np.array(panels[3]["weights"]), expected, rtol=1e-5)
    out = capsys.readouterr().out
    assert f"{a}: translation: {REFERENCES[0]}" in out and f"attention weights: {files / 'grid.json'}" in out
    # A grid of 2 x 2 is about twice as wide and as tall as one of its panels alone.
    run_plot([f"checkpoint={a}", f"src={SOURCES[1]}", f"ref={REFERENCES[1]}", "level=word",
              f"output={files / 'one.png'}"])
    (grid_h, grid_w), (one_h, one_w) = pixels(files / "grid.png"), pixels(files / "one.png")
    assert grid_w > 1.6 * one_w and grid_h > 1.6 * one_h


def test_a_blank_line_inside_the_source_file_keeps_each_reference_with_its_sentence(checkpoints, tmp_path):
    a, _ = checkpoints
    (tmp_path / "src.txt").write_text(f"{SOURCES[0]}\n\n{SOURCES[1]}\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text(f"{REFERENCES[0]}\nthe blank line's\n{REFERENCES[1]}\n", encoding="utf-8")
    run_plot([f"checkpoint={a}", f"src_file={tmp_path / 'src.txt'}", f"ref_file={tmp_path / 'ref.txt'}",
              "save_weights=json", f"output={tmp_path / 'pairs.png'}"])
    panels = json.loads((tmp_path / "pairs.json").read_text(encoding="utf-8"))["panels"]
    assert [(p["source"], p["translation"]) for p in panels] == list(zip(SOURCES, REFERENCES, strict=True))


def test_an_empty_line_of_the_reference_file_is_refused_as_ref_is(checkpoints, tmp_path):
    """It was plotted as an empty translation, where an empty ref= is refused."""
    a, _ = checkpoints
    (tmp_path / "src.txt").write_text(f"{SOURCES[0]}\n{SOURCES[1]}\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text(f"{REFERENCES[0]}\n \n", encoding="utf-8")
    with pytest.raises(DataError) as refused:
        run_plot([f"checkpoint={a}", f"src_file={tmp_path / 'src.txt'}", f"ref_file={tmp_path / 'ref.txt'}",
                  f"output={tmp_path / 'pairs.png'}"])
    assert str(refused.value) == (f"{tmp_path / 'ref.txt'}:2: the translation is empty; give the one of "
                                  f"{tmp_path / 'src.txt'}:2, or leave ref_file= out to plot the model's own")
    assert not (tmp_path / "pairs.png").exists()


def test_greedy_subword_panel_saves_the_weights_as_npy(checkpoints, tmp_path, capsys):
    a, _ = checkpoints
    run_plot([f"checkpoint={a}", f"src={SOURCES[0]}", "beam_size=1", "save_weights=npy",
              f"output={tmp_path / 'greedy.png'}"])
    [[greedy]] = Translator.load(a, "cpu").translate([SOURCES[0]], beam_size=1, return_attention=True)
    np.testing.assert_allclose(np.load(tmp_path / "greedy.npy"), greedy.attention.numpy(), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["greedy.npy", "greedy.png"]
    height, width = pixels(tmp_path / "greedy.png")
    assert height > 100 and width > 100
    assert f"translation: {greedy.text}\n" in capsys.readouterr().out


def test_a_prefix_steers_the_plotted_translation(checkpoints, tmp_path, capsys):
    a, _ = checkpoints
    run_plot([f"checkpoint={a}", f"src={SOURCES[0]}", "beam_size=2", "prefix=the dog two", "save_weights=json",
              f"output={tmp_path / 'steered.png'}"])
    [[steered]] = Translator.load(a, "cpu").translate([SOURCES[0]], beam_size=2, return_attention=True,
                                                      prefixes=["the dog two"])
    assert steered.text.startswith("the dog two")
    record = json.loads((tmp_path / "steered.json").read_text(encoding="utf-8"))
    assert record["figure"] == "beam 2 from a given prefix, subword level"
    [panel] = record["panels"]
    assert panel["translation"] == steered.text and panel["tgt_tokens"] == steered.tgt_pieces
    np.testing.assert_allclose(np.array(panel["weights"]), steered.attention.numpy(), rtol=1e-6)
    assert f"translation: {steered.text}\n" in capsys.readouterr().out


def test_beam_search_panels_are_numbered_npy_files(checkpoints, files):
    a, b = checkpoints
    run_plot([f"checkpoint=[{a},{b}]", f"src_file={files / 'src.txt'}", "beam_size=3", "save_weights=npy",
              "max_len_a=0.5", "max_len_b=2", f"output={files / 'beam.png'}"])
    saved = [np.load(files / f"beam.{k}.npy") for k in range(4)]
    translator = Translator.load(b, "cpu")
    [[best]] = translator.translate([SOURCES[0]], beam_size=3, max_len_a=0.5, max_len_b=2, return_attention=True)
    np.testing.assert_allclose(saved[1], best.attention.numpy(), rtol=1e-6)  # sentence 1, checkpoint 2
    assert not (files / "beam.4.npy").exists()


def test_the_same_settings_twice_are_told_apart_by_file(checkpoints, tmp_path):
    a, b = checkpoints
    copy = tmp_path / "copy.pt"
    copy.write_bytes(a.read_bytes())
    run_plot([f"checkpoint=[{a},{copy},{b}]", f"src={SOURCES[1]}", "save_weights=json",
              f"output={tmp_path / 'x.svg'}"])
    titles = [p["title"] for p in json.loads((tmp_path / "x.json").read_text())["panels"]]
    assert titles == [f"additive attention, bahdanau decoder ({a})", f"additive attention, bahdanau decoder ({copy})",
                      "scaled_dot attention, luong decoder"]


@pytest.mark.parametrize(("src", "ref", "output", "fmt", "culprit"), [
    ("s.json", None, "s.png", "json", ("s.json", "src_file")),
    ("one.npy", None, "one.png", "npy", ("one.npy", "src_file")),  # one sentence, one panel: one.npy
    ("two.1.npy", None, "two.svg", "npy", ("two.1.npy", "src_file")),  # two sentences: two.0.npy, two.1.npy
    ("src.txt", "refs.json", "refs.pdf", "json", ("refs.json", "ref_file")),
])
def test_saved_weights_never_overwrite_the_sentences_read(checkpoints, tmp_path, src, ref, output, fmt, culprit):
    """The weights go beside output= under its name: src_file=s.json output=s.png save_weights=json
    replaced the source file with them (exit 0)."""
    sentences = SOURCES[:1] if src == "one.npy" else SOURCES
    (tmp_path / src).write_text("".join(f"{line}\n" for line in sentences), encoding="utf-8")
    options = [f"checkpoint={checkpoints[0]}", f"src_file={tmp_path / src}", f"output={tmp_path / output}",
               f"save_weights={fmt}"]
    if ref is not None:
        (tmp_path / ref).write_text(f"{REFERENCES[0]}\n{REFERENCES[1]}\n", encoding="utf-8")
        options.append(f"ref_file={tmp_path / ref}")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(ConfigError) as refused:
        run_plot(options)
    name, option = culprit
    assert str(refused.value) == (
        f"{tmp_path / name} (the weights save_weights={fmt} writes beside output={tmp_path / output}) is also "
        f"{option}={tmp_path / name}: writing it would destroy what the command reads; choose another output")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # nothing written


def test_the_image_never_overwrites_the_sentences_read(checkpoints, tmp_path):
    (tmp_path / "s.png").write_text(f"{SOURCES[0]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        run_plot([f"checkpoint={checkpoints[0]}", f"src_file={tmp_path / 's.png'}", f"output={tmp_path / 's.png'}"])
    assert str(refused.value) == (f"output={tmp_path / 's.png'} is also src_file={tmp_path / 's.png'}: writing it "
                                  "would destroy what the command reads; choose another output")
    assert (tmp_path / "s.png").read_text(encoding="utf-8") == f"{SOURCES[0]}\n"


@pytest.mark.parametrize(("overrides", "message"), [
    (["src=x", "src_file=f.txt"], "one of them"),
    ([], "src="),
    (["src=x", "ref_file=r.txt"], "ref_file= goes with src_file="),
    (["src=x", "save_weights=csv"], "save_weights='csv' is not valid"),
    (["src=x", "level=char"], "level='char' is not valid"),
    (["src=x", "checkpoint=[]"], "names no checkpoint"),
    (["src=x", "ref=y", "prefix=z"], "prefix= goes with src= and without ref="),
    (["src_file=f.txt", "prefix=z"], "prefix= goes with src= and without ref="),
    (["src=x", "prefix= "], "prefix= is empty"),
])
def test_option_mistakes_name_the_option(checkpoints, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_plot([f"checkpoint={checkpoints[0]}", f"output={tmp_path / 'a.png'}", *overrides])
    assert not any(tmp_path.iterdir())


def test_too_many_panels_are_refused(checkpoints, tmp_path):
    (tmp_path / "many.txt").write_text("ein hund\n" * 19, encoding="utf-8")
    a, b = checkpoints
    with pytest.raises(ConfigError, match="38 panels; at most 36"):
        run_plot([f"checkpoint=[{a},{b}]", f"src_file={tmp_path / 'many.txt'}", f"output={tmp_path / 'a.png'}"])


@pytest.mark.parametrize(("given", "options", "named"), [
    ("ref", ["beam_size=3"], "beam_size=3 is"),
    ("ref_file", ["length_penalty=0.6", "max_output_len=50"], "length_penalty=0.6 and max_output_len=50 are"),
])
def test_search_options_with_given_translations_are_refused(checkpoints, files, capsys, monkeypatch, given, options,
                                                             named):
    """ref=/ref_file= plot the attention of forced decoding: the search options were taken and ignored."""
    sentences = ([f"src={SOURCES[0]}", f"ref={REFERENCES[0]}"] if given == "ref" else
                 [f"src_file={files / 'src.txt'}", f"ref_file={files / 'ref.txt'}"])
    args = [f"checkpoint={checkpoints[0]}", *sentences, f"output={files / 'a.png'}", "device=cpu"]
    assert main_error(capsys, monkeypatch, plot.main, *args, *options) == (
        f"{named} for translating, but {given}= plots the attention of the given translations, with no search: "
        f"drop {'it' if named.endswith(' is') else 'them'} (or {given}=)")
    assert not (files / "a.png").exists()
    monkeypatch.setattr(sys, "argv", ["nmt-plot", *args])  # left at their defaults: plotted
    plot.main()
    assert (files / "a.png").is_file()
