"""Elastic net: L1 + L2 penalised linear / logistic regression (a baseline of the DeepSynergy paper)."""

from synbench.base import DEFAULT_PROFILES, Real
from synbench.hookspecs import hookimpl
from synbench.reference import CHEM_EXPR
from synbench.tabular import TabularModel


class ElasticNetModel(TabularModel):
    name = "elastic-net"
    description = "elastic-net regression / elastic-net logistic regression on standardised tabular features"
    reference = "Zou & Hastie 2005; DeepSynergy (Preuer et al. 2018) baseline"
    featurizers = CHEM_EXPR
    # quick: at most 200 solver passes (saga on the Loewe > 30 classification was a quarter of the
    # main job's time at 2,000); a fit stopped there is recorded as not converged
    # smoke: at most 50 (saga took 30 s a fit on the mock data's classification at 2,000)
    profiles = {**DEFAULT_PROFILES,
                "quick": DEFAULT_PROFILES["quick"].with_params(max_iter=200, note="at most 200 solver passes"),
                "smoke": DEFAULT_PROFILES["smoke"].with_params(max_iter=50, note="at most 50 solver passes")}
    # Not in BAITSAO's Table 1: both protocols search the same ranges (alpha in units of the
    # standardised target's sd; classification uses C = 1 / alpha)
    search_spaces = {
        "strong:regression": {"alpha": Real(1e-4, 1.0, log=True), "l1_ratio": Real(0.05, 1.0, limits=("high",))},
        "strong:classification": {"alpha": Real(1e-1, 1e3, log=True), "l1_ratio": Real(0.05, 1.0, limits=("high",))},
        "table1:regression": {"alpha": Real(1e-4, 1.0, log=True), "l1_ratio": Real(0.05, 1.0, limits=("high",))},
        "table1:classification": {"alpha": Real(1e-1, 1e3, log=True), "l1_ratio": Real(0.05, 1.0, limits=("high",))},
    }

    # alpha None (no search): 0.01 for regression, 1 (C = 1) for classification, as for the Lasso
    def __init__(self, task="regression", seed=0, alpha=None, l1_ratio=0.5, combine="concat", max_iter=2000):
        self.task, self.seed, self.alpha, self.l1_ratio = task, seed, alpha, l1_ratio
        self.combine, self.max_iter = combine, max_iter

    def make_estimator(self):
        from sklearn.linear_model import ElasticNet, LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.task == "regression":
            alpha = 0.01 if self.alpha is None else self.alpha
            est = ElasticNet(alpha=alpha, l1_ratio=self.l1_ratio, max_iter=self.max_iter, random_state=self.seed)
        else:
            alpha = 1.0 if self.alpha is None else self.alpha
            est = LogisticRegression(l1_ratio=self.l1_ratio, C=1.0 / alpha, solver="saga", max_iter=self.max_iter,
                                     tol=1e-3, random_state=self.seed)
        return make_pipeline(StandardScaler(), est)


@hookimpl
def synbench_register_models():
    return [ElasticNetModel]
