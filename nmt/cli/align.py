"""nmt-align: `nmt-align checkpoint=PATH src_file=test.de tgt_file=test.en [gold=gold.wa] [output=align.txt]`."""

import logging
import sys
from pathlib import Path

from nmt.analysis.alignment import (
    Link,
    alignment_scores,
    argmax_links,
    diagonal_links,
    drop_links_outside,
    flip,
    format_pharaoh,
    format_scores,
    read_gold,
    word_attention,
)
from nmt.cli.checks import check_inference_options, check_inputs_exist, check_paths, check_single_checkpoint
from nmt.cli.common import hydra_command, log_to_stderr
from nmt.cli.outputs import check_output_file, output_file, standard_stream, write_lines
from nmt.data.readers import CONVERT_TO_UTF8, read_lines
from nmt.errors import ConfigError, DataError
from nmt.inference.translator import Translator

log = logging.getLogger(__name__)
METHODS = ("attention", "diagonal")
SYMMETRIZE = ("intersection", "union")


def attention_alignments(cfg, src_words, tgt_words) -> list[set[Link]]:
    if cfg.checkpoint is None:
        raise ConfigError("method=attention needs checkpoint=PATH (or use method=diagonal)")
    forward = Translator.load(cfg.checkpoint, cfg.device)
    links = [argmax_links(w) if w is not None else set()
             for w in word_attention(forward, src_words, tgt_words, batch_sentences=cfg.batch_sentences)]
    if cfg.reverse_checkpoint is None:
        return links
    backward = Translator.load(cfg.reverse_checkpoint, cfg.device)
    fwd, bwd = forward.config["data"], backward.config["data"]
    if (bwd["src_lang"], bwd["tgt_lang"]) != (fwd["tgt_lang"], fwd["src_lang"]):
        raise ConfigError(f"reverse_checkpoint translates {bwd['src_lang']}->{bwd['tgt_lang']} but checkpoint "
                          f"translates {fwd['src_lang']}->{fwd['tgt_lang']}: it must be the opposite direction")
    reverse = [flip(argmax_links(w)) if w is not None else set()
               for w in word_attention(backward, tgt_words, src_words, batch_sentences=cfg.batch_sentences)]
    combine = set.intersection if cfg.symmetrize == "intersection" else set.union
    return [combine(f, r) for f, r in zip(links, reverse, strict=True)]


def check_options(cfg) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method={cfg.method!r} is not valid; choose one of: {', '.join(METHODS)}")
    if cfg.symmetrize not in SYMMETRIZE:
        raise ConfigError(f"symmetrize={cfg.symmetrize!r} is not valid; choose one of: {', '.join(SYMMETRIZE)}")
    if cfg.symmetrize != "intersection" and cfg.reverse_checkpoint is None:
        raise ConfigError(f"symmetrize={cfg.symmetrize} combines the links of two models; give reverse_checkpoint=PATH "
                          "(a tgt->src model) too, or leave symmetrize out")
    check_paths(cfg, "src_file", "tgt_file", "gold", "output")
    check_inference_options(cfg)  # forced decoding: no search options
    check_single_checkpoint(cfg)
    check_single_checkpoint(cfg, "reverse_checkpoint")
    if standard_stream(cfg.output) is not None:
        check_output_file(cfg.output, "output", {key: cfg.get(key) for key in (
            "src_file", "tgt_file", "gold", "checkpoint", "reverse_checkpoint")})
    check_inputs_exist(cfg, "src_file", "tgt_file", "gold", checkpoints=("checkpoint", "reverse_checkpoint"))


def run(cfg) -> None:
    log_to_stderr()
    check_options(cfg)
    cfg.output = standard_stream(cfg.output)
    # A leading BOM is dropped.
    src_lines = read_lines(cfg.src_file, hint=CONVERT_TO_UTF8)
    tgt_lines = read_lines(cfg.tgt_file, hint=CONVERT_TO_UTF8)
    if len(src_lines) != len(tgt_lines):
        raise DataError(f"{cfg.src_file} has {len(src_lines)} lines but {cfg.tgt_file} has {len(tgt_lines)}")
    if not src_lines:  # else no links, and scores of nan
        raise DataError(f"src_file={cfg.src_file} and tgt_file={cfg.tgt_file} are empty: nothing to align")
    src_words, tgt_words = [line.split() for line in src_lines], [line.split() for line in tgt_lines]
    gold = None
    if cfg.gold is not None:  # read first: a bad gold file should fail before minutes of decoding
        gold = read_gold(cfg.gold, len(src_lines))
        for link in drop_links_outside(gold, [len(w) for w in src_words], [len(w) for w in tgt_words], cfg.gold):
            log.warning("%s: ignoring the gold link of %s", cfg.gold, link)
    if cfg.method == "diagonal":
        links = [diagonal_links(len(s), len(t)) for s, t in zip(src_words, tgt_words, strict=True)]
    else:
        links = attention_alignments(cfg, src_words, tgt_words)
    write_lines(cfg.output, [format_pharaoh(sentence) for sentence in links])
    if cfg.output is not None:
        log.info("alignments of %d sentence pairs: %s", len(links), cfg.output)
    if gold is not None:
        # With the links on stdout the scores go to stderr, so the links can be piped on unchanged.
        print(f"{Path(cfg.gold).name}: {format_scores(alignment_scores(links, gold))}",
              file=sys.stdout if cfg.output is not None else sys.stderr)


main = hydra_command("align", run, check_options=check_options, job_outputs=output_file,
                     usage="nmt-align checkpoint=PATH src_file=PATH tgt_file=PATH")

if __name__ == "__main__":
    main()
