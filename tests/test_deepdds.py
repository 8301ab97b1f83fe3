"""molecular-graph featurizer and the DeepDDS model (mock data, smoke sizes)."""

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from synbench.errors import ConfigError, DataError
from synbench.features import featurize
from synbench.plugins.featurizers.molecular_graph import N_ATOM_FEATURES, SYMBOLS, MolecularGraphFeaturizer
from synbench.plugins.models.deepdds import DeepDDSModel
from synbench.testing import mock_batches, mock_data

CARBOPLATIN = "N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]"
OXALIPLATIN = "NC1CCCCC1N.O=C(O)C(=O)O.[Pt+2]"
SMOKE = DeepDDSModel.profiles["smoke"].params


@pytest.fixture(scope="module")
def batches():
    """Inner-train, inner-valid and test batches of mock fold 0 (read-only; shared to save time)."""
    return mock_batches(DeepDDSModel, "classification")


def _with_drugs(smiles: dict):
    data = mock_data()
    drugs = pd.DataFrame({"smiles": pd.Series(smiles), "aliases": [[] for _ in smiles]})
    drugs.index.name = "drug"
    return dataclasses.replace(data, drugs=drugs)


def test_graphs_have_78_atom_features_and_undirected_bond_edges():
    from rdkit import Chem
    from torch_geometric.utils import is_undirected

    data = mock_data()
    fs = featurize(data, "molecular-graph", use_cache=False)
    assert fs.kind == "graph" and N_ATOM_FEATURES == 78 and len(SYMBOLS) == 44
    assert set(fs.drugs.index) == set(data.drugs.index)
    for drug, graph in fs.drugs.items():
        mol = Chem.MolFromSmiles(data.drugs.loc[drug, "smiles"])
        assert tuple(graph.x.shape) == (mol.GetNumAtoms(), 78) and graph.num_nodes == mol.GetNumAtoms()
        assert graph.edge_index.shape[1] == 2 * mol.GetNumBonds()
        assert is_undirected(graph.edge_index, num_nodes=graph.num_nodes)
        # GraphDTA divides each atom's one-hot blocks (4 or 5 ones) by their count
        x = graph.x.numpy()
        np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=1e-6)
        assert set(np.round((x > 0).sum(axis=1))) <= {4, 5}
    aspirin = fs.drugs["ASPIRIN"].x.numpy()
    ring_carbon = aspirin[4] * 5  # c1 of the benzene ring: C, degree 3, no H, implicit valence 0, aromatic
    assert ring_carbon[SYMBOLS.index("C")] == pytest.approx(1) and ring_carbon[44 + 3] == pytest.approx(1)
    assert ring_carbon[55 + 0] == pytest.approx(1) and ring_carbon[66 + 0] == pytest.approx(1) and ring_carbon[77] == pytest.approx(1)


def test_salts_and_platinum_complexes_keep_every_fragment():
    data = _with_drugs({"CARBOPLATIN": CARBOPLATIN, "OXALIPLATIN": OXALIPLATIN})
    fs = MolecularGraphFeaturizer(normalise=False).featurize(data)
    carbo, oxali = fs.drugs["CARBOPLATIN"], fs.drugs["OXALIPLATIN"]
    assert carbo.num_nodes == 13 and oxali.num_nodes == 15
    pt = SYMBOLS.index("Pt")
    assert carbo.x[-1, pt] == 1 and oxali.x[-1, pt] == 1  # the metal is a node, not dropped
    assert carbo.x[-1].sum() == 4  # Pt: symbol, degree 0, no H, implicit valence 0, not aromatic
    # no edges touch the isolated atoms (two ammonia N and Pt in carboplatin)
    touched = set(carbo.edge_index.flatten().tolist())
    assert {0, 1, 12}.isdisjoint(touched) and len(touched) == 10
    assert fs.info["multi_fragment_drugs"] == {"CARBOPLATIN": 4, "OXALIPLATIN": 3}
    assert fs.info["isolated_atoms"] == {"CARBOPLATIN": 3, "OXALIPLATIN": 1}
    largest = MolecularGraphFeaturizer(fragments="largest").featurize(data)
    assert largest.drugs["CARBOPLATIN"].num_nodes == 10 and largest.drugs["OXALIPLATIN"].num_nodes == 8


def test_graph_features_survive_the_cache_and_pickling():
    data = mock_data()
    first = featurize(data, "molecular-graph:normalise=False")
    cached = featurize(data, "molecular-graph:normalise=False")
    assert cached is not first and not first.info["normalise"]
    for drug in data.drugs.index:
        a, b = first.drugs[drug], pickle.loads(pickle.dumps(cached.drugs[drug]))
        assert (a.x == b.x).all() and (a.edge_index == b.edge_index).all()


def test_bad_smiles_and_options_are_one_line_errors():
    with pytest.raises(DataError, match="no valid SMILES for 1 drugs"):
        MolecularGraphFeaturizer().featurize(_with_drugs({"GOOD": "CCO", "BROKEN": "C1CC(("}))
    with pytest.raises(ConfigError, match="fragments"):
        MolecularGraphFeaturizer(fragments="biggest")


