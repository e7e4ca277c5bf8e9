"""nmt-translate: `nmt-translate checkpoint=PATH < input.txt`; one output line per input line.

`checkpoint=[A,B,...]` translates with the ensemble of those models (nmt.inference.ensemble).
"""

import sys
from pathlib import Path

from nmt.cli.checks import check_decoding_options, check_nbest
from nmt.cli.common import check_output_file, hydra_command, log_to_stderr
from nmt.data.readers import decode_lines, read_lines
from nmt.errors import ConfigError
from nmt.inference.progress import DecodingProgress
from nmt.inference.translator import Translator
from nmt.values import path_list


def read_input(path: str | None) -> list[str]:
    """Input lines, split on newlines only (str.splitlines would also split on form feeds, U+2028...
    and break the one-output-line-per-input-line promise)."""
    hint = "convert the input to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    if path is None:
        return decode_lines(sys.stdin.buffer.read(), "<stdin>", hint=hint)
    return read_lines(path, hint=hint)


def format_lines(nbest_lists, nbest: int) -> list[str]:
    """The best translation per input, or `score<TAB>translation` for each of the n best."""
    if nbest == 1:
        return [hyps[0].text for hyps in nbest_lists]
    return [f"{h.score:.4f}\t{h.text}" for hyps in nbest_lists for h in hyps[:nbest]]


def run(cfg) -> None:
    log_to_stderr()
    check_decoding_options(cfg)
    check_nbest(cfg)
    checkpoints = path_list("checkpoint", cfg.checkpoint)
    if cfg.output is not None:
        check_output_file(cfg.output, "output")
    lines = read_input(cfg.input)
    translator = Translator.load(checkpoints, cfg.device)
    nbest_lists = translator.translate(lines, beam_size=cfg.beam_size, nbest=cfg.nbest, length_penalty=cfg.length_penalty,
                                       max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b,
                                       batch_sentences=cfg.batch_sentences,
                                       on_batch=DecodingProgress(sum(1 for line in lines if line.strip())))
    # Blank inputs give one empty translation; for n-best output pad to nbest lines per input.
    nbest_lists = [hyps + [hyps[-1]] * (cfg.nbest - len(hyps)) for hyps in nbest_lists]
    text = "".join(line + "\n" for line in format_lines(nbest_lists, cfg.nbest))
    if cfg.output is None:
        sys.stdout.write(text)
        return
    try:
        Path(cfg.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write output={cfg.output}: {exc.strerror}") from None


main = hydra_command("translate", run, usage="nmt-translate checkpoint=PATH < input.txt")

if __name__ == "__main__":
    main()
