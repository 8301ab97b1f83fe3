"""The constant baseline: the training mean (regression) or class-1 frequency (classification).

Always on the leaderboard so that no method is credited for beating nothing."""

import numpy as np

from synbench.base import Model, Profile
from synbench.hookspecs import hookimpl


class ConstantModel(Model):
    name = "constant"
    description = "training-set mean (regression) / class prior (classification)"
    reference = "baseline"
    featurizers = ()
    profiles = {p: Profile(description="no parameters") for p in ("paper", "cpu", "quick", "smoke")}
    # its predictions do not depend on the search protocol (the mean of a standardised target,
    # inverted, is the mean): it runs once per grid, under the first protocol
    protocol_invariant = True

    def fit(self, train, valid=None):
        self.value_ = float(np.mean(train.y))
        return self

    def predict(self, batch):
        return np.full(len(batch), self.value_)


@hookimpl
def synbench_register_models():
    return [ConstantModel]
