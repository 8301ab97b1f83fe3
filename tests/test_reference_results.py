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
