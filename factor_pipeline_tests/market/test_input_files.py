"""The market-data stage: input validation, canonical frames, the source cache and point-in-time months."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.market import input_files
from factor_pipeline.market import calendar_source, session_calendar
from factor_pipeline.config import profile_config
from factor_pipeline.market.input_files import InputValidationError, MarketFrames, locate_inputs, read_inputs
from factor_pipeline.market.store import load_source, read_month

CFG = profile_config("smoke")

# ts_code, name, industry (Chinese or English), list_date (ISO), delist_date (YYYYMMDD int or None)
STOCKS = [
    ("600000.SH", "浦发银行", "银行", "1999-11-10", None),
    ("000001.SZ", "平安银行", "Banks", "1991-04-03", None),
    ("300750.SZ", "宁德时代", "电力设备", "2018-06-11", None),
    ("688981.SH", "中芯国际", "Electronics", "2024-02-05", None),  # lists in February
    ("600001.SH", "邯郸钢铁", "钢铁", "1998-01-22", 20240220),  # delists in February
]
SUSPENDED = ("600000.SH", "2024-01-10")  # a volume-0 row


def raw_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A valid market as the user would write it: object columns, trade_date as YYYYMMDD text except
    for 000001.SZ, whose dates are ISO."""
    sessions = session_calendar.sessions_between("2024-01-02", "2024-02-29")
    stocks = pd.DataFrame(STOCKS, columns=["ts_code", "name", "industry", "list_date", "delist_date"])
    stocks["delist_date"] = stocks["delist_date"].astype("Int64")  # written as 20240220, not 20240220.0
    rows = []
    for i, day in enumerate(sessions):
        for j, (code, _, _, listed, delisted) in enumerate(STOCKS):
            if day < pd.Timestamp(listed):
                continue
            if delisted is not None and day >= pd.Timestamp(str(delisted)):
                continue
            pre_close = 10.0 + j + 0.01 * i
            close = round(pre_close * (1.01 if (i + j) % 2 else 0.99), 2)
            open_ = round(pre_close, 2)
            volume = 0.0 if (code, day.strftime("%Y-%m-%d")) == SUSPENDED else 1e6 + 1000 * i
            if volume == 0:
                open_ = close = round(pre_close, 2)
            high, low = max(open_, close) + (0.05 if volume else 0), min(open_, close) - (0.05 if volume else 0)
            trade_date = day.strftime("%Y-%m-%d") if code == "000001.SZ" else day.strftime("%Y%m%d")
            rows.append(
                (code, trade_date, open_, round(high, 2), round(low, 2), close, round(pre_close, 2), volume,
                 volume * close, 1.0 + 0.1 * j)
            )
    daily = pd.DataFrame(
        rows,
        columns=["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "volume", "amount", "adj_factor"],
    ).astype(object)
    return daily, stocks


def write_dir(path: Path, daily: pd.DataFrame | None, stocks: pd.DataFrame | None, fmt: str = "csv") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in (("daily", daily), ("stocks", stocks)):
        if frame is None:
            continue
        if fmt == "csv":
            frame.to_csv(path / f"{name}.csv", index=False)
        else:
            frame.to_parquet(path / f"{name}.parquet", index=False)
    return path


@pytest.fixture
def valid_dir(tmp_path) -> Path:
    daily, stocks = raw_frames()
    return write_dir(tmp_path / "input", daily, stocks)


def read_directory(path: Path) -> MarketFrames:
    return read_inputs(locate_inputs(Path(path)))


def cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*")] if cache.exists() else []


# Bad input: one case per check. Each mutates the valid frames and names the expected (file, column, row).
def _set(frame_name, row, column, value):
    def mutate(daily, stocks):
        frame = daily if frame_name == "daily" else stocks
        frame.loc[row, column] = value
        return daily, stocks

    return mutate


def _drop_column(frame_name, column):
    def mutate(daily, stocks):
        if frame_name == "daily":
            return daily.drop(columns=[column]), stocks
        return daily, stocks.drop(columns=[column])

    return mutate


def _duplicate_row(source, target):
    def mutate(daily, stocks):
        daily.loc[target] = daily.loc[source]
        return daily, stocks

    return mutate


def _high_below(daily, stocks):
    row = 6
    daily.loc[row, "high"] = max(daily.loc[row, "open"], daily.loc[row, "close"]) - 0.03
    return daily, stocks


def _low_above(daily, stocks):
    row = 6
    daily.loc[row, "low"] = min(daily.loc[row, "open"], daily.loc[row, "close"]) + 0.03
    return daily, stocks


def _duplicate_stock(daily, stocks):
    stocks.loc[3, "ts_code"] = stocks.loc[0, "ts_code"]
    return daily, stocks


BAD_CASES = [
    # id, mutate, file, column, row, fragment of the message
    ("missing-daily-column", _drop_column("daily", "close"), "daily.csv", "close", None, "required column 'close'"),
    ("tushare-vol", lambda d, s: (d.rename(columns={"volume": "vol"}), s), "daily.csv", "volume", None,
     "lots of 100 shares"),
    ("missing-stocks-column", _drop_column("stocks", "industry"), "stocks.csv", "industry", None, "is missing"),
    ("unparseable-date", _set("daily", 7, "trade_date", "2024/01/05"), "daily.csv", "trade_date", 7, "is not a date"),
    ("impossible-date", _set("daily", 3, "trade_date", "20240230"), "daily.csv", "trade_date", 3, "is not a date"),
    ("bad-list-date", _set("stocks", 1, "list_date", "April 1991"), "stocks.csv", "list_date", 1, "is not a date"),
    ("duplicate-stock-day", _duplicate_row(2, 9), "daily.csv", "trade_date", 9, "also at row 2"),
    ("zero-open", _set("daily", 4, "open", 0.0), "daily.csv", "open", 4, "is not positive"),
    ("negative-high", _set("daily", 4, "high", -1.0), "daily.csv", "high", 4, "is not positive"),
    ("zero-low", _set("daily", 4, "low", 0.0), "daily.csv", "low", 4, "is not positive"),
    ("negative-close", _set("daily", 4, "close", -10.0), "daily.csv", "close", 4, "is not positive"),
    ("zero-pre-close", _set("daily", 4, "pre_close", 0.0), "daily.csv", "pre_close", 4, "is not positive"),
    ("high-below-max", _high_below, "daily.csv", "high", 6, "is below max(open, close)"),
    ("low-above-min", _low_above, "daily.csv", "low", 6, "is above min(open, close)"),
    ("negative-volume", _set("daily", 8, "volume", -5.0), "daily.csv", "volume", 8, "is negative"),
    ("negative-amount", _set("daily", 8, "amount", -5.0), "daily.csv", "amount", 8, "is negative"),
    ("unknown-stock", _set("daily", 10, "ts_code", "600002.SH"), "daily.csv", "ts_code", 10, "is not in stocks.csv"),
    ("saturday", _set("daily", 11, "trade_date", "20240106"), "daily.csv", "trade_date", 11, "not an XSHG trading day"),
    ("spring-festival", _set("daily", 11, "trade_date", "2024-02-12"), "daily.csv", "trade_date", 11,
     "not an XSHG trading day"),
    ("unknown-industry", _set("stocks", 2, "industry", "Banking"), "stocks.csv", "industry", 2, "unknown industry"),
    ("non-numeric", _set("daily", 13, "close", "abc"), "daily.csv", "close", 13, "'abc' is not a number"),
    ("missing-value", _set("daily", 14, "volume", None), "daily.csv", "volume", 14, "missing value"),
    ("duplicate-stock", _duplicate_stock, "stocks.csv", "ts_code", 3, "duplicate ts_code 600000.SH (first at row 0)"),
    ("bad-code", _set("daily", 5, "ts_code", "600000"), "daily.csv", "ts_code", 5, "is not an A-share code"),
    ("bad-is-st", lambda d, s: (d.assign(is_st=["maybe" if i == 15 else "false" for i in range(len(d))]), s),
     "daily.csv", "is_st", 15, "is not a boolean"),
    ("negative-adj-factor", _set("daily", 16, "adj_factor", -1.0), "daily.csv", "adj_factor", 16, "not positive"),
    ("delist-before-list", _set("stocks", 4, "delist_date", 19970101), "stocks.csv", "delist_date", 4,
     "is before list_date"),
]


@pytest.mark.parametrize(
    "mutate,file,column,row,fragment", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES]
)
def test_bad_input_names_file_column_row_and_writes_nothing(tmp_path, mutate, file, column, row, fragment):
    daily, stocks = mutate(*raw_frames())
    source = write_dir(tmp_path / "input", daily, stocks)
    cache = tmp_path / "cache"
    with pytest.raises(InputValidationError) as caught:
        load_source(str(source), CFG, cache)
    err = caught.value
    assert (err.file, err.column, err.row) == (file, column, row), str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"{file}, column '{column}'")
    if row is not None and file == "daily.csv":
        # The row is named with its own ts_code and trade_date as the file spells them.
        assert f"row {row} (ts_code={str(daily.loc[row, 'ts_code']).strip()}, " in str(err)
        assert f"trade_date={daily.loc[row, 'trade_date']})" in str(err)
    assert cache_files(cache) == []
    # read_input_directory reports the same error.
    with pytest.raises(InputValidationError) as again:
        read_directory(source)
    assert str(again.value) == str(err)


