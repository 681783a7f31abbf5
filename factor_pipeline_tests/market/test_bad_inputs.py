"""The catalogue of bad inputs and bad requests: each gets a clear message and loses nothing already good.

The input-file cases (missing column, bad date, duplicates, non-positive price, OHLC, negative volume,
unknown stock, non-session date, unknown industry, ...) are in test_input_files.py, one test each; the
corrupt-checkpoint cases in test_model.py. This file covers the rest, through the CLI and through Dagster.
"""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from factor_pipeline.pipeline import checks
from factor_pipeline.market import session_calendar
from factor_pipeline.pipeline.assets import features, raw_bars, samples
from factor_pipeline.pipeline.resources import PipelineResource
from factor_pipeline.storage import Layout
from factor_pipeline_tests.conftest import pipeline_env, run_cli


@pytest.mark.parametrize(
    "args, env_extra, message",
    [
        (["--from", "2016-01", "--to", "2016-02"], {}, "outside the partitions"),
        (["--from", "2024-13", "--to", "2024-14"], {}, "not a month"),
        # Past the embedded market's synthetic calendar (2028-12-31), whatever today's date.
        (["--from", "2031-01", "--to", "2031-02"], {}, "past the session calendar"),
        (["--from", "2024-05", "--to", "2024-03"], {}, "empty"),
        (["--from", "2024-05", "--to", "2024-05"], {"FACTOR_PIPELINE_PROFILE": "huge"}, "FACTOR_PIPELINE_PROFILE"),
        (["--from", "2024-05", "--to", "2024-05"], {"FACTOR_PIPELINE_GAN_MODE": "sideways"}, "gan.mode"),
        (["--from", "2024-05", "--to", "2024-05"], {"FACTOR_PIPELINE_SOURCE": "/nonexistent/market"}, "FACTOR_PIPELINE_SOURCE"),
    ],
)
def test_bad_requests_fail_before_any_run_with_a_clear_message(tmp_path, args, env_extra, message):
    env = {**pipeline_env(tmp_path / "home"), **env_extra}
    result = run_cli(["backfill", *args], env, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "home" / "raw_bars").exists()


def test_unwritable_home_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(["backfill", "--from", "2024-05", "--to", "2024-05"], pipeline_env(blocker / "home"), timeout=300)
    assert result.returncode == 2
    assert "not writable" in result.stderr and str(blocker) in result.stderr


@pytest.fixture
def input_market(tmp_path):
    """A small directory of input files cut from the embedded market, and a home with two months loaded."""
    from factor_pipeline.config import MarketConfig
    from factor_pipeline.market.synthetic import generate_market

    market = generate_market(MarketConfig(n_stocks=40, start="2023-06-01", end="2024-04-30"))
    source = tmp_path / "input"
    source.mkdir()
    daily = market.daily.copy()
    daily["trade_date"] = daily["trade_date"].dt.strftime("%Y%m%d")
    daily.to_csv(source / "daily.csv", index=False)
    market.stocks.to_csv(source / "stocks.csv", index=False)
    resource = PipelineResource(home=str(tmp_path / "home"), source=str(source), profile="smoke")
    for month in ["2023-12", "2024-01", "2024-02", "2024-03"]:
        dg.materialize([raw_bars], partition_key=month, resources={"pipeline": resource})
    dg.materialize([features], partition_key="2024-03", resources={"pipeline": resource})
    return source, resource


def _materialize(asset, month, resource):
    return dg.materialize([asset], partition_key=month, resources={"pipeline": resource}, raise_on_error=False)


