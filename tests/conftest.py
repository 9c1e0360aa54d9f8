from pathlib import Path

import pytest

TEST_DATA = Path(__file__).parent / "data"
PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "datasets"


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED / "cluster_N2").is_dir():
        pytest.skip("the published data set (../shared/datasets) is not beside this checkout")
    return SHARED
