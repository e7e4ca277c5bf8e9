"""nmt-translate: `nmt-translate checkpoint=PATH < input.txt`; one output line per input line.

`checkpoint=[A,B,...]` translates with the ensemble of those models (nmt.inference.ensemble).
`reference=FILE` scores the given translations in FILE instead of translating; `sampling=true`
draws random translations instead of searching for the best; `prefix=FILE` makes each translation
begin with the line of FILE beside its input line. Typed at a terminal (or with interactive=true),
each line is translated as soon as it is read, as Joey NMT's and fairseq's interactive modes do.
"""

import logging
import sys

from nmt.analysis.alignment import format_pharaoh, translation_links
from nmt.cli.checks import (
    check_bool,
    check_decoding_options,
    check_inputs_exist,
    check_nbest,
    check_paths,
    check_sampling,
)
from nmt.cli.common import hydra_command, log_to_stderr, refuse_given_options
from nmt.cli.outputs import check_output_file, output_file, standard_stream, write_lines
from nmt.data.readers import CONVERT_TO_UTF8, decode_lines, read_lines
from nmt.data.tokenizer import Tokenizers
from nmt.errors import ConfigError, DataError
from nmt.inference.progress import DecodingProgress
from nmt.inference.search import Sampling
from nmt.inference.translator import DECODING_OPTIONS, Translator, decoding_options, perplexity
from nmt.values import path_list

log = logging.getLogger(__name__)

# What only sampling=true reads.
SAMPLING_ONLY = ("temperature", "sampling_topk", "sampling_topp", "sampling_seed")
# What reference= reads none of: scoring given translations is forced decoding, with no search, no length
# limit and no length penalty (sampling=true, nbest, prefix= and alignment=true are refused by their values).
UNUSED_BY_SCORING = (*DECODING_OPTIONS, "coverage_penalty", "no_repeat_ngram_size", *SAMPLING_ONLY)
# What sampling=true does not read (nmt.inference.batching: its samples are not re-ranked).
BEAM_SEARCH_ONLY = ("beam_size", "coverage_penalty")


def read_input(path: str | None) -> list[str]:
    """Input lines, split on newlines only (str.splitlines would also split on form feeds, U+2028...
    and break the one-output-line-per-input-line promise)."""
    hint = "convert the input to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    if path is None:
        return decode_lines(sys.stdin.buffer.read(), "<stdin>", hint=hint)
    return read_lines(path, hint=hint)


def format_lines(nbest_lists, nbest: int, sources: list[str], tokenizers: Tokenizers | None = None) -> list[str]:
    """The best translation per input, or `score<TAB>translation` for each of the n best; given the
    model's `tokenizers` (alignment=true), each line ends with a tab and the translation's word links
    ("0-0 1-2 ..."), which number the whitespace words of its input line in `sources` and its own.

    An input with fewer than `nbest` hypotheses (a blank line has one) repeats its last, so every
    input gives exactly `nbest` lines."""
    def line(h, source: str, with_score: bool) -> str:
        text = f"{h.score:.4f}\t{h.text}" if with_score else h.text
        if tokenizers is None:
            return text
        return f"{text}\t{format_pharaoh(translation_links(h, source, tokenizers))}"

    if nbest == 1:
        return [line(hyps[0], source, False) for hyps, source in zip(nbest_lists, sources, strict=True)]
    padded = (hyps[:nbest] + [hyps[-1]] * (nbest - len(hyps)) for hyps in nbest_lists)
    return [line(h, source, True) for hyps, source in zip(padded, sources, strict=True) for h in hyps]


