"""nmt-plot: attention heatmaps of one or several checkpoints and sentences.

    nmt-plot checkpoint=PATH src="Ein Hund rennt." output=attention.png [ref="..." | prefix="..."] [level=word]
    nmt-plot checkpoint=[additive.pt,scaled_dot.pt] src_file=sentences.de beam_size=1 save_weights=json

Panels are laid out one row per sentence and one column per checkpoint, on one colour scale.
"""

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.cli.checks import check_decoding_options, check_inputs_exist, check_paths, check_vmax
from nmt.cli.common import hydra_command, log_to_stderr, refuse_given_options
from nmt.cli.outputs import check_output_file, output_file
from nmt.data.readers import CONVERT_TO_UTF8, read_lines
from nmt.errors import ConfigError, DataError
from nmt.files import replace_contents
from nmt.inference.translator import DECODING_OPTIONS, Translation, Translator, decoding_options
from nmt.values import path_list
from nmt.viz.attention_plot import SAVE_FORMATS, Panel, as_weight_array, plot_attention_grid, save_figure
from nmt.viz.word_level import merge_to_words

log = logging.getLogger(__name__)
LEVELS = ("subword", "word")
WEIGHT_FORMATS = ("npy", "json")
EMPTY_TEXT_FIXES = {"src": 'give the sentence to plot: src="Ein Hund rennt."',
                    "ref": "give the translation to plot, or leave ref= out to plot the model's own",
                    "prefix": "give the start the translation must have, or leave prefix= out"}
MAX_PANELS = 36  # beyond this a figure is unreadable (and can exceed what Agg renders)


@dataclass
class PlotItem:
    """One panel with what produced it, for the figure and the saved weights."""

    checkpoint: str
    source: str
    translation: str
    panel: Panel


def check_options(cfg) -> None:
    check_paths(cfg, "src_file", "ref_file", "output")
    check_decoding_options(cfg)
    check_vmax(cfg)
    for option, fix in EMPTY_TEXT_FIXES.items():
        if cfg.get(option) is not None and not str(cfg.get(option)).strip():
            raise ConfigError(f"{option}= is empty; {fix}")
    if cfg.level not in LEVELS:
        raise ConfigError(f"level={cfg.level!r} is not valid; choose one of: {', '.join(LEVELS)}")
    suffix = Path(cfg.output).suffix.lower().removeprefix(".")  # none for ".png": a hidden file's name
    if suffix not in SAVE_FORMATS:
        raise ConfigError(f"output={cfg.output}: the file name must end in one of: .{', .'.join(SAVE_FORMATS)}")
    if cfg.save_weights is not None and cfg.save_weights not in WEIGHT_FORMATS:
        raise ConfigError(f"save_weights={cfg.save_weights!r} is not valid; choose one of: "
                          f"{', '.join(WEIGHT_FORMATS)} (or null)")
    check_output_file(str(cfg.output), "output", read_files(cfg))
    check_sentence_options(cfg)
    check_inputs_exist(cfg, "src_file", "ref_file")


def read_files(cfg) -> dict[str, str | None]:
    """The files nmt-plot reads that its outputs must not overwrite (its checkpoints are .pt files)."""
    return {"src_file": cfg.src_file, "ref_file": cfg.ref_file}


def weight_paths(image: Path, fmt: str, panels: int) -> list[Path]:
    """Where save_weights=FMT writes: beside the image, one .json, or one .npy per panel (numbered in
    reading order when there are several)."""
    if fmt == "json":
        return [image.with_suffix(".json")]
    return [image.with_suffix(".npy")] if panels == 1 else [image.with_suffix(f".{k}.npy") for k in range(panels)]


def check_weight_outputs(cfg, panels: int) -> None:
    """The weights files are checked as output= is, before any checkpoint loads: with a source file
    named like them (src_file=s.json output=s.png save_weights=json), they would overwrite it."""
    for path in weight_paths(Path(cfg.output), cfg.save_weights, panels) if cfg.save_weights else []:
        check_output_file(str(path), "output", read_files(cfg),
                          named=f"{path} (the weights save_weights={cfg.save_weights} writes beside "
                                f"output={cfg.output})")


def check_sentence_options(cfg) -> None:
    """src=/ref=/prefix= or src_file=/ref_file=, not a mixture."""
    if (cfg.src is None) == (cfg.src_file is None):
        raise ConfigError("give the sentence as src=\"...\" or a file of sentences as src_file=PATH (one of them)")
    if cfg.prefix is not None and (cfg.src is None or cfg.ref is not None):
        raise ConfigError("prefix= goes with src= and without ref= (which gives the whole translation)")
    if cfg.src is not None and cfg.ref_file is not None:
        raise ConfigError("ref_file= goes with src_file=; with src= give ref=\"...\"")
    if cfg.src is None and cfg.ref is not None:
        raise ConfigError("ref= goes with src=; with src_file= give ref_file=PATH")
    given = "ref=" if cfg.ref is not None else "ref_file=" if cfg.ref_file is not None else None
    if given is not None:  # every sentence then has its translation: the search options would do nothing
        refuse_given_options(cfg, DECODING_OPTIONS, "for translating",
                             f"{given} plots the attention of the given translations, with no search", f"or {given}")


