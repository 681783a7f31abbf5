import pandas as pd
import pytest

from factor_pipeline.market import calendar_source, session_calendar
from factor_pipeline.model import training
from factor_pipeline.pipeline import views
from factor_pipeline.config import profile_config
from factor_pipeline.market.input_files import InputValidationError
from factor_pipeline.storage import Layout, read_parquet

LIBRARY_END = pd.Timestamp("2026-12-31")


def write_trade_cal(path, start="2026-12-01", end="2027-12-31", closed=(), exchange=None):
    """A Tushare trade_cal file: the library's sessions to its horizon, then weekdays without ``closed``."""
    days = pd.date_range(start, end)
    library = set(session_calendar.exchange_calendar().sessions)
    later_closed = set(pd.to_datetime(list(closed)))
    is_open = [
        int(day in library) if day <= LIBRARY_END else int(day.weekday() < 5 and day not in later_closed)
        for day in days
    ]
    frame = pd.DataFrame({"cal_date": days.strftime("%Y%m%d"), "is_open": is_open})
    if exchange:
        frame.insert(0, "exchange", exchange)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def restore_calendar():
    previous = session_calendar.active()
    yield
    session_calendar.activate(previous)


def test_a_trade_cal_file_in_the_input_directory_extends_the_library(tmp_path, restore_calendar):
    write_trade_cal(tmp_path / "trade_cal.csv", closed=["2027-01-01", "2027-01-29"])
    calendar = session_calendar.activate(calendar_source.resolve(str(tmp_path)))
    assert calendar.known_until == pd.Timestamp("2027-12-31")
    assert session_calendar.rebalance_date("2027-01") == pd.Timestamp("2027-01-28")  # the 29th is closed in the file
    assert session_calendar.rebalance_date("2026-12") == LIBRARY_END
    assert session_calendar.month_sessions("2027-01")[0] == pd.Timestamp("2027-01-04")
    assert session_calendar.session_offset("2026-12-31", 1) == pd.Timestamp("2027-01-04")
    # Sessions before the library's horizon are the library's, so positions (and sample grids) do not move.
    library = session_calendar.exchange_calendar().sessions
    assert calendar.sessions[: len(library)].equals(library)
    assert calendar.fingerprint != session_calendar.exchange_calendar().fingerprint


def test_the_calendar_env_file_comes_first_and_selects_sse_rows(tmp_path, restore_calendar):
    named = write_trade_cal(tmp_path / "my_calendar.csv", end="2027-06-30", exchange="SSE")
    szse = pd.read_csv(named).assign(exchange="SZSE", is_open=0)
    pd.concat([pd.read_csv(named), szse]).to_csv(named, index=False)
    write_trade_cal(tmp_path / "trade_cal.csv", end="2027-03-31")
    calendar = calendar_source.resolve(str(tmp_path), str(named))
    assert calendar.known_until == pd.Timestamp("2027-06-30")
    assert pd.Timestamp("2027-06-30") in calendar.sessions  # SSE rows, not the closed SZSE copies


def test_a_file_that_disagrees_with_the_library_is_refused_naming_the_day(tmp_path):
    path = write_trade_cal(tmp_path / "trade_cal.csv")
    frame = pd.read_csv(path, dtype={"cal_date": str})
    frame.loc[frame["cal_date"] == "20261225", "is_open"] = 0  # a session on XSHG
    frame.to_csv(path, index=False)
    with pytest.raises(session_calendar.CalendarFileError, match="2026-12-25"):
        calendar_source.resolve(str(tmp_path))


def test_a_gap_in_the_file_ends_the_known_days_before_it(tmp_path):
    path = write_trade_cal(tmp_path / "trade_cal.csv")
    frame = pd.read_csv(path, dtype={"cal_date": str})
    frame[frame["cal_date"] != "20270315"].to_csv(path, index=False)
    calendar = calendar_source.resolve(str(tmp_path))
    assert calendar.known_until == pd.Timestamp("2027-03-14")
    with pytest.raises(session_calendar.CalendarHorizonError, match="2027-03-14"):
        calendar.check_known("2027-03-31")


def test_a_bad_calendar_row_is_named(tmp_path):
    path = write_trade_cal(tmp_path / "trade_cal.csv")
    frame = pd.read_csv(path, dtype={"cal_date": str})
    frame.loc[40, "is_open"] = 2
    frame.to_csv(path, index=False)
    with pytest.raises(InputValidationError) as caught:
        calendar_source.resolve(str(tmp_path))
    assert (caught.value.file, caught.value.column, caught.value.row) == ("trade_cal.csv", "is_open", 40)


def test_the_synthetic_calendar_serves_the_embedded_market_only(tmp_path):
    synthetic = calendar_source.resolve("synthetic")
    sessions_2027 = synthetic.sessions[synthetic.sessions.year == 2027]
    assert 235 <= len(sessions_2027) <= 250
    for closed in ["2027-01-01", "2027-02-08", "2027-05-03", "2027-10-05"]:
        assert pd.Timestamp(closed) not in synthetic.sessions
    assert synthetic.known_until == session_calendar.SYNTHETIC_CALENDAR_END
    # An input directory without a calendar file gets the library alone: real data never uses it.
    assert calendar_source.resolve(str(tmp_path)).known_until == LIBRARY_END


def test_the_december_retrain_at_the_library_horizon_needs_no_later_session(tmp_path, restore_calendar):
    session_calendar.activate(calendar_source.resolve(str(tmp_path)))  # nothing known past 2026-12-31
    for profile in ("smoke", "demo", "full"):
        cfg = profile_config(profile)
        dates = training.training_dates("2026-12", cfg)
        horizon = cfg.samples.label_horizon
        positions = session_calendar.all_sessions().get_indexer(dates)
        assert positions[-1] + horizon <= session_calendar.all_sessions().get_loc(LIBRARY_END)
        # The last date whose label is realised by the rebalance date is included.
        assert positions[-1] + horizon + cfg.samples.sample_every > session_calendar.all_sessions().get_loc(LIBRARY_END)
        assert training.window_months("2026-12", cfg)[-1] == "2026-12"


def test_the_sessions_file_in_the_home_follows_the_calendar(tmp_path, restore_calendar):
    layout = Layout(tmp_path / "home")
    session_calendar.activate(calendar_source.resolve(str(tmp_path)))
    views.write_sessions(layout)
    assert read_parquet(layout.sessions_file)["trade_date"].max() == LIBRARY_END
    write_trade_cal(tmp_path / "trade_cal.csv")
    session_calendar.activate(calendar_source.resolve(str(tmp_path)))
    views.write_sessions(layout)
    assert read_parquet(layout.sessions_file)["trade_date"].max() == pd.Timestamp("2027-12-31")
