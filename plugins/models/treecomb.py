"""TreeComb: gradient-boosted trees (XGBoost) on tabular features (BAITSAO baseline)."""

from synbench.base import DEFAULT_PROFILES, Integer, Profile
from synbench.hookspecs import hookimpl
from synbench.runner import n_threads
from synbench.tabular import TabularModel


class TreeCombModel(TabularModel):
    name = "treecomb"
    description = "XGBoost regressor / classifier (TreeComb) on tabular features"
    reference = "Janizek et al. 2018 (TreeComb); Chen & Guestrin 2016 (XGBoost); BAITSAO baseline"
    featurizers = ("chem", "expression")
    search_space = {  # BAITSAO Table 1
        "max_depth": Integer(10, 100),
        "n_estimators": Integer(10, 50),
        "min_child_weight": Integer(1, 3),
    }

    # Deep histogram trees on thousands of features cost seconds per tree on two cores: the cpu
    # profile searches on a subsample; the final model is fitted on all training rows.
    profiles = {**DEFAULT_PROFILES,
                "cpu": Profile(search_trials=3, search_max_rows=5000, description="3 search trials on 5,000 rows"),
                "smoke": Profile(params={"n_estimators": 10}, description="10 trees, no search")}

    def __init__(self, task="regression", seed=0, max_depth=10, n_estimators=50, min_child_weight=1,
                 learning_rate=0.3, combine="mean"):
        self.task, self.seed = task, seed
        self.max_depth, self.n_estimators, self.min_child_weight = max_depth, n_estimators, min_child_weight
        self.learning_rate, self.combine = learning_rate, combine

    def make_estimator(self):
        import xgboost

        cls = xgboost.XGBRegressor if self.task == "regression" else xgboost.XGBClassifier
        return cls(max_depth=self.max_depth, n_estimators=self.n_estimators, min_child_weight=self.min_child_weight,
                   learning_rate=self.learning_rate, tree_method="hist", random_state=self.seed, n_jobs=n_threads(),
                   # bound the per-node histogram cache: at max_depth up to 100 it otherwise grows to many GB
                   max_cached_hist_node=128)


@hookimpl
def synbench_register_models():
    return [TreeCombModel]
