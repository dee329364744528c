"""Every registered architecture builds from sampled params, and the notebook's models exactly."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import optuna
import pytest

import spaces
from spaces._blocks import HEAD_POOLING, make_callbacks, make_optimizer
from spaces._common import LEARNING_RATES, suggest_training
from spaces._keras2 import DecayedSGD
from spaces.param_names import stored_params

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
    assert arch.NOTEBOOK[model].reported.n_params == NOTEBOOK_PARAMS[(name, model)]


@pytest.mark.parametrize("name", spaces.names())
def test_every_seed_model_is_a_point_of_the_search_space(name: str) -> None:
    """suggest() on a FixedTrial returns exactly the seed params: enqueue_trial replays them unchanged."""
    arch = spaces.get(name)
    assert set(arch.SEED_MODELS) == {m for n, m in NOTEBOOK_PARAMS if n == name}
    for params in arch.SEED_MODELS.values():
        assert arch.suggest(optuna.trial.FixedTrial(stored_params(params))) == params


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_large_input_models_resize_inside(name: str) -> None:
    model = spaces.get(name).build(spaces.get(name).SEED_MODELS["model1"], (28, 28, 1), 5)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.layers[1].__class__.__name__ == "Resizing"


@pytest.mark.parametrize("name", spaces.names())
def test_large_images_keep_the_dense_head_about_its_own_size(name: str) -> None:
    """A folder of 224x224 photos gave the notebook's AlexNet 676M parameters and its CNN 51M (0.89M at 28x28):
    the dense head grew with the image's area. A side of the last map twice or more its grid at the
    architecture's own INPUT_SIZE is now pooled to under twice it (sides under twice are as before), and such a
    model trains (TensorFlow, graph mode: Keras' AdaptiveAveragePooling2D failed there on VGG's 1-pixel map)."""
    arch = spaces.get(name)
    own = arch.build(arch.DEFAULT, (arch.INPUT_SIZE, arch.INPUT_SIZE, 3), 5).count_params()
    for shape in ((120, 100, 3), (40, 100, 3)):
        model = arch.build(arch.DEFAULT, shape, 5)
        assert model.count_params() <= 4 * own, shape
        if any(layer.name == HEAD_POOLING for layer in model.layers):  # not ResNet's, which pools globally
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            assert np.isfinite(model.train_on_batch(np.ones((2, *shape), np.float32), np.array([0, 4])))


def test_the_head_is_pooled_only_where_a_side_is_twice_the_architectures_own() -> None:
    """Models of 28x28 (the notebook's), 32x32 (CIFAR's) or 28x40 images keep their whole last map (the CNN's
    8x8 at 32x32, not pooled to 4x4); a 64x64 one is pooled, and trains on JAX too, where Keras'
    AdaptiveAveragePooling2D gave NaN (every CNN trial at 56x56 failed)."""
    cnn = spaces.get("cnn")
    pooled = {size: any(layer.name == HEAD_POOLING for layer in cnn.build(cnn.DEFAULT, (*size, 1), 5).layers)
              for size in ((28, 28), (32, 32), (28, 40), (64, 64))}
    assert pooled == {(28, 28): False, (32, 32): False, (28, 40): False, (64, 64): True}
    code = textwrap.dedent("""
        import numpy as np, spaces
        for name in ("cnn", "lenet"):
            arch = spaces.get(name)
            model = arch.build(arch.DEFAULT, (64, 56, 1), 5)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            print(name, float(model.train_on_batch(np.random.rand(4, 64, 56, 1).astype("float32"), np.arange(4))))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-2000:]
    losses = dict(line.split() for line in done.stdout.splitlines())
    assert set(losses) == {"cnn", "lenet"} and all(np.isfinite(float(loss)) for loss in losses.values()), losses


