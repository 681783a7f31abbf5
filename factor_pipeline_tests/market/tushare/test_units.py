"""Tushare's units, converted in one place."""

import numpy as np

from factor_pipeline.market.tushare import units


def test_lots_thousands_and_ten_thousands_become_shares_and_cny():
    assert units.shares_from_lots([12.5, 0.0]).tolist() == [1250.0, 0.0]
    assert units.cny_from_thousands([3.456]).tolist() == [3456.0]
    assert units.shares_from_ten_thousands([1.5, np.nan])[0] == 15_000.0
    assert np.isnan(units.shares_from_ten_thousands([np.nan])[0])
