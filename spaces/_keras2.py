"""Keras 2's SGD `decay` argument, which Keras 3 dropped, for replaying the notebook's SGD-N exactly."""
from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hpsearch")
class DecayedSGD(keras.optimizers.SGD):
    """SGD whose step uses lr / (1 + decay * iterations), Keras 2's `decay`.

    That is keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay); it is not built
    on that schedule because Keras 3 refuses to set the rate of an optimizer made with a schedule, and the
    notebook's SGD-N models all ran with ReduceLROnPlateau. Here the base rate stays a variable: setting
    `learning_rate` (what ReduceLROnPlateau does) rescales the base, as lowering Keras 2's `lr` did."""

    def __init__(self, learning_rate: float = 0.01, decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.decay = decay

    def _decay_factor(self) -> Any:
        """1 + decay * iterations: how much the base rate is divided by at this step."""
        return 1.0 + self.decay * ops.cast(self.iterations, "float32")

    def _get_current_learning_rate(self) -> Any:
        """The rate this step uses: the base rate, decayed by the steps taken so far."""
        return super()._get_current_learning_rate() / self._decay_factor()

    @property
    def learning_rate(self) -> Any:
        """The decayed rate of the current step (what Keras reports and callbacks read)."""
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        """Set the rate of the current step by rescaling the base rate (ReduceLROnPlateau halves the base)."""
        factor = float(ops.convert_to_numpy(self._decay_factor()))
        keras.optimizers.SGD.learning_rate.fset(self, float(value) * factor)

    def get_config(self) -> dict[str, Any]:
        """The SGD config plus the decay, so a saved model.keras reloads with it."""
        return {**super().get_config(), "decay": self.decay}
