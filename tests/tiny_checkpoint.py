"""A tiny untrained checkpoint for command tests that need a real model file but no training.

The tokenizer is trained on a few made-up sentences and the weights are freshly initialized, so
building one takes about a second and needs no corpus.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.cli.common import config_dir
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
from nmt.models.seq2seq import build_model
from nmt.training.checkpoint import save_checkpoint

GERMAN = ["ein", "hund", "läuft", "über", "die", "wiese", "zwei", "männer", "spielen", "fußball", "eine", "frau"]
ENGLISH = ["a", "dog", "runs", "across", "the", "meadow", "two", "men", "play", "football", "woman", "."]


def sentences() -> list[str]:
    words = GERMAN + ENGLISH
    return [" ".join(words[(i * k) % len(words)] for k in range(1, 7)) for i in range(1, 60)]


def make_checkpoint(path: Path, *, attention: str = "additive", decoder_style: str = "bahdanau",
                    src_lang: str = "de", tgt_lang: str = "en", seed: int = 0,
                    vocab_size: int = 40) -> Path:
    import torch

    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=[
            f"model/attention={attention}", f"model.decoder_style={decoder_style}",
            f"data.src_lang={src_lang}", f"data.tgt_lang={tgt_lang}", "model.emb_size=8",
            "model.enc_hidden=8", "model.dec_hidden=8"])
    config = OmegaConf.to_container(cfg, resolve=True)
    texts = sentences() + [" ".join(pair) for pair in itertools.product(GERMAN, ENGLISH)]
    tokenizer = SubwordTokenizer.train(texts, vocab_size=vocab_size, seed=seed)
    tokenizers = Tokenizers(tokenizer, tokenizer, joint=True)
    torch.manual_seed(seed)
    model = build_model(config["model"], tokenizer.vocab_size, tokenizer.vocab_size, shared_vocab=True)
    save_checkpoint({"model": model.state_dict(), "config": config, "tokenizers": tokenizers.to_dict()}, path)
    return path


# The parts of a checkpoint's config that loading checks the kind of: for tests of the file
# mechanics (saving, keeping, atomic writes) that need no real model.
CONFIG_SKELETON = {"model": {"attention": {"name": "additive"}}, "data": {"src_lang": "de", "tgt_lang": "en"}}
