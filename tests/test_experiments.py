"""The shipped experiment recipes build the models their comments and the benchmarks promise."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.cli.common import config_dir
from nmt.models.seq2seq import build_model, count_parameters


def experiment_config(name: str) -> dict:
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return OmegaConf.to_container(compose("train", overrides=[f"experiment={name}"]), resolve=True)


def experiment_model(name: str):
    cfg = experiment_config(name)
    vocab = cfg["tokenizer"]["vocab_size"]
    return cfg["model"], build_model(cfg["model"], vocab, vocab, shared_vocab=cfg["tokenizer"]["joint"])


def test_reference_is_joey_nmt_s_recurrent_model():
    """Issue #3 compares against Joey NMT's 12.6M-parameter model: it attends after the RNN step
    (Luong style) and feeds the attentional vector back, with additive scoring."""
    cfg, model = experiment_model("m30k_deen_ref")
    assert (cfg["decoder_style"], cfg["input_feeding"], cfg["attention"]["name"]) == ("luong", True, "additive")
    assert count_parameters(model) == 12_577_280


def test_fast_recipe_trains_the_reference_network_on_the_reference_vocabulary():
    """Issue #3's GPU targets are for the reference model: only the training may differ."""
    reference, fast = experiment_config("m30k_deen_ref"), experiment_config("m30k_deen_fast")
    assert fast["model"] == reference["model"] and fast["tokenizer"] == reference["tokenizer"]
    assert fast["data"] == reference["data"]
    assert fast["trainer"]["batch_tokens"] == 4 * reference["trainer"]["batch_tokens"]


@pytest.mark.parametrize("name", ["m30k_deen_best", "m30k_ende_best"])
def test_quality_recipes_stay_within_twice_the_reference(name):
    _, reference = experiment_model("m30k_deen_ref")
    cfg, model = experiment_model(name)
    assert cfg["decoder_style"] == "luong"
    assert count_parameters(reference) < count_parameters(model) <= 2 * count_parameters(reference)


def test_small_recipe_is_the_model_the_readme_shows():
    """README's command examples print this model's line: 3,376,384 parameters, Bahdanau style."""
    cfg, model = experiment_model("m30k_deen_small")
    assert cfg["decoder_style"] == "bahdanau"
    assert count_parameters(model) == 3_376_384


def test_english_german_recipe_is_the_german_english_one_reversed():
    """README reports both directions as one recipe: only the name and the language pair may differ."""
    de_en, en_de = experiment_config("m30k_deen_best"), experiment_config("m30k_ende_best")
    assert (de_en["data"]["src_lang"], de_en["data"]["tgt_lang"]) == ("de", "en")
    assert (en_de["data"]["src_lang"], en_de["data"]["tgt_lang"]) == ("en", "de")
    for cfg in (de_en, en_de):
        del cfg["name"], cfg["data"]["src_lang"], cfg["data"]["tgt_lang"]
    assert de_en == en_de
