"""SVM: RBF-kernel support vector regression / classification (BAITSAO baseline)."""

from synbench.base import DEFAULT_PROFILES, Profile, Real
from synbench.hookspecs import hookimpl
from synbench.tabular import TabularModel


class SVMModel(TabularModel):
    name = "svm"
    description = "RBF support vector regressor / classifier on standardised tabular features"
    reference = "Cortes & Vapnik 1995; BAITSAO (Liu et al. 2025) baseline"
    featurizers = ("chem", "expression")
    search_space = {"C": Real(1.0, 5.0)}  # BAITSAO Table 1
    # Kernel SVMs scale quadratically in rows: on a CPU the search runs on a subsample of the
    # inner training rows; the final model is always fitted on all training rows.
    profiles = {**DEFAULT_PROFILES, "cpu": Profile(search_trials=2, search_max_rows=3000, description="2 search trials on 3,000 rows")}

    def __init__(self, task="regression", seed=0, C=1.0, gamma="scale", combine="mean", cache_size=2000):
        self.task, self.seed, self.C, self.gamma, self.combine, self.cache_size = task, seed, C, gamma, combine, cache_size

    def make_estimator(self):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR

        if self.task == "regression":
            est = SVR(C=self.C, gamma=self.gamma, cache_size=self.cache_size)
        else:
            est = SVC(C=self.C, gamma=self.gamma, cache_size=self.cache_size, random_state=self.seed)
        return make_pipeline(StandardScaler(), est)


@hookimpl
def synbench_register_models():
    return [SVMModel]