# The notebook's training settings, read off its code cells: (optimizer, learning rate, batch, epochs, ReduceLR).
SGD_N = ("sgd_nesterov", 0.01)
NOTEBOOK_TRAINING = {
    ("cnn", "model1"): ("adam", 0.001, 32, 50, False), ("cnn", "model2"): ("adam", 0.001, 32, 50, True),
    ("cnn", "model3"): ("adam", 0.001, 32, 50, True), ("cnn", "model4"): ("adam", 0.001, 32, 50, True),
    ("cnn", "model5"): (*SGD_N, 32, 50, True), ("cnn", "model6"): (*SGD_N, 128, 50, True),
    ("cnn", "model7"): (*SGD_N, 32, 50, True),
    ("vgg16", "model1"): ("sgd", 0.01, 64, 50, False), ("vgg16", "model3"): ("adam", 0.001, 64, 50, False),
    ("alexnet", "model1"): ("sgd", 0.01, 64, 50, False), ("alexnet", "model2"): ("adam", 0.001, 64, 50, False),
    ("alexnet", "model3"): ("adadelta", 1.0, 64, 50, False),
    ("lenet", "model1"): ("adam", 0.001, 64, 80, False), ("lenet", "model2"): ("adam", 0.0005, 64, 80, False),
    ("lenet", "model3"): ("adam", 0.01, 64, 80, False), ("lenet", "model4"): ("adam", 0.001, 32, 150, False),
    ("lenet", "model5"): ("sgd", 0.0001, 32, 200, False),
    ("resnet", "model1"): ("adam", 0.001, 64, 50, False), ("resnet", "model2"): ("adam", 0.001, 32, 50, False),
    ("resnet", "model3"): ("sgd", 0.01, 64, 50, False),
}
OPTIMIZER_CLASSES = {"sgd": keras.optimizers.SGD, "sgd_nesterov": DecayedSGD, "adam": keras.optimizers.Adam,
                     "adadelta": keras.optimizers.Adadelta}


@pytest.mark.parametrize("name, model", sorted(NOTEBOOK_TRAINING))
def test_seed_model_trains_with_the_notebooks_settings(name: str, model: str) -> None:
    optimizer_name, lr, batch, epochs, plateau = NOTEBOOK_TRAINING[(name, model)]
    seed = spaces.get(name).NOTEBOOK[model]
    optimizer = make_optimizer(seed.params)
    assert type(optimizer) is OPTIMIZER_CLASSES[optimizer_name]
    assert float(optimizer.learning_rate) == pytest.approx(lr)
    if optimizer_name == "sgd_nesterov":  # SGD-N: SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)
        assert (optimizer.momentum, optimizer.nesterov, optimizer.decay) == (0.9, True, 1e-6)
    elif optimizer_name == "sgd":
        assert optimizer.momentum == 0.0 and not optimizer.nesterov
    assert (seed.params["batch_size"], seed.epochs) == (batch, epochs)
    assert [type(c).__name__ for c in make_callbacks(seed.params)] == (["ReduceLROnPlateau"] if plateau else [])
    assert 0 < seed.reported.val_accuracy < 1 and seed.reported.seconds > 0


def _layer_names(model: keras.Model) -> list[str]:
    """The model's layer classes in order, the input left out."""
    return [type(layer).__name__ for layer in model.layers[1:]]


def test_cnn_layer_differences_are_the_notebooks() -> None:
    cnn = spaces.get("cnn")
    model3 = cnn.build(cnn.SEED_MODELS["model3"], (28, 28, 1), 5)
    assert [layer.rate for layer in model3.layers if isinstance(layer, keras.layers.Dropout)] == [0.25, 0.25, 0.5]
    model4 = _layer_names(cnn.build(cnn.SEED_MODELS["model4"], (28, 28, 1), 5))
    assert model4[-4:] == ["Activation", "LeakyReLU", "Dropout", "Dense"]  # LeakyReLU(0.1) after Dense(256, relu)
    model7 = _layer_names(cnn.build(cnn.SEED_MODELS["model7"], (28, 28, 1), 5))
    conv, bn, relu = "Conv2D", "BatchNormalization", "Activation"
    assert model7[:15] == [conv, relu, bn, conv, relu, bn, "MaxPooling2D", "Dropout",
                           conv, relu, bn, conv, relu, "MaxPooling2D", "Dropout"]
    assert model7[15:17] == [bn, "Flatten"]


