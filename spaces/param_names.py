"""How a configuration's params are named in Optuna's storage, and back.

A param whose range depends on the optimizer (the learning rate, the weight decay) is stored under one name per
optimizer: `learning_rate_adam`, `learning_rate_sgd`... Optuna's TPE models each name as one distribution, so a
shared name would mix the ranges: it scores SGD's rates against Adam's observations (independent TPE) and keeps
the first range it saw for the multivariate model (measured in tests/test_param_names.py). Everything else in
hpsearch (builders, notebook tables, exports) uses the plain names; this module is the one place that converts."""
from __future__ import annotations

from typing import Any

Params = dict[str, Any]

PER_OPTIMIZER = ("learning_rate", "weight_decay")


def stored_name(name: str, optimizer: str) -> str:
    """The name Optuna stores param `name` under for trials of `optimizer`."""
    return f"{name}_{optimizer}" if name in PER_OPTIMIZER else name


def stored_params(params: Params) -> Params:
    """A configuration's params as Optuna stores them: what enqueue_trial and FixedTrial take."""
    optimizer = params.get("optimizer")
    return params if optimizer is None else {stored_name(key, optimizer): value for key, value in params.items()}


def model_params(stored: Params) -> Params:
    """A trial's params (`trial.params`) with the plain names the builders read. A trial stored before the
    per-optimizer names already has them and comes back unchanged."""
    optimizer = stored.get("optimizer")
    if optimizer is None:
        return dict(stored)
    plain = {stored_name(name, optimizer): name for name in PER_OPTIMIZER}
    return {plain.get(key, key): value for key, value in stored.items()}
