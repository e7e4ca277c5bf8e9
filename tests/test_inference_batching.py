"""The model's train/eval mode around the inference loops (nmt.inference.batching)."""

import pytest
import torch

from nmt.inference.batching import evaluation_mode


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_mode_turns_dropout_off_and_restores_the_mode_even_after_an_error(training):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train(training)
    with evaluation_mode(model):
        assert not model.training and not model[1].training
    assert model.training == training and model[1].training == training
    with pytest.raises(RuntimeError, match="inside"), evaluation_mode(model):
        raise RuntimeError("inside")
    assert model.training == training and model[1].training == training
