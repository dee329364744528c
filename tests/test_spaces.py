"""Every registered architecture builds from sampled params, and the notebook's models exactly."""
from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

import spaces
from spaces._common import LEARNING_RATES, suggest_training

# The parameter counts the notebook printed (5 classes, 28x28x1 input).
NOTEBOOK_PARAMS = {
    ("cnn", "model1"): 886_245, ("cnn", "model2"): 886_245, ("cnn", "model3"): 886_245,
    ("cnn", "model4"): 886_245, ("cnn", "model5"): 886_245, ("cnn", "model6"): 886_245,
    ("cnn", "model7"): 887_013,
    ("resnet", "model1"): 11_183_621, ("resnet", "model2"): 11_183_621, ("resnet", "model3"): 11_183_621,
    ("lenet", "model1"): 245_601, ("lenet", "model2"): 368_749, ("lenet", "model3"): 368_749,
    ("lenet", "model4"): 368_749, ("lenet", "model5"): 368_749,
    ("vgg16", "model1"): 33_616_581, ("vgg16", "model3"): 33_616_581,
    ("alexnet", "model1"): 29_967_045, ("alexnet", "model2"): 29_967_045, ("alexnet", "model3"): 29_967_045,
}


def test_registry_lists_the_five_architectures() -> None:
    assert spaces.names() == ["cnn", "resnet", "lenet", "vgg16", "alexnet"]


def test_unknown_architecture_lists_valid_ones() -> None:
    with pytest.raises(spaces.UnknownArchitecture, match="valid: cnn, resnet, lenet, vgg16, alexnet"):
        spaces.get("mlp")


@pytest.mark.parametrize("name", spaces.names())
def test_contract(name: str) -> None:
    arch = spaces.get(name)
    assert arch.NAME == name
    assert arch.INPUT_SIZE == (48 if name in ("vgg16", "alexnet") else 28)
    assert arch.SEED_MODELS


@pytest.mark.parametrize("name", spaces.names())
def test_sampled_params_build_and_predict(name: str) -> None:
    arch = spaces.get(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(3):
        params = arch.suggest(study.ask())
        model = arch.build(params, (28, 28, 1), 5)
        out = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
        assert out.shape == (2, 5)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("name, model", sorted(NOTEBOOK_PARAMS))
def test_seed_model_has_the_notebooks_parameter_count(name: str, model: str) -> None:
    arch = spaces.get(name)
    params = arch.SEED_MODELS[model]
    built = arch.build(params, (28, 28, 1), 5)
    assert built.count_params() == NOTEBOOK_PARAMS[(name, model)]


@pytest.mark.parametrize("name", spaces.names())
def test_every_seed_model_is_a_point_of_the_search_space(name: str) -> None:
    """suggest() on a FixedTrial returns exactly the seed params: enqueue_trial replays them unchanged."""
    arch = spaces.get(name)
    assert set(arch.SEED_MODELS) == {m for n, m in NOTEBOOK_PARAMS if n == name}
    for params in arch.SEED_MODELS.values():
        assert arch.suggest(optuna.trial.FixedTrial(params)) == params


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_large_input_models_resize_inside(name: str) -> None:
    model = spaces.get(name).build(spaces.get(name).SEED_MODELS["model1"], (28, 28, 1), 5)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.layers[1].__class__.__name__ == "Resizing"


@pytest.mark.parametrize("name", spaces.names())
def test_default_configuration_is_a_point_of_the_space(name: str) -> None:
    """The warm-start trial is a complete, in-range sample of the space (FixedTrial rejects missing params)."""
    arch = spaces.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Fixed parameter ... is out of range" would fail the test
        assert arch.suggest(optuna.trial.FixedTrial(arch.DEFAULT)) == arch.DEFAULT


@pytest.mark.parametrize("optimizer", sorted(LEARNING_RATES))
def test_learning_rate_range_depends_on_the_optimizer(optimizer: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        study.enqueue_trial({"optimizer": optimizer})
        trial = study.ask()
        params = suggest_training(trial)
        low, high = LEARNING_RATES[optimizer]
        assert low <= params["learning_rate"] <= high
        study.tell(trial, 0.5)
