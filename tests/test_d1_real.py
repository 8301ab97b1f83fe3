"""D1 on the staged public data (needs SYNBENCH_DATA_DIR; .ci/run sets it)."""

import numpy as np
import pytest

from conftest import real_data_dir, requires_real_data
from synbench import runner
from synbench.features import featurize
from synbench.splits import combination_keys, fold_ids, make_splits
from synbench.store import Store

pytestmark = requires_real_data


@pytest.fixture(scope="module")
def d1():
    return runner.load_dataset("d1-oneil", str(real_data_dir()))


def test_shape_entities_and_targets(d1):
    c = d1.combinations
    assert len(c) == 23052 and c.index.is_unique
    assert len(d1.drugs) == 38 and len(d1.cell_lines) == 39
    assert set(np.unique(c[d1.drug_columns].to_numpy())) == set(d1.drugs.index)
    assert c["fold"].value_counts().sort_index().tolist() == [4554, 4614, 4599, 4599, 4686]
    assert d1.targets["loewe"].task == "regression" and d1.targets["loewe_gt30"].task == "classification"
    labels = d1.labels("loewe_gt30")
    assert ((d1.labels("loewe") > 30) == (labels == 1)).all()
    assert 0.05 < labels.mean() < 0.15
    assert sum(rid.endswith("#2") for rid in c.index) == 315  # replicate measurements kept, numbered
    assert d1.omics["expression"].shape == (39, 3384)
    assert d1.drugs.loc["ZOLINZA", "aliases"][0] == "vorinostat"


def test_published_folds_are_leave_combination_out(d1):
    keys = combination_keys(d1.combinations, d1.drug_columns)
    assert (keys.groupby(keys).apply(lambda k: d1.combinations.loc[k.index, "fold"].nunique()) == 1).all()
    splits = make_splits(d1, "published")
    ids = fold_ids(splits, 0)
    assert set(keys.loc[ids["valid"]]).isdisjoint(keys.loc[ids["train"]])


def test_chem_handles_platinum_complexes(d1):
    fs = featurize(d1, "chem")
    assert len(fs.drugs) == 38 and np.isfinite(fs.drugs.to_numpy()).all()
    assert {"CARBOPLATIN", "OXALIPLATIN"} <= set(fs.info["imputed"])


def test_one_fold_end_to_end(d1, tmp_path):
    store = Store(tmp_path / "s")
    # quick without its search: the final fit on 5,000 rows at 200 solver passes (smoke's fit on every
    # training row in both drug orders took about fifteen times as long for the same checks)
    jobs = runner.plan(["d1-oneil"], ["constant", "lasso"], profile="quick", trials=0, folds=[0], data_dir=str(real_data_dir()),
                       featurizers=["chem:n_bits=256", "expression:n_genes=200"])
    runner.run(jobs, store, runner.RunSettings(data_dir=str(real_data_dir())))
    m = store.metrics_frame().pivot_table(index=["model", "target"], columns="metric", values="value")
    assert m.loc[("lasso", "loewe"), "pcc"] > 0.2
    assert m.loc[("lasso", "loewe"), "mse"] < m.loc[("constant", "loewe"), "mse"]
    assert m.loc[("lasso", "loewe_gt30"), "roc_auc"] > 0.6
    assert m.loc[("constant", "loewe_gt30"), "roc_auc"] == 0.5