def test_bars_past_the_calendar_fail_their_month_only_and_name_the_file_to_supply(tmp_path):
    daily, stocks = raw_frames()
    daily.loc[12, "trade_date"] = "20270104"  # a Monday past exchange-calendars' XSHG horizon
    source = write_dir(tmp_path / "input", daily, stocks)
    cache = load_source(str(source), CFG, tmp_path / "cache")
    session_calendar.activate(calendar_source.resolve(str(source)))  # as the pipeline's resource does
    # The months the calendar covers stay usable; the 2027 bar is not in them.
    assert len(read_month(cache, "2024-01").daily) > 0
    with pytest.raises(session_calendar.CalendarHorizonError) as caught:
        read_month(cache, "2027-01")
    message = str(caught.value)
    assert "2026-12-31" in message and "trade_cal.csv" in message and str(source) in message


def test_a_session_without_any_bars_is_named(tmp_path):
    daily, stocks = raw_frames()
    gap_day = "20240108"  # a Monday session inside the file's range
    daily = daily[~daily["trade_date"].isin([gap_day, "2024-01-08"])].reset_index(drop=True)
    with pytest.raises(InputValidationError) as caught:
        read_directory(write_dir(tmp_path / "input", daily, stocks))
    assert caught.value.column == "trade_date"
    assert "2024-01-08" in str(caught.value) and "no bars at all" in str(caught.value)


