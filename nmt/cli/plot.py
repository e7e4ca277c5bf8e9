"""nmt-plot: `nmt-plot checkpoint=PATH src="Ein Hund rennt." output=attention.png [ref="..."] [level=word]`."""

from nmt.cli.common import hydra_command, log_to_stderr
from nmt.errors import ConfigError
from nmt.inference.translator import Translator
from nmt.viz.attention_plot import SAVE_FORMATS, plot_attention, save_figure
from nmt.viz.word_level import merge_to_words

LEVELS = ("subword", "word")


def run(cfg) -> None:
    log_to_stderr()
    if cfg.level not in LEVELS:
        raise ConfigError(f"level={cfg.level!r} is not valid; choose one of: {', '.join(LEVELS)}")
    suffix = str(cfg.output).rsplit(".", 1)[-1].lower()
    if suffix not in SAVE_FORMATS:
        raise ConfigError(f"output={cfg.output}: the file name must end in one of: .{', .'.join(SAVE_FORMATS)}")
    translator = Translator.load(cfg.checkpoint, cfg.device)
    if cfg.ref is not None:
        translation = translator.force(cfg.src, cfg.ref)
        what = "given translation (forced decoding)"
    else:
        translation = translator.translate([cfg.src], beam_size=cfg.beam_size, length_penalty=cfg.length_penalty,
                                           max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b,
                                           return_attention=True)[0][0]
        what = f"beam {cfg.beam_size}" if cfg.beam_size > 1 else "greedy"
    if translation.attention is None:
        raise ConfigError("src is empty: nothing to plot")
    weights, src_labels, tgt_labels = translation.attention, translation.src_pieces, translation.tgt_pieces
    if cfg.level == "word":
        weights, src_labels, tgt_labels = merge_to_words(weights, src_labels, tgt_labels)
    model_cfg = translator.config["model"]
    title = (f"{model_cfg['attention']['name']} attention, {model_cfg['decoder_style']} decoder, "
             f"{what}, {cfg.level} level")
    try:
        path = save_figure(plot_attention(weights, src_labels, tgt_labels, title=title), cfg.output)
    except OSError as exc:
        raise ConfigError(f"cannot write output={cfg.output}: {exc.strerror}") from None
    print(f"translation: {translation.text}")
    print(f"attention plot: {path}")


main = hydra_command("plot", run, text_keys=("src", "ref"))

if __name__ == "__main__":
    main()
