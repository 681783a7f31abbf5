"""The official ``tushare`` client against the fake server: it reads the same frames as the project's client, so the
fake server speaks the protocol of a client nobody here wrote."""

from __future__ import annotations

import pandas as pd
import pytest
from tushare.pro import client as official

from factor_pipeline.market.tushare.client import Token, TushareAuthError, TushareClient
from factor_pipeline.market.tushare.fetch import ENDPOINTS
from factor_pipeline_tests.market.tushare.fake_api import TOKEN, BAD_TOKEN_MSG, FakeTushare, untidy_market

QUERIES = [
    ("daily", {"trade_date": "20240220"}),
    ("adj_factor", {"trade_date": "20240220"}),
    ("daily_basic", {"trade_date": "20240105"}),
    ("stock_basic", {"list_status": "L"}),
    ("stock_basic", {"list_status": "D"}),
    ("index_member_all", {"l1_code": "801780.SI", "is_new": "Y"}),
    ("index_member_all", {"l1_code": "801170.SI", "is_new": "N"}),
    ("namechange", {}),
    ("trade_cal", {"exchange": "SSE", "start_date": "20240201", "end_date": "20240229"}),
]


@pytest.fixture(scope="module")
def api():
    with FakeTushare(untidy_market()[2]) as server:
        yield server


@pytest.fixture
def pro(api, monkeypatch):
    # The official client's endpoint is a name-mangled class attribute; pointed at the fake server here only.
    monkeypatch.setattr(official.DataApi, "_DataApi__http_url", api.url)
    return official.DataApi(token=TOKEN, timeout=10)


@pytest.mark.parametrize("name, params", QUERIES)
def test_the_official_client_reads_what_ours_reads(api, pro, name, params):
    fields = ",".join(ENDPOINTS[name].fields)
    theirs = pro.query(name, fields=fields, **params)
    ours = TushareClient(Token(TOKEN), url=api.url, retries=0).query(name, params, fields, ENDPOINTS[name].page_size)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
    # It sends what the service reads: the api_name, the token and the parameters, in the JSON body.
    sent = api.requests[-2][1]
    assert {k: sent[k] for k in params} == params


def test_both_clients_read_the_refusal_of_a_bad_token(api, monkeypatch):
    monkeypatch.setattr(official.DataApi, "_DataApi__http_url", api.url)
    with pytest.raises(Exception, match=BAD_TOKEN_MSG):
        official.DataApi(token="not-the-token").query("daily", trade_date="20240105")
    with pytest.raises(TushareAuthError, match=BAD_TOKEN_MSG):
        TushareClient(Token("not-the-token"), url=api.url, retries=0).query("daily", {"trade_date": "20240105"}, "ts_code", 6000)
