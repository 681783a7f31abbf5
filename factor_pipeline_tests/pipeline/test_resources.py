"""A home never mixes sources, profiles or configurations."""

import dagster as dg
import pandas as pd
import pytest

from factor_pipeline.pipeline.backfill_plan import materialised
from factor_pipeline.market import store as market_store
from factor_pipeline.pipeline.assets import raw_bars
from factor_pipeline.pipeline.resources import HomeIdentityError, PipelineResource
from factor_pipeline.storage import ProvenanceError, read_months, write_parquet
from factor_pipeline_tests.market.test_input_files import raw_frames, write_dir


def _materialise_raw_bars(pipeline: PipelineResource, month: str) -> None:
    result = dg.materialize([raw_bars], partition_key=month, resources={"pipeline": pipeline})
    assert result.success


@pytest.fixture
def two_markets(tmp_path):
    daily, stocks = raw_frames()
    first = write_dir(tmp_path / "market_a", daily, stocks)
    other = daily.copy()
    other["close"] = other["close"].astype(float).round(2)
    other.loc[0, "volume"] = float(other.loc[0, "volume"]) + 100.0  # another market: different content
    second = write_dir(tmp_path / "market_b", other, stocks)
    return first, second


def test_a_source_switch_in_one_home_is_refused_naming_both(tmp_path, two_markets):
    first, second = two_markets
    home = str(tmp_path / "home")
    _materialise_raw_bars(PipelineResource(home=home, source=str(first), profile="smoke"), "2024-01")
    with pytest.raises(HomeIdentityError) as caught:
        PipelineResource(home=home, source=str(second), profile="smoke").layout
    message = str(caught.value)
    assert "input files whose first month 2024-01" in message and "another directory" in message
    # The same market copied elsewhere is the same source: its content names it, not its path.
    copy = write_dir(tmp_path / "copy_of_a", *raw_frames())
    assert PipelineResource(home=home, source=str(copy), profile="smoke").layout.matches("raw_bars/daily", "2024-01")


def test_a_profile_switch_in_one_home_is_refused(tmp_path, two_markets):
    first, _ = two_markets
    home = str(tmp_path / "home")
    _materialise_raw_bars(PipelineResource(home=home, source=str(first), profile="smoke"), "2024-01")
    with pytest.raises(HomeIdentityError, match="profile smoke.*profile demo"):
        PipelineResource(home=home, source=str(first), profile="demo").layout


def test_a_month_of_another_configuration_is_rebuilt_not_read(tmp_path, two_markets):
    first, _ = two_markets
    home = str(tmp_path / "home")
    augment = PipelineResource(home=home, source=str(first), profile="smoke", gan_mode="augment")
    off = PipelineResource(home=home, source=str(first), profile="smoke", gan_mode="off")
    layout = augment.layout
    factor_path = layout.partition("factor", "2024-01")
    write_parquet(pd.DataFrame({"month": ["2024-01"], "ts_code": ["600000.SH"], "pret": [0.1]}), factor_path, layout.stamp("factor", "2024-01"))
    assert materialised(augment.layout, "pret_factor", "2024-01")
    # The GAN mode is part of the factor's configuration: the month counts as missing and cannot be read.
    assert not materialised(off.layout, "pret_factor", "2024-01")
    with pytest.raises(ProvenanceError) as caught:
        read_months(off.layout, "factor", ["2024-01"])
    assert caught.value.args[0].count("config ") == 2  # names both identities


def test_a_correction_rebuilds_its_month_and_later_ones_while_appending_keeps_earlier_months(tmp_path):
    daily, stocks = raw_frames()
    full = market_store.load_source(str(write_dir(tmp_path / "full", daily, stocks)), None, tmp_path / "cache")
    january_only = daily[daily["trade_date"].astype(str).str.replace("-", "").str[:6] == "202401"]
    partial = market_store.load_source(str(write_dir(tmp_path / "jan", january_only, stocks)), None, tmp_path / "cache")
    full_states = market_store.read_manifest(full)["month_states"]
    partial_states = market_store.read_manifest(partial)["month_states"]
    assert full_states["2024-01"] == partial_states["2024-01"]  # next month's bars arriving change nothing before
    corrected = daily.copy()
    row = int((corrected["trade_date"].astype(str).str.replace("-", "").str[:6] == "202402").to_numpy().argmax())
    corrected.loc[row, "amount"] = float(corrected.loc[row, "amount"]) * 1.5
    fixed = market_store.load_source(str(write_dir(tmp_path / "fixed", corrected, stocks)), None, tmp_path / "cache")
    fixed_states = market_store.read_manifest(fixed)["month_states"]
    assert fixed_states["2024-01"] == full_states["2024-01"]
    assert fixed_states["2024-02"] != full_states["2024-02"]


def test_reading_the_layout_builds_the_source_but_activates_no_calendar(tmp_path):
    from factor_pipeline.market import session_calendar

    source = write_dir(tmp_path / "market", *raw_frames())
    pipeline = PipelineResource(home=str(tmp_path / "home"), source=str(source), profile="smoke")
    session_calendar.activate(session_calendar.synthetic_calendar())
    assert pipeline.layout.identity.source  # the source is loaded and the home claimed
    assert session_calendar.active() is session_calendar.synthetic_calendar()
    assert pipeline.session_calendar.known_until == session_calendar.exchange_calendar().known_until
    assert pipeline.activate_calendar() is session_calendar.active() is pipeline.session_calendar