def sentences(cfg) -> list[tuple[str, str | None]]:
    """(source, reference or None) pairs from src=/ref= or src_file=/ref_file= (check_sentence_options)."""
    if cfg.src is not None:
        return [(cfg.src, cfg.ref)]
    sources = read_lines(cfg.src_file, hint=CONVERT_TO_UTF8)
    refs = read_lines(cfg.ref_file, hint=CONVERT_TO_UTF8) if cfg.ref_file is not None else [None] * len(sources)
    if len(refs) != len(sources):
        raise DataError(f"{cfg.src_file} has {len(sources)} lines but {cfg.ref_file} has {len(refs)}")
    for number, (src, ref) in enumerate(zip(sources, refs, strict=True), start=1):
        if src.strip() and ref is not None and not ref.strip():  # as ref= is refused empty
            raise DataError(f"{cfg.ref_file}:{number}: the translation is empty; give the one of "
                            f"{cfg.src_file}:{number}, or leave ref_file= out to plot the model's own")
    pairs = [(s, r) for s, r in zip(sources, refs, strict=True) if s.strip()]
    if not pairs:
        raise DataError(f"{cfg.src_file} has no non-empty line")
    return pairs


def describe(config: dict) -> str:
    """A panel title from the checkpoint's training config."""
    model = config["model"]
    return f"{model['attention']['name']} attention, {model['decoder_style']} decoder"


def decoding(cfg, has_ref: bool) -> str:
    if has_ref:
        return "given translation (forced decoding)"
    search = f"beam {cfg.beam_size}" if cfg.beam_size > 1 else "greedy"
    return search if cfg.prefix is None else f"{search} from a given prefix"


def attend(translator: Translator, src: str, ref: str | None, cfg) -> Translation:
    if ref is not None:
        return translator.force(src, ref)
    prefixes = None if cfg.prefix is None else [cfg.prefix]
    return translator.translate([src], **decoding_options(cfg), return_attention=True, prefixes=prefixes)[0][0]


def collect(cfg, paths: list[str], pairs: list[tuple[str, str | None]]) -> list[PlotItem]:
    """Panels in reading order: row = sentence, column = checkpoint."""
    grid: list[list[PlotItem]] = [[] for _ in pairs]
    titles = []
    for path in paths:
        translator = Translator.load(path, cfg.device)
        titles.append(describe(translator.config))
        for row, (src, ref) in zip(grid, pairs, strict=True):
            translation = attend(translator, src, ref, cfg)
            if translation.attention is None:
                raise ConfigError(f"the source sentence {src!r} is empty: nothing to plot")
            weights, src_labels, tgt_labels = translation.attention, translation.src_pieces, translation.tgt_pieces
            if cfg.level == "word":
                weights, src_labels, tgt_labels = merge_to_words(weights, src_labels, tgt_labels)
            row.append(PlotItem(path, src, translation.text, Panel(as_weight_array(weights), src_labels, tgt_labels)))
    for column, (path, title) in enumerate(zip(paths, titles, strict=True)):
        if titles.count(title) > 1:  # checkpoints with the same settings are told apart by their file
            title = f"{title} ({path})"
        for row in grid:
            row[column].panel.title = title
    return [item for row in grid for item in row]


def save_weights(items: list[PlotItem], image: Path, fmt: str, figure_title: str) -> list[Path]:
    """Raw weights beside the image: one `.npy` per panel (numbered in reading order when there
    are several), or one `.json` with every panel's weights, labels, sentence and translation."""
    paths = weight_paths(image, fmt, len(items))
    if fmt == "json":
        [path] = paths
        record = {"figure": figure_title, "panels": [
            {"checkpoint": it.checkpoint, "title": it.panel.title, "source": it.source,
             "translation": it.translation, "src_tokens": it.panel.src_tokens,
             "tgt_tokens": it.panel.tgt_tokens, "weights": it.panel.weights.tolist()} for it in items]}
        replace_contents(path, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        return paths
    for path, item in zip(paths, items, strict=True):
        array = io.BytesIO()
        np.save(array, item.panel.weights)
        replace_contents(path, array.getvalue())
    return paths


def run(cfg) -> None:
    log_to_stderr()
    check_options(cfg)
    paths, pairs = path_list("checkpoint", cfg.checkpoint), sentences(cfg)
    if len(paths) * len(pairs) > MAX_PANELS:
        raise ConfigError(f"{len(paths)} checkpoints x {len(pairs)} sentences would make "
                          f"{len(paths) * len(pairs)} panels; at most {MAX_PANELS} fit in one figure")
    check_weight_outputs(cfg, len(paths) * len(pairs))
    items = collect(cfg, paths, pairs)
    modes = {decoding(cfg, ref is not None) for _, ref in pairs}
    figure_title = f"{' / '.join(sorted(modes))}, {cfg.level} level"
    fig = plot_attention_grid([it.panel for it in items], columns=len(paths), vmax=cfg.vmax, title=figure_title)
    try:
        image = save_figure(fig, cfg.output)
        written = save_weights(items, image, cfg.save_weights, figure_title) if cfg.save_weights else []
    except OSError as exc:
        raise ConfigError(f"cannot write output={cfg.output}: {exc.strerror}") from None
    for item in items:
        prefix = f"{item.checkpoint}: " if len(paths) > 1 else ""
        print(f"{prefix}translation: {item.translation}")
    print(f"attention plot: {image}")
    for path in written:
        print(f"attention weights: {path}")


main = hydra_command("plot", run, text_keys=("src", "ref", "prefix"), check_options=check_options,
                     job_outputs=output_file, usage='nmt-plot checkpoint=PATH src="..." output=attention.png')

if __name__ == "__main__":
    main()
