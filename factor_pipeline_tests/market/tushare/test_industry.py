"""Point-in-time industry and ST status from Tushare's interval tables."""

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.market.input_files import InputValidationError
from factor_pipeline.market.tushare import industry

MEMBERS = pd.DataFrame({
    "ts_code": ["600000.SH", "600000.SH", "000001.SZ"],
    "l1_name": ["银行", "非银金融", "Media"],
    "in_date": ["20140221", "20210730", "20200101"],
    "out_date": ["20210729", None, None],
})


def _days(*days):
    return pd.to_datetime(list(days)).to_numpy()


def test_the_membership_in_force_on_each_date():
    members = industry.parse_memberships("index_member_all.csv", MEMBERS)
    codes = np.array(["600000.SH", "600000.SH", "600000.SH", "000001.SZ", "000001.SZ", "300750.SZ"], dtype=object)
    on = industry.industry_on(members, codes, _days("2021-07-29", "2021-07-30", "2010-01-04", "2024-01-02", "2019-05-06", "2024-01-02"))
    # Before its first in_date a stock has its first membership; without any, None.
    assert list(on) == ["Banks", "Non-bank Financials", "Banks", "Media", "Media", None]
    assert industry.current_industry(members).to_dict() == {"000001.SZ": "Media", "600000.SH": "Non-bank Financials"}


def test_out_date_before_in_date_is_named():
    bad = MEMBERS.assign(out_date=["20100101", None, None])
    with pytest.raises(InputValidationError) as caught:
        industry.parse_memberships("index_member_all.csv", bad)
    assert (caught.value.column, caught.value.row) == ("out_date", 0)


def test_st_names_and_periods():
    names = pd.DataFrame({
        "ts_code": ["600848.SH"] * 5 + ["000002.SZ"],
        "name": ["自仪股份", "ST自仪", "SST自仪", "S*ST自仪", "自仪股份", "*ST万科"],
        "start_date": ["19940324", "20010508", "20061009", "20061026", "20070514", "20200101"],
        "end_date": ["20010507", "20061008", "20061025", "20070513", None, "20200630"],
    })
    periods = industry.parse_name_periods("namechange.csv", names)
    codes = np.array(["600848.SH"] * 5 + ["000002.SZ"] * 2, dtype=object)
    days = _days("2000-01-04", "2003-01-06", "2006-10-10", "2007-01-04", "2008-01-02", "2020-03-02", "2020-07-01")
    # The *ST name ended on 2020-06-30 without a successor record: not ST after it.
    assert industry.st_on(periods, codes, days).tolist() == [False, True, True, True, False, True, False]
