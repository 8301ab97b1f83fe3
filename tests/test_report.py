"""`synbench report`: built from a stored mock run only, deterministic, self-contained, with the
published figures beside ours when the dataset matches."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synbench import leaderboard as lb
from synbench import published as pub
from synbench import report as rp
from synbench import runner
from synbench.cli import app
from synbench.errors import DataError
from synbench.registry import get_registry
from synbench.store import Store

MODELS = ("constant", "lasso", "treecomb")
HEADLINE = ("pcc", "mse", "roc_auc", "accuracy")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = root / "store"
    # a separate process with one thread per job: fast on a busy machine, and this session's thread
    # settings stay untouched for the other tests
    env = {**os.environ, "SYNBENCH_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso,treecomb", "--profile", "smoke",
                          "--out", str(store)], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    out = root / "out" / "report.html"
    res = CliRunner().invoke(app, ["report", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return store, out


def test_report_holds_every_model_metric_and_section(built):
    store, out = built
    md = out.with_suffix(".md").read_text()
    for name in MODELS:
        assert f"| {name} |" in md
    for metric in HEADLINE:
        assert f"`{metric}`" in md and f" {metric} " in md
    # the leaderboard cells are harness.leaderboard's, not recomputed
    board = lb.build(Store(store, create=False).metrics_frame())
    lasso = board.wide().set_index("model").loc["lasso"]
    assert f"| lasso | {lasso['mock/score mse']} | {lasso['mock/score pcc']} |" in md
    for heading in ("## Leaderboard", "## Fold-level results", "## Predictions", "## Paired tests", "## Published figures",
                    "## Runtime and memory", "## Selected hyperparameters", "## Provenance"):
        assert heading in md
    assert "0.0625" in md and "Wilcoxon" in md  # the n = 5 caveat
    assert "- `synbench run -d mock -m lasso,treecomb --profile smoke --out " in md  # from invocations.jsonl
    assert "| lasso | `smoke` | mock / score | 5 |" in md  # runtime row: method, profile, cell, jobs
    figures = sorted(p.name for p in (out.parent / "report_figures").iterdir())
    assert figures == ["box-mock-score-published.png", "box-mock-synergistic-published.png",
                       "roc-mock-synergistic-published.png", "scatter-mock-score-published.png"]
    assert sorted(re.findall(r"\]\(report_figures/([^)]+)\)", md)) == figures
    for name in figures:
        assert (out.parent / "report_figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(built):
    _, out = built
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<table>" in page and "lasso" in page and 'id="paired-tests"' in page


def test_rebuild_gives_identical_files(built):
    store, out = built
    before = {p: p.read_bytes() for p in [out, out.with_suffix(".md"), *sorted((out.parent / "report_figures").iterdir())]}
    res = CliRunner().invoke(app, ["report", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    after = {p: p.read_bytes() for p in before}
    assert after == before


def test_bad_store_or_out_is_a_one_line_error(built, tmp_path):
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a synbench result store" in lines[0]
    res = CliRunner().invoke(app, ["report", str(built[0]), "--out", str(tmp_path / "r.pdf")])
    assert res.exit_code == 2 and res.output.strip().startswith("error:") and ".html" in res.output


def test_published_figures_appear_when_the_dataset_matches(built, tmp_path):
    """Relabel the mock lasso jobs as D1's targets: the report must set DeepSynergy's figures beside them."""
    store = tmp_path / "d1"
    shutil.copytree(built[0], store, ignore=shutil.ignore_patterns("*constant*", "*treecomb*"))
    rename = {"score": "loewe", "synergistic": "loewe_gt30"}
    for path in (store / "jobs").glob("*/record.json"):
        rec = json.loads(path.read_text())
        rec["job"].update(dataset="d1-oneil", target=rename[rec["job"]["target"]])
        path.write_text(json.dumps(rec))
    md = rp.build([store]).to_markdown("figs")
    section = md[md.index("## Published figures"):md.index("## Runtime and memory")]
    assert "### DeepSynergy (Preuer et al. 2018)" in section and "doi:10.1093/bioinformatics/btx806" in section
    assert "| **published** | **0.73** | **0.90** | **0.92** |" in section
    summary = lb.build(Store(store, create=False).metrics_frame()).summary
    pcc = summary[(summary["model"] == "lasso") & (summary["metric"] == "pcc")].iloc[0]
    assert f"{pcc['mean']:.3f} ± {pcc['std']:.3f} ({pcc['mean'] - 0.73:+.3f})" in section
    assert "selected its epoch" not in section and "nested cross-validation" in section  # D1 notes only, no D3 ones
    assert "No published figure concerns" in built[1].with_suffix(".md").read_text()  # mock: none apply


def test_paired_tests_use_only_folds_both_methods_have():
    from scipy.stats import wilcoxon

    a = [0.80, 0.82, 0.79, 0.85, 0.81]
    b = [0.70, np.nan, 0.75, 0.80]  # fold 1 a constant prediction (undefined in an old record), fold 4 missing
    rows = [dict(model=m, featurizers="x", profile="smoke", protocol="strong", dataset="d", target="t", split="random",
                 fold=f, seed=0, metric="pcc", value=v, job_id=f"{m}{f}")
            for m, vals in (("a", a), ("b", b)) for f, v in enumerate(vals)]
    metrics = pd.DataFrame(rows)
    summary = lb.build(metrics, ["pcc"]).summary
    summary["method"] = [tuple(map(str, k)) for k in summary[lb.METHOD_COLS].to_numpy()]
    tests = rp.paired_tests(metrics, summary, rp.Labels(metrics))
    assert len(tests) == 1
    t = tests.iloc[0]
    # the failed fold counts as a correlation of 0 (as on the leaderboard); the missing fold is left out
    d = [0.80 - 0.70, 0.82 - 0.0, 0.79 - 0.75, 0.85 - 0.80]
    assert (t["best"], t["other"], t["n"], t["best_better"]) == ("a", "b", 4, 4)
    assert t["mean_diff"] == pytest.approx(np.mean(d))
    assert t["p"] == pytest.approx(wilcoxon(d).pvalue)
    assert t["p_nb"] == pytest.approx(rp.corrected_resampled_t(np.array(d), 1 / 4))


def test_seeds_on_the_same_test_folds_are_one_measurement_in_the_paired_tests(tmp_path):
    """Three seeds on a dataset's published folds test the same rows five times over: the paired
    tests must see five differences (each averaged over the seeds), not fifteen resamples. Seeds
    that draw new random folds are repetitions of the cross-validation and each one counts."""
    from synbench import runner

    rng = np.random.default_rng(0)
    diff = {(s, f): 0.02 + 0.01 * f + rng.normal(0, 0.005) for s in range(3) for f in range(5)}
    rows = [dict(model=m, featurizers="x", profile="smoke", protocol="strong", dataset="d", target="t", split="published",
                 fold=f, seed=s, metric="pcc", value=0.6 + (diff[(s, f)] if m == "a" else 0.0), job_id=f"{m}{s}{f}")
            for m in ("a", "b") for s in range(3) for f in range(5)]
    metrics = pd.DataFrame(rows)
    summary = lb.build(metrics, ["pcc"]).summary
    same_rows = {("d", "published", s, f): f"test rows of fold {f}" for s in range(3) for f in range(5)}
    t = rp.paired_tests(metrics, summary, rp.Labels(metrics), same_rows).iloc[0]
    per_fold = [np.mean([diff[(s, f)] for s in range(3)]) for f in range(5)]
    assert (t["n"], t["pairs"], t["best_better"]) == (5, 15, 5)
    assert t["p_nb"] == pytest.approx(rp.corrected_resampled_t(np.array(per_fold), 1 / 4))
    new_rows = {("d", "published", s, f): f"seed {s}'s fold {f}" for s in range(3) for f in range(5)}
    assert rp.paired_tests(metrics, summary, rp.Labels(metrics), new_rows).iloc[0]["n"] == 15

    # the partitions come from the stored split tables: the published folds repeat across seeds,
    # random folds drawn with another seed do not
    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1], seeds=[0, 1]), store)
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", split="random", folds=[0], seeds=[0, 1]),
               store)
    parts = rp.test_partitions(rp.load([store.root]))
    assert parts[("mock", "published", 0, 0)] == parts[("mock", "published", 1, 0)]
    assert parts[("mock", "published", 0, 0)] != parts[("mock", "published", 0, 1)]
    assert parts[("mock", "random", 0, 0)] != parts[("mock", "random", 1, 0)]


def test_curves_on_one_axis_stay_distinguishable_past_ten_methods():
    # D3 has 13 methods on one ROC axis: no two may share both colour and line style
    rows = [dict(model=f"m{i:02d}", featurizers="x", profile="cpu", protocol="strong") for i in range(25)]
    labels = rp.Labels(pd.DataFrame(rows))
    styles = [(labels.colour[k], labels.linestyle[k]) for k in labels.names]
    assert len(set(styles)) == len(styles) == 25


def test_long_method_names_wrap_to_fit_their_panel():
    label = "treecomb (chem:n_bits=256+expression:n_genes=500)"
    wrapped = rp._wrap_label(label, 30)
    assert all(len(line) <= 30 for line in wrapped.splitlines())
    assert "".join(wrapped.split()) == "".join(label.split())  # only line breaks were added
    assert rp._wrap_label("svm (llm-description)", 30) == "svm (llm-description)"


def test_published_figures_file_is_valid(tmp_path):
    figures = pub.load()
    registry = get_registry()
    assert {(f.dataset, f.metric, f.value) for f in figures} >= {("d1-oneil", "pcc", 0.73), ("d3-deepdds", "roc_auc", 0.93)}
    for f in figures:
        registry.dataset(f.dataset)
        assert registry.metric(f.metric).task in ("regression", "classification")
        assert f.citation and f.doi and f.protocol
        if f.model:
            registry.model(f.model)
    bad = tmp_path / "bad.toml"
    bad.write_text('[papers.x]\nshort = "X"\n[[figures]]\npaper = "x"\ndataset = "d1-oneil"\n')
    with pytest.raises(DataError, match="lacks"):
        pub.load(bad)


def test_provenance_lists_the_commands_that_ran_jobs():
    from synbench.leaderboard import provenance_markdown

    invocations = [{"command": "synbench run -d mock -m lasso", "started_at": "t0", "jobs": 4, "pending": 4},
                   {"command": "synbench run -d mock -m lasso", "started_at": "t1", "jobs": 4, "pending": 0},
                   {"command": "synbench run -d mock -m svm", "started_at": "t2", "jobs": 4}]  # logged before "pending"
    text = provenance_markdown([], invocations)
    assert "(t0, 4 jobs, 4 not yet stored)" in text and "(t2, 4 jobs)" in text
    assert "t1" not in text and "1 re-run(s) that found every job already stored" in text


def test_report_never_overwrites_a_file_it_did_not_write(built, tmp_path):
    store, out = built
    mine = tmp_path / "paper.html"
    mine.write_text("<p>my own page</p>")
    res = CliRunner().invoke(app, ["report", str(store), "--out", str(mine)])
    assert res.exit_code == 2 and "was not written by synbench report" in res.output
    assert mine.read_text() == "<p>my own page</p>" and not mine.with_suffix(".md").exists()
    notes = tmp_path / "notes.md"  # the Markdown the report would write beside notes.html
    notes.write_text("my notes")
    assert CliRunner().invoke(app, ["report", str(store), "--out", str(tmp_path / "notes.html")]).exit_code == 2
    assert notes.read_text() == "my notes"
    # its own earlier build is rebuilt in place; a user's PNG in the figures folder survives
    figures = out.parent / f"{out.stem}_figures"
    (figures / "my-plot.png").write_bytes(b"png")
    (figures / "box-stale-from-an-old-build.png").write_bytes(b"png")
    res = CliRunner().invoke(app, ["report", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (figures / "my-plot.png").read_bytes() == b"png" and not (figures / "box-stale-from-an-old-build.png").exists()


def test_training_section_says_why_each_run_stopped_with_its_curves(tmp_path):
    pytest.importorskip("torch")
    from synbench import runner

    store = Store(tmp_path / "store")
    plan = runner.plan(["mock"], ["deepsynergy", "lasso"], targets=["score"], profile="smoke", folds=[0, 1])
    assert runner.run(plan, store)["done"] == 4
    report = rp.build([tmp_path / "store"])
    text = report.markdown(lambda f: f.name)
    assert "[Training](#training)" in text
    section = text[text.index("## Training"):text.index("## Paired tests")]
    # the smoke profile runs all 4 epochs of DeepSynergy's first phase (no patience): the cap
    row = next(line for line in section.splitlines() if line.startswith("| deepsynergy"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["2", "cap 2"] and cells[4] == "4, 4" and cells[5] == "4"
    records = [r for r in store.records() if r["job"]["model"] == "deepsynergy"]
    assert cells[3] == ", ".join(str(r["training"]["best_epoch"]) for r in sorted(records, key=lambda r: r["job"]["fold"]))
    assert "lasso" not in section  # nothing iterative to report
    assert any(f.name.startswith("curves") for f in report.figures)
    assert rp.validation_curve(records[0]["training"]) == records[0]["training"]["selection"]["val_loss"]


def test_runtime_counts_the_work_of_a_resumed_jobs_earlier_processes(built, tmp_path):
    """A job stopped and resumed keeps its finished search trials and training epochs; the record's
    `timing` holds only the last process's share. The runtime table must show what the job cost in
    all, the same figure the harness's own run estimates use (`runner.compute_seconds`)."""
    store = tmp_path / "resumed"
    shutil.copytree(built[0], store, ignore=shutil.ignore_patterns("*constant*", "*treecomb*"))
    paths = sorted((store / "jobs").glob("*/record.json"))
    records = []
    for path in paths:
        rec = json.loads(path.read_text())
        if rec["job"]["target"] == "score":
            rec["timing"].update(featurize_seconds=0.5, search_seconds=1.0, fit_seconds=2.0, predict_seconds=0.25)
            # kept trials worth 4,000 s and a two-phase fit logged at 3,000 + 1,500 s across processes
            rec["search_summary"] = {**(rec.get("search_summary") or {}), "resumed_seconds": 4000.0}
            rec["training"] = {"selection": {"seconds": 3000.0}, "refit": {"seconds": 1500.0}}
            path.write_text(json.dumps(rec))
            records.append(rec)
    assert len(records) == 5
    assert {runner.compute_seconds(r) for r in records} == {0.5 + 1.0 + 4000.0 + 4500.0 + 0.25}
    md = rp.build([store]).to_markdown("figs")
    runtime = md[md.index("## Runtime and memory"):md.index("## Selected hyperparameters")]
    row = next(line for line in runtime.splitlines() if line.startswith("| lasso | `smoke` | mock / score |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # jobs, featurize, search, fit, predict, total
    assert cells[3:9] == ["5", "0.50", "4,001", "4,500", "0.25", "42,509"]


def test_stores_that_split_one_dataset_differently_are_not_read_as_one(built, tmp_path):
    """Job ids name a split by its scheme, not its table: two stores whose `random` folds differ (a
    scheme changed between versions) would have their fold-0 scores paired across different test
    rows. Reading them together is a one-line error naming both; an identical copy is fine."""
    store = built[0]
    same, other = tmp_path / "same", tmp_path / "other"
    shutil.copytree(store, same)
    shutil.copytree(store, other)
    (split,) = (other / "splits").glob("*.parquet")
    table = pd.read_parquet(split)
    table["fold"] = (table["fold"] + 1) % (table["fold"].max() + 1)  # the same rows, other folds
    table.to_parquet(split)
    out = tmp_path / "r" / "report.html"
    assert CliRunner().invoke(app, ["report", str(store), str(same), "--out", str(out)]).exit_code == 0
    for command in (["report", str(store), str(other), "--out", str(out)], ["leaderboard", str(store), str(other), "--no-write"]):
        res = CliRunner().invoke(app, command)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
        assert str(store) in lines[0] and str(other) in lines[0] and "split mock differently" in lines[0]


def test_a_thresholded_targets_baseline_strength_shows_the_regression_run_ranked(built, tmp_path):
    """The mock's `synergistic` is `score` above a threshold: beside lasso's classification figure the
    report ranks lasso's own `score` predictions against the same test rows' labels."""
    from sklearn.metrics import roc_auc_score

    published = tmp_path / "published.toml"
    published.write_text('[papers.p]\nshort = "P (2020)"\ncitation = "P."\ndoi = "10.0/p"\n[[figures]]\npaper = "p"\n'
                         'model = "lasso"\ndataset = "mock"\ntarget = "synergistic"\nmetric = "roc_auc"\nvalue = 0.99\n'
                         'split = "published"\nprotocol = "as here"\n')
    store = Store(built[0], create=False)
    records = {(r["job"]["model"], r["job"]["target"], r["job"]["fold"]): r["job_id"] for r in store.records()}
    ranked = []
    for fold in range(5):
        labels = store.predictions(records[("lasso", "synergistic", fold)])["y_true"]
        scores = store.predictions(records[("lasso", "score", fold)])["y_pred"].reindex(labels.index)
        ranked.append(roc_auc_score(labels, scores))
    md = rp.build([built[0]], published_path=published).to_markdown("figs")
    section = md[md.index("## Baseline strength"):md.index("## Published figures")]
    assert "(synergistic from score)" in section and "| ranked from its regression run |" in section
    row = next(line for line in section.splitlines() if line.startswith("| lasso | mock / synergistic"))
    assert row.endswith(f"| {np.mean(ranked):.3f} ± {np.std(ranked, ddof=1):.3f} (score, 5 runs; {np.mean(ranked) - 0.99:+.3f}) |")

    # without lasso's regression runs there is nothing to rank: no column
    bare = tmp_path / "bare"
    shutil.copytree(built[0], bare, ignore=shutil.ignore_patterns("mock.score.*"))
    md = rp.build([bare], published_path=published).to_markdown("figs")
    assert "ranked from its regression run" not in md[md.index("## Baseline strength"):md.index("## Published figures")]


def test_a_regression_target_derives_a_class_only_if_it_separates_the_labels():
    labels = pd.Series([0, 1, 0, 1], index=list("abcd"), dtype=float)
    assert rp._separates(pd.Series([10.0, 31.0, 30.0, 50.0], index=list("abcd")), labels)
    assert not rp._separates(pd.Series([10.0, 31.0, 40.0, 50.0], index=list("abcd")), labels)  # a negative above a positive
    assert not rp._separates(pd.Series([10.0, 31.0, 30.0], index=list("abc")), labels)  # other rows
    assert not rp._separates(pd.Series([10.0, 31.0, 30.0, 50.0], index=list("abcd")), labels * 0)  # one class