def test_date_before_calendar_start_is_named(tmp_path):
    daily, stocks = raw_frames()
    daily.loc[1, "trade_date"] = "20100105"
    with pytest.raises(InputValidationError) as caught:
        read_directory(write_dir(tmp_path / "input", daily, stocks))
    assert (caught.value.column, caught.value.row) == ("trade_date", 1)
    assert "before the pipeline's XSHG calendar" in str(caught.value)


def test_trade_before_listing_is_rejected(tmp_path):
    daily, stocks = raw_frames()
    row = int(np.flatnonzero(daily["ts_code"] == "688981.SH")[0])
    daily.loc[row, "trade_date"] = "20240201"  # 688981.SH lists on 2024-02-05
    with pytest.raises(InputValidationError) as caught:
        read_directory(write_dir(tmp_path / "input", daily, stocks))
    assert (caught.value.file, caught.value.column, caught.value.row) == ("daily.csv", "trade_date", row)
    assert "before the stock's list_date 2024-02-05" in str(caught.value)


@pytest.mark.parametrize("table", ["daily", "stocks"])
def test_missing_table_file(tmp_path, table):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", None if table == "daily" else daily, None if table == "stocks" else stocks)
    cache = tmp_path / "cache"
    with pytest.raises(InputValidationError) as caught:
        load_source(str(source), CFG, cache)
    assert caught.value.file == f"{table}.csv or {table}.parquet"
    assert (caught.value.column, caught.value.row) == (None, None)
    assert f"no {table}.csv or {table}.parquet in" in str(caught.value)
    assert cache_files(cache) == []


