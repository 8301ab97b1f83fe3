"""SVM: RBF-kernel support vector regression / classification (BAITSAO baseline)."""

from synbench.base import Real
from synbench.hookspecs import hookimpl
from synbench.reference import CHEM_EXPR
from synbench.tabular import TabularModel


class SVMModel(TabularModel):
    name = "svm"
    description = "RBF support vector regressor / classifier on standardised tabular features"
    reference = "Cortes & Vapnik 1995; BAITSAO (Liu et al. 2025) baseline"
    featurizers = CHEM_EXPR
    search_space = {"C": Real(1.0, 5.0)}
    search_spaces = {
        "table1": {"C": Real(1.0, 5.0)},  # BAITSAO Table 1
        # gamma as a factor of scikit-learn's 'scale' (1 / (n_features * var(X)))
        "strong": {"C": Real(0.1, 100.0, log=True), "gamma_factor": Real(0.1, 10.0, log=True)},
    }

    def __init__(self, task="regression", seed=0, C=1.0, gamma="scale", gamma_factor=1.0, combine="mean", cache_size=2000):
        self.task, self.seed, self.C, self.gamma, self.gamma_factor = task, seed, C, gamma, gamma_factor
        self.combine, self.cache_size = combine, cache_size

    def make_estimator(self):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR

        if self.task == "regression":
            est = SVR(C=self.C, cache_size=self.cache_size)
        else:
            est = SVC(C=self.C, cache_size=self.cache_size, random_state=self.seed)
        return make_pipeline(StandardScaler(), est)

    def fit_estimator(self, estimator, X, y, X_valid=None, y_valid=None):
        gamma = self.gamma
        if gamma == "scale":
            # scikit-learn's 'scale' rule, 1 / (n_features * var), on the standardised features
            # (variance 1 per varying column, 0 per constant one), times the searched factor
            varying = int((X.std(axis=0) > 0).sum())
            gamma = self.gamma_factor / max(varying, 1)
        estimator.steps[-1][1].set_params(gamma=gamma)
        return estimator.fit(X, y)


@hookimpl
def synbench_register_models():
    return [SVMModel]