def check_options(cfg) -> None:
    check_paths(cfg, "input", "output", "reference", "prefix")
    for option in ("reference", "prefix"):  # "-" is standard input only for input=, the sentences
        if cfg.get(option) == "-":
            raise ConfigError(f"{option}=- cannot be standard input, which holds the sentences to translate; "
                              f"give the {option} lines in a file")
    check_decoding_options(cfg)
    check_sampling(cfg)
    check_bool(cfg, "alignment")
    if not cfg.sampling:
        check_nbest(cfg)
    checkpoints = path_list("checkpoint", cfg.checkpoint)
    if standard_stream(cfg.output) is not None:
        read = {key: standard_stream(cfg.get(key)) for key in ("input", "prefix", "reference")}
        read.update({f"checkpoint[{i}]" if len(checkpoints) > 1 else "checkpoint": path
                     for i, path in enumerate(checkpoints)})
        check_output_file(cfg.output, "output", read, reads_stdin=read["input"] is None)
    check_interactive(cfg)
    check_reference(cfg)
    check_search_options(cfg)
    check_inputs_exist(cfg, "input", "reference", "prefix")  # last: a mistaken value is the first thing to mend


def check_reference(cfg) -> None:
    """reference= scores given translations: the options that make or show the model's own are refused
    with it, not silently ignored."""
    if cfg.reference is None:
        return
    if cfg.sampling:
        raise ConfigError("sampling=true draws translations, but reference= scores the given ones instead: "
                          "drop one of the two")
    if cfg.nbest != 1:
        raise ConfigError(f"nbest={cfg.nbest} lists translations, but reference= scores the given ones "
                          "instead: drop one of the two")
    if cfg.prefix is not None:
        raise ConfigError("prefix= steers the translations, but reference= scores given ones instead: "
                          "drop one of the two")
    if cfg.alignment:
        raise ConfigError("alignment=true links the words of the model's translations, but reference= scores "
                          "given ones instead: drop one of the two (nmt-align links the words of given translations)")
    check_unused_by_scoring(cfg)


def check_unused_by_scoring(cfg) -> None:
    """The search options given on the command line with reference=, which were silently ignored (their
    defaults are no mistake: only a value the user gave is refused)."""
    refuse_given_options(cfg, UNUSED_BY_SCORING, "for translating",
                         "reference= scores the given translations without a search", "or reference=")


def check_search_options(cfg) -> None:
    """The sampling options given without sampling=true, which beam search ignored, and the beam search
    options given with it, which sampling ignored."""
    if not cfg.sampling:
        refuse_given_options(cfg, SAMPLING_ONLY, "for sampling=true", "without it the translations come from "
                             "beam search, which draws nothing", "or add sampling=true")
    else:
        refuse_given_options(cfg, BEAM_SEARCH_ONLY, "for beam search", "sampling=true draws the translations "
                             "instead (nbest=K of them)", "or sampling=true")


def check_interactive(cfg) -> None:
    """interactive= against the options that go with whole files only."""
    if not is_interactive(cfg.interactive, standard_stream(cfg.input), sys.stdin.isatty()):
        return
    for option in ("reference", "prefix", "output"):
        if standard_stream(cfg.get(option)) is not None:
            raise ConfigError(f"{option}= goes with whole files, not with interactive translation: "
                              "give input=FILE, or pipe the input in with interactive=false")


def run(cfg) -> None:
    log_to_stderr()
    check_options(cfg)
    cfg.input, cfg.output = standard_stream(cfg.input), standard_stream(cfg.output)
    checkpoints = path_list("checkpoint", cfg.checkpoint)
    if is_interactive(cfg.interactive, cfg.input, sys.stdin.isatty()):
        translate_interactively(cfg, checkpoints)
        return
    lines = read_input(cfg.input)
    if cfg.reference is not None:
        write_lines(cfg.output, score_references(cfg, checkpoints, lines))
        return
    prefixes = read_prefixes(cfg.prefix, cfg.input, len(lines))
    translator = Translator.load(checkpoints, cfg.device)
    nbest_lists = translator.translate(lines, **decoding_options(cfg), nbest=cfg.nbest,
                                       coverage_penalty=cfg.coverage_penalty,
                                       no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                                       batch_sentences=cfg.batch_sentences, sampling=sampling_options(cfg),
                                       return_attention=cfg.alignment, prefixes=prefixes,
                                       on_batch=DecodingProgress(sum(1 for line in lines if line.strip())))
    write_lines(cfg.output, format_lines(nbest_lists, cfg.nbest, lines, alignment_tokenizers(cfg, translator)))