def test_csv_and_parquet_of_the_same_table(tmp_path):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", daily, stocks)
    daily.to_parquet(source / "daily.parquet", index=False)
    cache = tmp_path / "cache"
    with pytest.raises(InputValidationError) as caught:
        load_source(str(source), CFG, cache)
    assert caught.value.file == "daily.csv and daily.parquet"
    assert "keep exactly one" in str(caught.value)
    assert cache_files(cache) == []


def test_truncated_csv(tmp_path):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", daily, stocks)
    text = (source / "daily.csv").read_text(encoding="utf-8")
    last_line_start = text.rstrip("\n").rfind("\n") + 1
    # Cut the last line right after "ts_code,trade_date," as a crashed copy would.
    cut = text.index(",", text.index(",", last_line_start) + 1) + 1
    (source / "daily.csv").write_text(text[:cut], encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.raises(InputValidationError) as caught:
        load_source(str(source), CFG, cache)
    assert (caught.value.file, caught.value.column, caught.value.row) == ("daily.csv", "open", len(daily) - 1)
    assert "truncated" in str(caught.value)
    assert cache_files(cache) == []


def test_truncated_parquet(tmp_path):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", None, stocks)
    typed_daily(daily).to_parquet(source / "daily.parquet", index=False)
    data = (source / "daily.parquet").read_bytes()
    (source / "daily.parquet").write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(InputValidationError) as caught:
        load_source(str(source), CFG, cache)
    assert (caught.value.file, caught.value.column, caught.value.row) == ("daily.parquet", None, None)
    assert "cannot be read as Parquet" in str(caught.value)
    assert cache_files(cache) == []


def test_unreadable_csv(tmp_path):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", daily, stocks)
    (source / "stocks.csv").write_bytes(b"")
    with pytest.raises(InputValidationError) as caught:
        read_directory(source)
    assert (caught.value.file, caught.value.row) == ("stocks.csv", None)
    assert "empty" in str(caught.value)


def test_missing_directory_names_the_variable(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as caught:
        load_source(str(missing), CFG, tmp_path / "cache")
    assert "FACTOR_PIPELINE_SOURCE" in str(caught.value)
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "cache").exists()


def test_error_pickles_with_its_fields():
    err = InputValidationError("daily.csv", "high", 17, 9.8, "high 9.80 is below", "600000.SH", "2024-01-05")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.column, copy.row, copy.value) == ("daily.csv", "high", 17, 9.8)
    assert str(copy) == str(err) == (
        "daily.csv, column 'high', row 17 (ts_code=600000.SH, trade_date=2024-01-05): high 9.80 is below"
    )


def typed_daily(daily: pd.DataFrame) -> pd.DataFrame:
    out = daily.copy()
    for column in ["open", "high", "low", "close", "pre_close", "volume", "amount", "adj_factor"]:
        out[column] = out[column].astype(float)
    out["ts_code"] = out["ts_code"].astype(str)
    # Parquet users often store dates as YYYYMMDD integers.
    out["trade_date"] = pd.to_datetime(out["trade_date"].astype(str), format="mixed").dt.strftime("%Y%m%d").astype(int)
    return out