def _error_text(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    return failures[0].step_failure_data.error.to_string() if failures else ""


def test_an_invalid_input_file_names_file_column_row_and_keeps_the_loaded_months(input_market):
    source, resource = input_market
    kept = (resource.layout.partition("raw_bars/daily", "2024-03")).read_bytes()
    daily = pd.read_csv(source / "daily.csv", dtype={"trade_date": str})
    daily.loc[5, "high"] = daily.loc[5, ["open", "close"]].max() - 0.5
    daily.to_csv(source / "daily.csv", index=False)
    result = _materialize(raw_bars, "2024-03", resource)
    assert not result.success
    text = _error_text(result)
    assert "daily.csv" in text and "'high'" in text and "row 5" in text
    # The resource's layout needs a valid source to know its identity; the stored month is read by path.
    assert Layout(resource.home).partition("raw_bars/daily", "2024-03").read_bytes() == kept


def test_a_truncated_parquet_in_storage_is_named_and_downstream_kept(input_market):
    _, resource = input_market
    layout = resource.layout
    features_before = layout.partition("features", "2024-03").read_bytes()
    damaged = layout.partition("raw_bars/daily", "2024-02")
    damaged.write_bytes(damaged.read_bytes()[:200])
    result = _materialize(features, "2024-03", resource)
    assert not result.success
    assert "raw_bars/daily/2024-02.parquet" in _error_text(result) and "corrupt" in _error_text(result)
    assert layout.partition("features", "2024-03").read_bytes() == features_before


def test_a_month_whose_upstream_months_are_missing_says_which(input_market):
    _, resource = input_market
    result = _materialize(samples, "2024-03", resource)
    assert not result.success
    assert "features/2023-11.parquet does not exist" in _error_text(result)
    assert not resource.layout.partition("samples", "2024-03", "npy").exists()


def test_check_fails_on_a_feature_column_entirely_missing():
    table = pd.DataFrame({"ts_code": ["a", "b"], "f1": [1.0, 2.0], "f2": [np.nan, np.nan]})
    result = checks.check_features(table, ["f1", "f2"], "2024-03")
    assert not result.passed and "f2" in result.metadata["problems"].value


def test_check_fails_on_an_empty_universe_and_on_non_finite_sequences():
    d = session_calendar.rebalance_date("2024-03")
    table = pd.DataFrame({"trade_date": [d, d], "eligible": [False, False]})
    result = checks.check_samples(np.zeros((0, 40, 18), np.float32), table, "2024-03")
    assert not result.passed and "empty universe" in result.metadata["problems"].value
    table = pd.DataFrame({"trade_date": [d], "eligible": [True]})
    X = np.zeros((1, 40, 18), np.float32)
    X[0, 3, 4] = np.nan
    result = checks.check_samples(X, table, "2024-03")
    assert not result.passed and "non-finite" in result.metadata["problems"].value


def test_check_fails_on_bars_that_break_the_rules():
    stocks = pd.DataFrame({"ts_code": ["600000.SH"]})
    daily = pd.DataFrame(
        {
            "ts_code": ["600000.SH", "600000.SH", "000001.SZ"],
            "trade_date": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-02"]),
            "open": [10.0, 10.0, 10.0], "high": [10.5, 10.5, 9.0], "low": [9.5, 9.5, 9.5],
            "close": [10.0, 10.0, 10.0], "pre_close": [10.0, 10.0, 10.0], "volume": [100.0, 100.0, -5.0],
        }
    )
    problems = " ".join(checks.bar_problems(daily, stocks, "2024-03"))
    for expected in ["duplicate", "negative volume", "high/low", "outside the month", "missing from the stock table"]:
        assert expected in problems


def test_pret_check_rejects_constant_or_non_finite_factors():
    assert not checks.check_pret(pd.DataFrame({"pret": [1.0, 1.0, 1.0]}), "2024-03").passed
    assert not checks.check_pret(pd.DataFrame({"pret": [1.0, np.inf, 0.5]}), "2024-03").passed
    assert checks.check_pret(pd.DataFrame({"pret": [1.0, 0.2, 0.5]}), "2024-03").passed



def test_validation_and_the_bars_check_apply_one_high_low_rule():
    """A high short of max(open, close) by float noise passes both; by a cent, fails both."""
    from factor_pipeline.market.input_files import InputValidationError, validate_frames
    from factor_pipeline.market.trading_rules import PRICE_TOLERANCE

    stocks = pd.DataFrame({"ts_code": ["600000.SH"], "name": ["A"], "list_date": ["2020-01-02"], "industry": ["Banks"]})
    for high, ok in ((10.0 * (1 - PRICE_TOLERANCE / 10), True), (9.99, False)):
        daily = pd.DataFrame(
            {"ts_code": ["600000.SH"], "trade_date": ["2024-03-01"], "open": [10.0], "high": [high], "low": [9.5],
             "close": [9.8], "pre_close": [9.9], "volume": [100.0], "amount": [980.0]}
        )
        bars = daily.assign(trade_date=pd.to_datetime(daily["trade_date"]))
        assert ("high/low" not in " ".join(checks.bar_problems(bars, stocks, "2024-03"))) is ok
        if ok:
            validate_frames(daily, stocks)
        else:
            with pytest.raises(InputValidationError, match="high"):
                validate_frames(daily, stocks)


def test_pret_check_calls_rounding_noise_constant_as_stats_does():
    noisy = np.full(5, 0.1) + np.array([0, 1, 0, 1, 0]) * np.spacing(0.1)  # std > 0, but only an ulp
    assert noisy.std() > 0 and not checks.check_pret(pd.DataFrame({"pret": noisy}), "2024-03").passed