def alignment_tokenizers(cfg, translator: Translator) -> Tokenizers | None:
    """What format_lines needs to link the words of each translation: the model's tokenizers with
    alignment=true, None without."""
    return translator.tokenizers if cfg.alignment else None


def is_interactive(option, input_path: str | None, stdin_is_terminal: bool) -> bool:
    """interactive=true|false as given; auto: reading a terminal (a person typing, not a pipe or a file)."""
    if option == "auto":
        return input_path is None and stdin_is_terminal
    if not isinstance(option, bool):
        raise ConfigError(f"interactive={option!r} is not valid; choose true, false or auto")
    if option and input_path is not None:
        raise ConfigError(f"interactive=true reads standard input line by line, but input={input_path} names a "
                          "file: drop one of the two")
    return option


def translate_interactively(cfg, checkpoints: list[str]) -> None:
    """Translates standard input line by line, writing (and flushing) each line's output before the
    next line is read; a line that is not UTF-8 gets a one-line error and the empty line's answer, and
    the session goes on."""
    translator = Translator.load(checkpoints, cfg.device)
    if sys.stdin.isatty():
        print("type a sentence and press Enter (Ctrl-D ends)", file=sys.stderr, flush=True)
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = decode_typed_line(raw, number)
        except DataError as exc:
            # Answered all the same, so a program that waits for one answer per line never hangs.
            print(f"error: {exc}", file=sys.stderr, flush=True)
            line = ""
        nbest_lists = translator.translate([line], **decoding_options(cfg), nbest=cfg.nbest,
                                           coverage_penalty=cfg.coverage_penalty,
                                           no_repeat_ngram_size=cfg.no_repeat_ngram_size, sampling=sampling_options(cfg), return_attention=cfg.alignment)
        write_lines(None, format_lines(nbest_lists, cfg.nbest, [line], alignment_tokenizers(cfg, translator)))
        sys.stdout.flush()


def decode_typed_line(raw: bytes, number: int) -> str:
    """One line of standard input without its line ending; not UTF-8: a DataError naming the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"<stdin>:{number}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte column "
                        f"{exc.start + 1}); it is answered as an empty line: type or paste UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def sampling_options(cfg) -> Sampling | None:
    if not cfg.sampling:
        return None
    return Sampling(temperature=cfg.temperature, topk=cfg.sampling_topk, topp=cfg.sampling_topp,
                    seed=cfg.sampling_seed)


def read_prefixes(path: str | None, input_path: str | None, expected: int) -> list[str] | None:
    """The target prefix of each input line from `prefix=FILE`: one line per input line."""
    if path is None:
        return None
    prefixes = read_lines(path, hint=CONVERT_TO_UTF8)
    if len(prefixes) != expected:
        raise DataError(f"prefix={path} has {len(prefixes):,} lines but the input ({input_path or '<stdin>'}) has "
                        f"{expected:,}: one target prefix per input line (an empty line for none)")
    return prefixes


def score_references(cfg, checkpoints: list[str], lines: list[str]) -> list[str]:
    """`log-probability<TAB>subwords<TAB>translation` for each line of the reference file, and the
    perplexity of them all logged."""
    references = read_lines(cfg.reference, hint=CONVERT_TO_UTF8)
    source = cfg.input or "<stdin>"
    if len(references) != len(lines):
        raise DataError(f"reference={cfg.reference} has {len(references):,} lines but the input ({source}) has "
                        f"{len(lines):,}: one translation per input line")
    translator = Translator.load(checkpoints, cfg.device)
    scores = translator.score(lines, references, batch_sentences=cfg.batch_sentences,
                              on_batch=DecodingProgress(len(lines), verb="scored"))
    log.info(f"scored {len(scores):,} translations: {sum(s.tokens for s in scores):,} subwords (EOS included), "
             f"perplexity {perplexity(scores):.2f}")
    return [f"{s.log_prob:.4f}\t{s.tokens}\t{ref.strip()}" for s, ref in zip(scores, references, strict=True)]


main = hydra_command("translate", run, check_options=check_options, job_outputs=output_file,
                     usage="nmt-translate checkpoint=PATH < input.txt")

if __name__ == "__main__":
    main()