def test_valid_csv_round_trips_to_canonical_frames(valid_dir):
    frames = read_directory(valid_dir)
    daily, stocks = frames.daily, frames.stocks
    raw_daily, _ = raw_frames()
    assert frames.truth is None
    assert list(daily.columns) == list(input_files.DAILY_COLUMNS)
    assert daily["trade_date"].dtype == "datetime64[ns]"
    assert pd.api.types.is_string_dtype(daily["ts_code"].dtype)
    for column in ["open", "high", "low", "close", "pre_close", "volume", "amount", "adj_factor", "float_shares"]:
        assert daily[column].dtype == np.float64, column
    assert daily["is_st"].dtype == bool
    # Defaults for the optional columns that the CSV leaves out.
    assert daily["float_shares"].isna().all() and not daily["is_st"].any()
    # Every row kept, sorted by (trade_date, ts_code); YYYYMMDD and ISO both parsed.
    assert len(daily) == len(raw_daily)
    assert daily.equals(daily.sort_values(["trade_date", "ts_code"]).reset_index(drop=True))
    iso = daily[daily["ts_code"] == "000001.SZ"]
    assert iso["trade_date"].iloc[0] == pd.Timestamp("2024-01-02")
    assert set(daily["trade_date"]) <= set(session_calendar.all_sessions())
    # The volume-0 (suspended) row is kept.
    suspended = daily[(daily["ts_code"] == SUSPENDED[0]) & (daily["trade_date"] == pd.Timestamp(SUSPENDED[1]))]
    assert len(suspended) == 1 and suspended["volume"].iloc[0] == 0.0
    row = daily[(daily["ts_code"] == "300750.SZ") & (daily["trade_date"] == pd.Timestamp("2024-01-03"))].iloc[0]
    raw_row = raw_daily[(raw_daily["ts_code"] == "300750.SZ") & (raw_daily["trade_date"] == "20240103")].iloc[0]
    assert row["close"] == raw_row["close"] and row["adj_factor"] == pytest.approx(1.2)

    assert list(stocks.columns) == list(input_files.STOCKS_COLUMNS)
    assert list(stocks["ts_code"]) == sorted(code for code, *_ in STOCKS)
    assert stocks["list_date"].dtype == "datetime64[ns]" and stocks["delist_date"].dtype == "datetime64[ns]"
    by_code = stocks.set_index("ts_code")
    assert by_code.loc["600000.SH", "industry"] == "Banks"  # Chinese -> English
    assert by_code.loc["300750.SZ", "industry"] == "Power Equipment"
    assert by_code.loc["688981.SH", "industry"] == "Electronics"
    assert by_code.loc["600000.SH", "name"] == "浦发银行"
    assert by_code.loc["600000.SH", "list_date"] == pd.Timestamp("1999-11-10")
    assert by_code.loc["600001.SH", "delist_date"] == pd.Timestamp("2024-02-20")  # from a YYYYMMDD int
    assert pd.isna(by_code.loc["600000.SH", "delist_date"])


def test_parquet_input_matches_csv(tmp_path, valid_dir):
    daily, stocks = raw_frames()
    daily = typed_daily(daily)
    daily["float_shares"] = 5e8
    daily["is_st"] = False
    daily.loc[3, "is_st"] = True
    stocks = stocks.assign(list_date=pd.to_datetime(stocks["list_date"]))  # real timestamps in Parquet
    source = write_dir(tmp_path / "parquet", daily, stocks, fmt="parquet")
    from_parquet = read_directory(source)
    from_csv = read_directory(valid_dir)
    same = [c for c in input_files.DAILY_COLUMNS if c not in ("float_shares", "is_st")]
    pd.testing.assert_frame_equal(from_parquet.daily[same], from_csv.daily[same])
    pd.testing.assert_frame_equal(from_parquet.stocks, from_csv.stocks)
    assert (from_parquet.daily["float_shares"] == 5e8).all()
    assert from_parquet.daily["is_st"].sum() == 1


@pytest.mark.parametrize("delist", ["empty", "absent"])
def test_delist_date_is_optional(tmp_path, delist):
    daily, stocks = raw_frames()
    daily = daily[daily["ts_code"] != "600001.SH"]
    stocks = stocks[stocks["ts_code"] != "600001.SH"]
    stocks = stocks.assign(delist_date=None) if delist == "empty" else stocks.drop(columns=["delist_date"])
    frames = read_directory(write_dir(tmp_path / "input", daily, stocks))
    assert len(frames.stocks) == 4 and frames.stocks["delist_date"].isna().all()
    assert frames.stocks["delist_date"].dtype == "datetime64[ns]"


def test_gbk_encoded_csv_is_read(tmp_path):
    daily, stocks = raw_frames()
    source = write_dir(tmp_path / "input", daily, None)
    stocks.to_csv(source / "stocks.csv", index=False, encoding="gb18030")
    frames = read_directory(source)
    assert frames.stocks.set_index("ts_code").loc["600001.SH", "industry"] == "Steel"


def test_market_frames_is_frozen():
    frames = MarketFrames(pd.DataFrame(), pd.DataFrame(), None)
    with pytest.raises(AttributeError):
        frames.truth = pd.DataFrame()
