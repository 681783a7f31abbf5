import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from factor_pipeline import storage


def test_parquet_round_trip_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "x" / "2024-01.parquet"
    storage.write_parquet(pd.DataFrame({"a": [1, 2]}), path)
    assert storage.read_parquet(path)["a"].tolist() == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["2024-01.parquet"]


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "2024-01.parquet"
    storage.write_parquet(pd.DataFrame({"a": [1, 2, 3]}), path)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with storage.atomic_path(path) as tmp:
            tmp.write_bytes(b"PAR1 half a file")
            raise Boom()
    assert storage.read_parquet(path)["a"].tolist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["2024-01.parquet"]


def test_a_process_killed_while_writing_leaves_the_old_file_readable(tmp_path):
    path = tmp_path / "big.npy"
    storage.write_npy(np.arange(10), path)
    script = (
        "import os, numpy as np\n"
        "from factor_pipeline import storage\n"
        f"with storage.atomic_path(__import__('pathlib').Path({str(path)!r})) as tmp:\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'\\x93NUMPY' + b'x' * 1000)\n"
        "        f.flush()\n"
        "        os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -9
    assert storage.read_npy(path).tolist() == list(range(10))


def test_truncated_files_give_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "2024-01.parquet"
    storage.write_parquet(pd.DataFrame({"a": range(1000)}), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(storage.StorageError, match="2024-01.parquet.*corrupt"):
        storage.read_parquet(path)
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.read_parquet(tmp_path / "missing.parquet")


def test_layout_lists_months_present_ignoring_temporary_files(tmp_path):
    layout = storage.Layout(tmp_path)
    storage.write_parquet(pd.DataFrame({"a": [1]}), layout.partition("factor", "2024-02"))
    storage.write_parquet(pd.DataFrame({"a": [1]}), layout.partition("factor", "2024-01"))
    (layout.dataset("factor") / ".2024-03.parquet.tmp-1").write_bytes(b"")
    assert layout.months_present("factor") == ["2024-01", "2024-02"]
    assert os.path.isabs(layout.duckdb_path)
