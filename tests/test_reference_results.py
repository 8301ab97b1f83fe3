"""The committed reference results say what they hold: every number in `results/` is recomputed from
the stored predictions, every job's predictions are its stored test fold, each store's
leaderboard.csv is the board of its records, and (with the staged data) the stored labels and data
checksums are the data's. A results commit that skipped the rebuild, or a hand edit, fails here."""

import pytest

from conftest import REPO, real_data_dir
from synbench.verify import verify_store

STORES = sorted(p.parent for p in (REPO / "results").glob("*/store.json"))


@pytest.mark.skipif(not STORES, reason="no reference result stores in this checkout")
@pytest.mark.parametrize("root", STORES, ids=[p.name for p in STORES])
def test_a_reference_store_agrees_with_what_it_holds(root):
    data_dir = real_data_dir()
    result = verify_store(root, str(data_dir) if data_dir else None, check_data=data_dir is not None)
    assert result.jobs > 0
    assert result.problems == [], "\n".join(result.problems[:20])
    if data_dir is not None:
        assert not result.data_skipped, result.data_skipped


def _readme_tables(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "readme_tables.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not STORES, reason="no reference result stores in this checkout")
def test_the_readme_result_tables_are_built_from_the_stores(tmp_path):
    """The README's headline and transfer tables are generated from the stores; a number edited by
    hand, or a results commit that did not regenerate them, fails here."""
    res = _readme_tables("--check")
    assert res.returncode == 0, res.stdout + res.stderr
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace("| 0.3 | constant | 0 |", "| 0.3 | constant | 0.1 |", 1), encoding="utf-8")
    assert edited.read_text(encoding="utf-8") != readme
    res = _readme_tables("--check", "--readme", edited)
    assert res.returncode == 1
    assert res.stdout.strip() == ("README.md's generated tables differ from the stores: transfer "
                                  "(python benchmarks/readme_tables.py --write)")
    assert _readme_tables("--write", "--readme", edited).returncode == 0
    assert edited.read_text(encoding="utf-8") == readme
