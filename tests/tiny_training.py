"""The training config of a tiny run (a 16-unit model, 300 training pairs, 4 updates) for tests that
train for real on the Multi30k slice: minimum risk training and R-Drop."""

from hydra import compose, initialize_config_dir

from nmt.cli.common import config_dir


def tiny_config(root, tmp_path, *extra):
    with initialize_config_dir(config_dir(), version_base=None):
        return compose("train", overrides=[
            f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "device=cpu", "trainer.num_threads=1",
            "data.max_train_examples=300", "tokenizer.vocab_size=200", "trainer.max_steps=4",
            "trainer.valid_every=2", "trainer.valid_max_sentences=10", "trainer.progress=false",
            "trainer.log_every=1", "model.emb_size=16", "model.enc_hidden=16", "model.dec_hidden=16", *extra])
