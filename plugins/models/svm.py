"""SVM: RBF-kernel support vector regression / classification (BAITSAO baseline).

Both drug orders through one kernel. With ``combine=concat`` the tabular design trains on every
pair in both drug orders and averages the predictions over the orders. For an RBF kernel k on the
concatenated features that is the same optimisation problem, exactly, as an SVM on the pairs as
listed with the symmetrised kernel

    K(x, z) = k(x, z) + k(x, swap(z))

(``swap`` exchanges the two drug blocks): the doubled training set is closed under the swap, so
its dual solution gives a pair and its swap the same coefficient, and halving that dual gives the
dual above with the same C (and epsilon); the fitted function takes the same value on both orders,
so the average over orders is the function itself. The symmetrised kernel is computed once, as a
precomputed Gram matrix on the listed pairs: half the rows of the doubled design, so a quarter of
the kernel entries, and none computed twice by libsvm's cache (on D1 Loewe fold 0 the doubled
design cost 6,293 s of search, fit and prediction; ``benchmarks/svm_pair_kernel.py`` measures both
paths on the same rows). The two paths agree to libsvm's stopping tolerance. The kernel path is
taken on a pairwise dataset (two drug columns, two drugs in every row) where no row's swap is listed as a row of its own (the doubled design
then leaves that copy out, so the doubled set is not closed under the swap) and the Gram matrix
fits in ``MAX_KERNEL_ROWS``; otherwise the doubled design is fitted as written.
"""

import numpy as np

from synbench.base import Real
from synbench.hookspecs import hookimpl
from synbench.reference import CHEM_EXPR
from synbench.tabular import TabularModel

# a Gram matrix of n rows holds n^2 float64 values (24,000 rows: 4.6 GB); above that the doubled
# design is fitted through libsvm's kernel cache instead
MAX_KERNEL_ROWS = 24_000
KERNEL_CHUNK_ROWS = 2_048  # the Gram matrix is filled this many rows at a time (bounded temporaries)


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

    def make_estimator(self, kernel="rbf"):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR

        if self.task == "regression":
            est = SVR(C=self.C, kernel=kernel, cache_size=self.cache_size)
        else:
            est = SVC(C=self.C, kernel=kernel, cache_size=self.cache_size, random_state=self.seed)
        return est if kernel == "precomputed" else make_pipeline(StandardScaler(), est)

    def _gamma(self, X) -> float:
        if self.gamma != "scale":
            return self.gamma
        # scikit-learn's 'scale' rule, 1 / (n_features * var), on the standardised features
        # (variance 1 per varying column, 0 per constant one), times the searched factor
        varying = int((X.std(axis=0) > 0).sum())
        return self.gamma_factor / max(varying, 1)

    def fit_estimator(self, estimator, X, y, X_valid=None, y_valid=None):
        estimator.steps[-1][1].set_params(gamma=self._gamma(X))
        return estimator.fit(X, y)

    # -- both drug orders through the symmetrised kernel ----------------------------------------
    def _pair_blocks(self, batch, fitting: bool):
        """The design of the pairs as listed and of their swaps, or None where the kernel path does not apply."""
        from synbench.data import CELL, N_DRUGS, drug_columns
        from synbench.features import tabular_design
        from synbench.neural import drug_orderings

        rows = batch.rows
        dcols = drug_columns(rows)
        # a pairwise dataset only: one with a third drug column may hold triples in any fold
        if self.combine != "concat" or len(dcols) != 2 or not (rows[N_DRUGS] == 2).all():
            return None
        listed = set(zip(rows[dcols[0]], rows[dcols[1]], rows[CELL]))
        if fitting and any((b, a, c) in listed for a, b, c in listed):
            return None  # the doubled design leaves such a copy out: not closed under the swap
        (_, _, as_listed), (_, _, swapped) = drug_orderings(batch)
        return tabular_design(as_listed, "stack"), tabular_design(swapped, "stack")

    def _gram(self, A, B, B_swapped) -> np.ndarray:
        from sklearn.metrics.pairwise import rbf_kernel

        K = np.empty((len(A), len(B)))
        for start in range(0, len(A), KERNEL_CHUNK_ROWS):
            part = A[start:start + KERNEL_CHUNK_ROWS]
            K[start:start + len(part)] = rbf_kernel(part, B, gamma=self.gamma_) + rbf_kernel(part, B_swapped, gamma=self.gamma_)
        return K

    def fit(self, train, valid=None):
        from sklearn.preprocessing import StandardScaler

        self.__dict__.pop("pair_kernel_", None)
        blocks = self._pair_blocks(train, fitting=True) if len(train) <= MAX_KERNEL_ROWS else None
        if blocks is None:
            return super().fit(train, valid)
        X, X_swapped = blocks
        both = np.vstack([X, X_swapped])  # the doubled design: its statistics, as the other path fits them
        self.scaler_ = StandardScaler().fit(both)
        self.gamma_ = self._gamma(self.scaler_.transform(both))
        del both
        A, A_swapped = self.scaler_.transform(X), self.scaler_.transform(X_swapped)
        y = train.y if self.task == "regression" else train.y.astype(int)
        self.estimator_ = self.make_estimator(kernel="precomputed").fit(self._gram(A, A, A_swapped), y)
        support = self.estimator_.support_
        self.pair_kernel_ = (A[support], A_swapped[support])  # the support pairs, both orders
        self.training_log_ = {"pair_kernel": "symmetrised (both drug orders in one kernel)", "n_support": int(len(support))}
        return self

    def predict(self, batch) -> np.ndarray:
        if getattr(self, "pair_kernel_", None) is None:
            return super().predict(batch)
        blocks = self._pair_blocks(batch, fitting=False)
        if blocks is None:  # a batch the fitted pairs cannot score through the kernel (k > 2)
            from synbench.errors import DataError

            raise DataError("svm: fitted on drug pairs through the symmetrised kernel; it scores rows of two drugs in two drug columns only")
        support, support_swapped = self.pair_kernel_
        # the decision function over the support pairs only: sum_i dual_i K(x, s_i) + b
        K = self._gram(self.scaler_.transform(blocks[0]), support, support_swapped)
        decision = K @ self.estimator_.dual_coef_[0] + self.estimator_.intercept_[0]
        if self.task == "regression":
            return decision
        return 1.0 / (1.0 + np.exp(-decision))


@hookimpl
def synbench_register_models():
    return [SVMModel]
