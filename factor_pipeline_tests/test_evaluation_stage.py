import pandas as pd
import pytest

from factor_pipeline import partitions
from factor_pipeline.evaluation_stage import holding_period
from factor_pipeline.storage import StorageError


def _bars(*dates):
    return pd.DataFrame({"trade_date": pd.to_datetime(list(dates))})


def test_a_complete_month_runs_to_the_next_rebalance_date():
    start, end, complete = holding_period(_bars("2024-05-31", "2024-06-28"), "2024-05")
    assert (start, end, complete) == (partitions.rebalance_date("2024-05"), pd.Timestamp("2024-06-28"), True)


def test_the_newest_month_is_evaluated_as_of_the_newest_bar():
    # The seed's "latest IC": the next month is not over, returns run to the newest close.
    start, end, complete = holding_period(_bars("2024-05-31", "2024-06-03", "2024-06-14"), "2024-05")
    assert end == pd.Timestamp("2024-06-14") and not complete


def test_no_bar_after_the_rebalance_date_is_a_clear_error():
    with pytest.raises(StorageError, match="raw_bars for 2024-06"):
        holding_period(_bars("2024-05-30", "2024-05-31"), "2024-05")


def test_the_last_month_of_the_calendar_has_no_next_rebalance_and_stays_partial():
    start, end, complete = holding_period(_bars("2026-12-31", "2027-01-04"), "2026-12")
    assert start == pd.Timestamp("2026-12-31") and not complete
