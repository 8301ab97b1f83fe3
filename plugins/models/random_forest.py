"""Random forest (scikit-learn): a baseline of the DeepSynergy and DeepDDS papers."""

from synbench.base import DEFAULT_PROFILES, Integer, Profile, Real
from synbench.hookspecs import hookimpl
from synbench.reference import CHEM_EXPR
from synbench.runner import n_threads
from synbench.tabular import TabularModel


class RandomForestModel(TabularModel):
    name = "random-forest"
    description = "random forest regressor / classifier on tabular features"
    reference = "Breiman 2001; DeepSynergy (Preuer et al. 2018) and DeepDDS (Wang et al. 2022) baseline"
    featurizers = CHEM_EXPR
    # Not in BAITSAO's Table 1: both protocols search the same ranges. More trees never hurt a
    # forest, only cost: the count is fixed, the per-split feature share and leaf size are tuned.
    # (sqrt of ~1,000 columns is 0.03; a share above 0.2 makes each tree cost seconds for no gain)
    search_space = {
        "max_features": Real(0.01, 0.2, log=True),
        "min_samples_leaf": Integer(1, 20, log=True, limits=("low",)),
    }
    profiles = {**DEFAULT_PROFILES,
                "quick": DEFAULT_PROFILES["quick"].with_params(n_estimators=100, note="100 trees"),
                "smoke": Profile(params={"n_estimators": 20}, description="20 trees, no search")}
    # the same ranges under both protocols, and a forest's predictions do not change when the
    # target is standardised and inverted: it runs once per grid, under the first protocol
    protocol_invariant = True

    def __init__(self, task="regression", seed=0, n_estimators=200, max_features=0.05, min_samples_leaf=1,
                 combine="concat"):
        self.task, self.seed, self.n_estimators = task, seed, n_estimators
        self.max_features, self.min_samples_leaf, self.combine = max_features, min_samples_leaf, combine

    def make_estimator(self):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if self.task == "regression" else RandomForestClassifier
        return cls(n_estimators=self.n_estimators, max_features=self.max_features, min_samples_leaf=self.min_samples_leaf,
                   n_jobs=n_threads(), random_state=self.seed)


@hookimpl
def synbench_register_models():
    return [RandomForestModel]