def test_same_seed_same_predictions_other_seed_differs(batches):
    train, valid, test, _ = batches
    a = DeepDDSModel(task="classification", seed=3, **SMOKE).fit(train, valid).predict(test)
    b = DeepDDSModel(task="classification", seed=3, **SMOKE).fit(train, valid).predict(test)
    c = DeepDDSModel(task="classification", seed=4, **SMOKE).fit(train, valid).predict(test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_training_log_and_published_per_occurrence_encoding(batches):
    train, valid, test, _ = batches
    model = DeepDDSModel(task="classification", seed=0, **{**SMOKE, "encode_distinct": False, "max_epochs": 3})
    pred = model.fit(train, valid).predict(test)
    assert pred.shape == (len(test),) and ((pred >= 0) & (pred <= 1)).all()
    log = model.training_log_
    assert log["epochs_run"] == 3 and 1 <= log["best_epoch"] <= 3 and log["selection"] == "valid roc_auc"
    assert log["best_valid_auc"] == max(log["history"]["valid_auc"])
    assert log["n_train_rows"] == len(train) and log["n_valid_rows"] == len(valid)
    assert model.device_ == "cpu"


def test_progress_names_the_quantity_it_watches(batches):
    # the epoch is chosen on validation ROC-AUC, so the progress line must not call it a loss
    from synbench.progress import listening

    train, valid, _, _ = batches
    messages = []
    with listening(messages.append):
        model = DeepDDSModel(task="classification", seed=0, **{**SMOKE, "max_epochs": 2}).fit(train, valid)
    epochs = [m for m in messages if m.startswith("epoch ")]
    assert len(epochs) == 2 and all("1 - validation ROC-AUC" in m for m in epochs)
    best = 1 - model.training_log_["best_valid_auc"]
    assert epochs[-1].endswith(f"(best {best:.4g})")
    # the published schedule has no validation split: each epoch still shows, with its training loss
    messages.clear()
    with listening(messages.append):
        last = DeepDDSModel(task="classification", seed=0, **{**SMOKE, "max_epochs": 2, "epoch_selection": "last"}).fit(train, None)
    assert messages == [f"epoch {e + 1}/2: training loss {loss:.4g}"
                        for e, loss in enumerate(last.training_log_["history"]["train_loss"])]


def test_a_triple_is_the_mean_of_its_pair_logits(batches):
    import torch

    from synbench.plugins.models.deepdds import _Inputs

    train, valid, test, _ = batches
    model = DeepDDSModel(task="classification", seed=0, **SMOKE).fit(train, valid)
    rows = pd.DataFrame({"drug_1": ["ASPIRIN", "ASPIRIN", "ASPIRIN", "CAFFEINE"],
                         "drug_2": ["CAFFEINE", "CAFFEINE", "METFORMIN", "METFORMIN"],
                         "drug_3": ["METFORMIN", None, None, None],
                         "cell_line": ["CELL-A"] * 4, "n_drugs": [3, 2, 2, 2]},
                        index=pd.Index(["t", "p1", "p2", "p3"], name="row_id"))
    batch = dataclasses.replace(test, rows=rows)
    logits = model._logits(_Inputs(batch))
    torch.testing.assert_close(logits[0], logits[1:].mean(dim=0))


def test_fit_sees_only_train_and_valid_rows(tmp_path, monkeypatch):
    from synbench.runner import RunSettings, plan, run
    from synbench.splits import fold_ids
    from synbench.store import Store

    seen = {}
    real_fit, real_predict = DeepDDSModel.fit, DeepDDSModel.predict

    def spy_fit(self, train, valid=None):
        seen["train"], seen["valid"] = set(train.rows.index), set(valid.rows.index)
        return real_fit(self, train, valid)

    def spy_predict(self, batch):
        seen["predict"], seen["predict_y"] = set(batch.rows.index), batch.y
        return real_predict(self, batch)

    monkeypatch.setattr(DeepDDSModel, "fit", spy_fit)
    monkeypatch.setattr(DeepDDSModel, "predict", spy_predict)
    store = Store(tmp_path / "store")
    jobs = plan(["mock"], ["deepdds"], targets=["synergistic"], profile="smoke", folds=[1])
    assert len(jobs) == 1 and jobs[0].featurizers == DeepDDSModel.featurizers
    run(jobs, store, RunSettings(isolate=False))  # in this process, where the spies are
    ids = fold_ids(store.load_splits(store.split_path(*jobs[0].split_key)), 1)
    assert seen["train"] == set(ids["train"]) and seen["valid"] == set(ids["valid"])
    assert seen["predict"] == set(ids["test"]) and seen["predict_y"] is None
    assert not (seen["train"] | seen["valid"]) & seen["predict"]
    assert plan(["mock"], ["deepdds"], targets=["score"], profile="smoke") == []  # classification only


def test_regression_is_refused(batches):
    train, valid, _, _ = batches
    with pytest.raises(ConfigError, match="binary classifier"):
        DeepDDSModel(task="regression", **SMOKE).fit(train, valid)


def test_last_epoch_selection_trains_every_training_row_for_every_epoch(tmp_path):
    # the published schedule without its test-fold peek: no inner validation, all epochs, last weights
    from synbench.runner import RunSettings, plan, run
    from synbench.store import Store

    store = Store(tmp_path / "store")
    jobs = plan(["mock"], ["deepdds"], targets=["synergistic"], profile="smoke", folds=[0],
                params={"epoch_selection": "last", "max_epochs": 3, "patience": 1})
    run(jobs, store, RunSettings(isolate=False))
    record = store.record(jobs[0].job_id)
    log = record["training"]
    assert log["selection"] == "last epoch" and log["epochs_run"] == 3 == log["best_epoch"]
    assert log["stopped"] == "cap" and log["monitor"] is None and log["n_valid_rows"] == 0
    assert log["n_train_rows"] == record["n_rows"]["train"] + record["n_rows"]["valid"] == record["final_fit_rows"]
    assert not DeepDDSModel(epoch_selection="last").uses_validation and DeepDDSModel().uses_validation


def test_unknown_epoch_selection_is_a_one_line_error(batches):
    train, valid, _, _ = batches
    with pytest.raises(ConfigError, match="epoch_selection must be one of validation, last, got 'best'"):
        DeepDDSModel(epoch_selection="best", **SMOKE).fit(train, valid)
