"""Index weights from input files: validated like the other tables, cached point in time, and used as pools."""

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import profile_config
from factor_pipeline.evaluation import benchmarks
from factor_pipeline.market.input_files import InputValidationError, read_inputs
from factor_pipeline.market.store import load_source, read_manifest, read_month
from factor_pipeline_tests.market.test_input_files import locate_inputs, raw_frames, write_dir

CFG = profile_config("smoke")


def weights():
    return pd.DataFrame(
        {
            "index_code": ["000300.SH", "000300.SH", "000300.SH", "000905.SH", "000300.SH", "000300.SH"],
            "con_code": ["600000.SH", "000001.SZ", "600519.SH", "600000.SH", "600000.SH", "600519.SH"],
            "trade_date": ["20231229", "20231229", "20231229", "20231229", "20240131", "20240131"],
            "weight": [1.5, 2.5, 6.0, 0.4, 3.0, 7.0],
        }
    )


def test_index_weight_is_optional_and_read_point_in_time(tmp_path):
    daily, stocks = raw_frames()
    plain = write_dir(tmp_path / "plain", daily, stocks)
    with_index = write_dir(tmp_path / "with_index", daily, stocks)
    weights().to_csv(with_index / "index_weight.csv", index=False)
    assert "index_weight" not in locate_inputs(plain)
    frames = read_inputs(locate_inputs(with_index))
    assert frames.index_weight["weight"].sum() == pytest.approx(20.4)

    cache = load_source(str(with_index), CFG, tmp_path / "cache")
    january = read_month(cache, "2024-01").index_weight  # d(2024-01) = 2024-01-31: the weights published that day
    assert january[january["index_code"] == "000300.SH"].set_index("con_code")["weight"].to_dict() == {
        "600000.SH": 3.0, "600519.SH": 7.0}
    assert january[january["index_code"] == "000905.SH"]["trade_date"].iloc[0] == pd.Timestamp("2023-12-29")
    # The weights are part of the source's state.
    plain_cache = load_source(str(plain), CFG, tmp_path / "cache")
    assert read_month(plain_cache, "2024-01").index_weight is None
    assert read_manifest(plain_cache)["month_states"] != read_manifest(cache)["month_states"]


@pytest.mark.parametrize(
    "column, value, fragment",
    [("weight", -1.0, "is not a positive weight"), ("con_code", "600000", "is not an A-share code"),
     ("index_code", "CSI300", "is not an index code"), ("trade_date", "2024-13-01", "")],
)
def test_bad_index_weight_names_file_column_and_row(tmp_path, column, value, fragment):
    daily, stocks = raw_frames()
    directory = write_dir(tmp_path / "input", daily, stocks)
    bad = weights().astype(object)
    bad.loc[2, column] = value
    bad.to_csv(directory / "index_weight.csv", index=False)
    with pytest.raises(InputValidationError) as error:
        read_inputs(locate_inputs(directory))
    assert error.value.file == "index_weight.csv" and error.value.column == column and error.value.row == 2
    assert fragment in str(error.value)


def test_published_pools_weight_the_index_return_by_the_sources_weights():
    table = pd.DataFrame({"ts_code": ["600000.SH", "600519.SH", "000002.SZ"]})
    published = pd.DataFrame({"index_code": "000300.SH", "con_code": ["600000.SH", "600519.SH", "601398.SH"],
                              "weight": [1.0, 3.0, 5.0]})
    masks, log_weights = benchmarks.published_pools(table, published, ("000300.SH", "000905.SH"))
    assert masks["000300.SH"].tolist() == [True, True, False] and not masks["000905.SH"].any()
    r = np.array([0.1, 0.02, 0.5])
    # 601398.SH is not in U(m): the index return is over the constituents the universe holds.
    assert benchmarks.index_return(r[masks["000300.SH"]], log_weights["000300.SH"][masks["000300.SH"]]) == pytest.approx(
        (0.1 + 3 * 0.02) / 4)
