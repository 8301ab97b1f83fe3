"""TabNet and BERT: seeding, TabNet's early-stopping set, BERT's text construction and truncation.

The conformance suite already fits both in the smoke profile on the mock dataset; these tests
fit each a few more times (module fixtures, so the encoder and the features load once).
"""

import numpy as np
import pytest

from synbench.data import Batch
from synbench.errors import DataError
from synbench.features import tabular_design
from synbench.plugins.models.bert import BertBaseline, SequenceBuilder, _load_encoder, fit_lengths, row_entities, text_features
from synbench.plugins.models.tabnet import TabNetModel
from synbench.testing import mock_batches

TABNET_SMOKE = TabNetModel.profiles["smoke"].params
BERT_SMOKE = BertBaseline.profiles["smoke"].params


@pytest.fixture(scope="module")
def tabnet_fits():
    """Seed 0 twice and seed 1 once (regression), recording what pytorch-tabnet's fit was given."""
    from pytorch_tabnet.tab_model import TabNetRegressor

    train, valid, test, _ = mock_batches(TabNetModel, "regression")
    calls = []
    original = TabNetRegressor.fit

    def spy(self, X_train, y_train, **kwargs):
        calls.append({"X_train": np.array(X_train), "y_train": np.array(y_train), **kwargs})
        return original(self, X_train, y_train, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(TabNetRegressor, "fit", spy)
    try:
        models = [TabNetModel(seed=s, **TABNET_SMOKE).fit(train, valid) for s in (0, 0, 1)]
    finally:
        mp.undo()
    return {"train": train, "valid": valid, "test": test, "models": models, "calls": calls,
            "preds": [m.predict(test) for m in models]}


def test_tabnet_same_seed_same_predictions(tabnet_fits):
    a, b, c = tabnet_fits["preds"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c), "a different seed should give a different network"


def test_tabnet_early_stops_on_inner_validation_only(tabnet_fits):
    train, valid, test = tabnet_fits["train"], tabnet_fits["valid"], tabnet_fits["test"]
    assert not set(valid.rows.index) & set(test.rows.index)
    call = tabnet_fits["calls"][0]
    (X_eval, y_eval), = call["eval_set"]
    np.testing.assert_array_equal(X_eval, tabular_design(valid, "mean"))
    np.testing.assert_array_equal(call["X_train"], tabular_design(train, "mean"))
    model = tabnet_fits["models"][0]
    # pytorch-tabnet wants 2-D regression targets; ours are standardised with training statistics
    assert y_eval.shape == (len(valid), 1) and call["y_train"].shape == (len(train), 1)
    np.testing.assert_allclose(y_eval.ravel() * model.y_scale_ + model.y_mean_, valid.y, rtol=1e-6, atol=1e-6)
    assert call["patience"] == TABNET_SMOKE["patience"] and call["eval_name"] == ["valid"]
    log = model.training_log_
    assert log["n_valid"] == len(valid) and log["early_stopping_metric"] == "valid_mse"
    assert 1 <= log["best_epoch"] <= log["epochs"] <= TABNET_SMOKE["max_epochs"]
    assert len(log["valid_metric"]) == log["epochs"] and model.device_ == "cpu"


def test_tabnet_classification_gives_probabilities():
    train, valid, test, y = mock_batches(TabNetModel, "classification")
    model = TabNetModel(task="classification", **TABNET_SMOKE).fit(train, valid)
    p = model.predict(test)
    assert p.shape == (len(test),) and ((p >= 0) & (p <= 1)).all()
    assert model.training_log_["early_stopping_metric"] == "valid_auc"


@pytest.fixture(scope="module")
def bert_fold():
    return mock_batches(BertBaseline, "regression")


@pytest.fixture(scope="module")
def bert_fits(bert_fold):
    train, valid, test, _ = bert_fold
    models = [BertBaseline(seed=s, **BERT_SMOKE).fit(train, valid) for s in (0, 0, 1)]
    return models, [m.predict(test) for m in models]


def test_bert_same_seed_same_predictions(bert_fits):
    models, (a, b, c) = bert_fits
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    log = models[0].training_log_
    assert log["epochs"] == BERT_SMOKE["epochs"] and 1 <= log["best_epoch"] <= log["epochs"]
    assert log["rows_per_epoch"] == BERT_SMOKE["rows_per_epoch"] and log["n_valid_scored"] == BERT_SMOKE["valid_rows"]
    assert models[0].device_ == "cpu"


def test_bert_truncation_is_recorded(bert_fold, bert_fits):
    train = bert_fold[0]
    stats = bert_fits[0][0].training_log_["text"]["train"]
    builder = SequenceBuilder(_load_encoder()[0], text_features(train), BERT_SMOKE["max_length"])
    cut = sum(builder.build(d, c)[3] > 0 for d, c in row_entities(train))
    assert stats["rows"] == len(train) and stats["rows_truncated"] == cut > 0
    assert stats["max_length"] == BERT_SMOKE["max_length"] and stats["tokens_max"] > BERT_SMOKE["max_length"]
    assert "valid" in bert_fits[0][0].training_log_["text"]


def test_longest_segment_is_cut_first():
    assert fit_lengths([100, 10, 50], 80) == [35, 10, 35]
    assert fit_lengths([100, 10, 50], 81) == [36, 10, 35]
    assert fit_lengths([5, 6], 20) == [5, 6]
    assert sum(fit_lengths([300, 200, 150, 40], 251)) == 251


def test_bert_text_joins_every_drug_of_a_triple(bert_fold):
    train = bert_fold[0]
    tokenizer = _load_encoder()[0]
    texts = text_features(train)
    k = train.rows["n_drugs"].to_numpy()
    assert (k == 3).any(), "the mock dataset carries three-drug rows"
    row = int(np.flatnonzero(k == 3)[0])
    drugs, cell = row_entities(train)[row]
    assert len(drugs) == 3 and drugs == [train.rows.iloc[row][f"drug_{i}"] for i in (1, 2, 3)]

    builder = SequenceBuilder(tokenizer, texts, 512)
    ids, types, n_full, dropped = builder.build(drugs, cell)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    seps = [i for i, t in enumerate(ids) if t == tokenizer.sep_token_id]
    assert len(seps) == 4  # three drugs and the cell line
    starts = [1] + [s + 1 for s in seps[:-1]]
    for (start, end), name, kind in zip(zip(starts, seps), [*drugs, cell], ["drug"] * 3 + ["cell"]):
        whole = tokenizer(texts.drugs[name] if kind == "drug" else texts.cell_lines[name], add_special_tokens=False)["input_ids"]
        assert ids[start:end] == whole[:end - start] and end - start > 0
    assert set(types[:seps[2] + 1]) == {0} and set(types[seps[2] + 1:]) == {1}  # cell line = sentence B
    assert n_full - dropped == len(ids) <= 512

    short = SequenceBuilder(tokenizer, texts, 40).build(drugs, cell)
    assert len(short[0]) == 40 and short[3] == n_full - 40 and short[0].count(tokenizer.sep_token_id) == 4


def test_bert_without_text_features_is_a_one_line_error(bert_fold):
    train, valid = bert_fold[0], bert_fold[1]
    bare = Batch(train.rows, {}, train.task, train.y)
    with pytest.raises(DataError, match="text feature set"):
        BertBaseline(**BERT_SMOKE).fit(bare, valid)