def test_cnn_samples_the_head_leaky_relu_only_where_it_changes_the_model() -> None:
    """After a relu Dense layer a LeakyReLU is the identity: sampled there, it was a dimension of pure noise to TPE
    in half the CNN's trials. A trial handed it (notebook model 4, after relu) keeps it."""
    cnn = spaces.get("cnn")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = [study.ask() for _ in range(20)]
    for trial in trials:
        cnn.suggest(trial)
    assert {trial.params["activation"] for trial in trials} == {"relu", "leaky_relu"}
    assert all(("head_leaky_relu" in trial.params) == (trial.params["activation"] == "leaky_relu")
               for trial in trials)
    assert cnn.suggest(optuna.trial.FixedTrial(stored_params(cnn.SEED_MODELS["model4"])))["head_leaky_relu"]


def test_a_cnn_trial_stored_before_the_head_params_still_builds() -> None:
    """Trials stored before the CNN's space had head_dropout, head_leaky_relu and batch_norm_layout (2026-11-25)
    could not be exported or confirmed (KeyError): they build as that space did."""
    cnn = spaces.get("cnn")
    old = {key: value for key, value in {**cnn.SEED_MODELS["model1"], "dropout": 0.3, "batch_norm": True,
                                         "bn_momentum": 0.9}.items()
           if key not in ("head_dropout", "head_leaky_relu", "batch_norm_layout")}
    names = _layer_names(model := cnn.build(old, (28, 28, 1), 5))
    assert names[:3] == ["Conv2D", "BatchNormalization", "Activation"] and "LeakyReLU" not in names
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.3, 0.3, 0.3]


def test_decayed_sgd_is_keras2_decay_and_plateau_halves_its_base_rate() -> None:
    optimizer = DecayedSGD(0.01, decay=1e-6, momentum=0.9, nesterov=True)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    optimizer.iterations.assign(100_000)
    assert float(optimizer.learning_rate) == pytest.approx(0.01 / 1.1)
    optimizer.learning_rate = float(optimizer.learning_rate) * 0.5  # what ReduceLROnPlateau does
    assert float(optimizer.learning_rate) == pytest.approx(0.005 / 1.1)
    assert DecayedSGD.from_config(optimizer.get_config()).decay == 1e-6


def test_reduce_lr_on_plateau_trains_with_decayed_sgd() -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=DecayedSGD(0.01, decay=1e-6), loss="sparse_categorical_crossentropy")
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0)
    model.fit(np.ones((8, 4), "float32"), np.zeros(8, "int32"), epochs=3, verbose=0, callbacks=[plateau])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0025, rel=1e-4)  # halved after epochs 2, 3


@pytest.mark.parametrize("name", spaces.names())
def test_default_configuration_is_a_point_of_the_space(name: str) -> None:
    """The warm-start trial is a complete, in-range sample of the space (FixedTrial rejects missing params)."""
    arch = spaces.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Fixed parameter ... is out of range" would fail the test
        assert arch.suggest(optuna.trial.FixedTrial(stored_params(arch.DEFAULT))) == arch.DEFAULT


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


def test_resnet_stem_is_a_lever_and_absent_is_the_notebooks() -> None:
    """The search samples both stems with the levers and none without; params without a stem (the notebook's
    models, the warm start, studies from before) build the 7x7/2 stem, "small" a 3x3/1 one that keeps 28x28."""
    arch = spaces.get("resnet")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    assert {arch.suggest(study.ask())["stem"] for _ in range(12)} == set(arch.STEMS)
    assert all("stem" not in arch.suggest(study.ask(), levers=False) for _ in range(4))

    def stem_and_last_map(params: dict[str, object]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        model = arch.build(params, (28, 28, 1), 5)
        stem = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
        pooled = next(layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
        return stem.kernel_size, stem.strides, pooled.input.shape[1]

    # DEFAULT: 3 stages, no stem pooling: the last stage works on 28 -> 14 -> 7 -> 4 pixels a side, or 28 -> 14 -> 7.
    assert stem_and_last_map(arch.DEFAULT) == ((7, 7), (2, 2), 4)
    assert stem_and_last_map({**arch.DEFAULT, "stem": "notebook"}) == ((7, 7), (2, 2), 4)
    assert stem_and_last_map({**arch.DEFAULT, "stem": "small"}) == ((3, 3), (1, 1), 7)
