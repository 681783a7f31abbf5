import pandas as pd
import pytest

from factor_pipeline.pipeline import partitions
from factor_pipeline.market import calendar_source, session_calendar


def test_rebalance_date_is_the_last_session_of_the_month():
    assert session_calendar.rebalance_date("2024-02") == pd.Timestamp("2024-02-29")
    # The Spring Festival closes the market for the last days of January 2025.
    assert session_calendar.rebalance_date("2025-01") == pd.Timestamp("2025-01-27")
    assert session_calendar.rebalance_date("2024-09") == pd.Timestamp("2024-09-30")


def test_sessions_skip_holidays():
    october = session_calendar.month_sessions("2024-10")
    assert pd.Timestamp("2024-10-01") not in october  # National Day week
    assert pd.Timestamp("2024-10-08") in october
    assert 235 <= len(session_calendar.sessions_between("2024-01-01", "2024-12-31")) <= 245


def test_past_every_calendar_fails_clearly_and_names_the_file_to_supply(tmp_path):
    previous = session_calendar.active()
    try:
        session_calendar.activate(calendar_source.resolve(str(tmp_path)))  # an input directory without trade_cal
        with pytest.raises(session_calendar.CalendarHorizonError, match="trade_cal.csv"):
            session_calendar.rebalance_date("2027-01")
        with pytest.raises(session_calendar.CalendarHorizonError):
            session_calendar.session_offset("2026-12-30", 20)
        assert session_calendar.rebalance_date("2026-12") == pd.Timestamp("2026-12-31")
    finally:
        session_calendar.activate(previous)


@pytest.mark.parametrize("key", ["2024-13", "2024-1", "24-01", "2024/01", "", None])
def test_malformed_partition_keys_are_rejected(key):
    with pytest.raises(session_calendar.PartitionKeyError):
        session_calendar.parse_month(key)


def test_session_offset_counts_trading_days():
    assert session_calendar.session_offset("2025-01-27", 1) == pd.Timestamp("2025-02-05")
    assert session_calendar.session_offset("2025-02-05", -1) == pd.Timestamp("2025-01-27")
    with pytest.raises(ValueError, match="not an XSHG session"):
        session_calendar.session_offset("2025-01-28", 1)


def test_training_grid_is_anchored_and_sample_dates_include_the_rebalance_date():
    grid = session_calendar.training_grid("2024-01-01", "2024-12-31", 5)
    positions = session_calendar.all_sessions().get_indexer(grid)
    assert (positions % 5 == 0).all()
    dates = session_calendar.sample_dates("2024-03", 5)
    assert dates[-1] == session_calendar.rebalance_date("2024-03")
    assert set(session_calendar.training_grid("2024-03-01", "2024-03-31", 5)) <= set(dates)


def test_dagster_partitions_start_early_and_reach_the_current_month_every_year():
    import datetime as dt

    from factor_pipeline.pipeline.dagster_internals import freeze_time

    definition = partitions.monthly_partitions()
    for now, last in [(dt.datetime(2027, 2, 10, tzinfo=dt.timezone.utc), "2027-02"),
                      (dt.datetime(2031, 7, 3, tzinfo=dt.timezone.utc), "2031-07")]:
        with freeze_time(now):
            keys = definition.get_partition_keys()
        assert keys[0] == session_calendar.FIRST_MONTH
        assert keys[-1] == last
    # An evaluation from 2019-02 has two years of history behind it.
    assert pd.Period(session_calendar.FIRST_MONTH, "M") <= pd.Period("2017-02", "M")
