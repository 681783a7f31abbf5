"""The Tushare Pro HTTP client against a local server: pagination, back-off, and a clear error for each refusal."""

from __future__ import annotations

import logging

import pytest

from factor_pipeline.market.tushare.client import (
    Token,
    TushareAuthError,
    TushareClient,
    TushareMalformedAnswer,
    TusharePermissionError,
    TushareRateLimitError,
    TushareServerError,
)
from factor_pipeline_tests.market.tushare.fake_api import TOKEN, FakeTushare, exports_from_canonical, small_market

FIELDS = "ts_code,trade_date,vol,amount"


@pytest.fixture(scope="module")
def tables():
    return exports_from_canonical(*small_market())


@pytest.fixture
def api(tables):
    with FakeTushare(tables) as server:
        yield server


def client(api, token=TOKEN, **kwargs):
    waits = []
    made = TushareClient(Token(token), url=api.url, sleep=waits.append, **kwargs)
    made.waits = waits
    return made


def test_pages_until_has_more_is_false(api, tables):
    api.caps["index_member_all"] = 2
    rows = client(api).query("index_member_all", {"is_new": "Y"}, "ts_code,l1_name,in_date", page_size=2000)
    expected = tables["index_member_all"][tables["index_member_all"]["is_new"] == "Y"]
    assert len(expected) == 3
    assert list(rows["ts_code"]) == list(expected["ts_code"])
    assert [p["offset"] for _, p in api.requests] == [0, 2]


def test_rate_limit_answer_is_waited_out_and_logged(api, tables, caplog):
    api.rate_limited["daily"] = 2
    made = client(api)
    with caplog.at_level(logging.WARNING, logger="factor_pipeline.tushare"):
        rows = made.query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert len(rows) == (tables["daily"]["trade_date"] == "20240105").sum() > 0
    assert made.waits == [10.0, 20.0]
    assert sum("rate limit" in r.message and "waiting" in r.message for r in caplog.records) == 2
    assert len(api.requests) == 3


def test_rate_limit_that_never_lifts_is_an_error(api):
    api.rate_limited["daily"] = 100
    with pytest.raises(TushareRateLimitError, match="每分钟最多访问"):
        client(api, retries=2).query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert len(api.requests) == 3


def test_bad_token(api):
    with pytest.raises(TushareAuthError, match="TUSHARE_TOKEN") as caught:
        client(api, token="not-the-token").query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert "not-the-token" not in str(caught.value)
    assert len(api.requests) == 1  # not retried


def test_endpoint_without_permission(api):
    api.denied.add("index_member_all")
    with pytest.raises(TusharePermissionError, match="index_member_all") as caught:
        client(api).query("index_member_all", {}, "ts_code", page_size=2000)
    assert "points or permission" in str(caught.value)


@pytest.mark.parametrize(
    "broken, error, fragment",
    [
        ((500, b"Internal Server Error"), TushareServerError, "HTTP 500"),
        ((200, b"<html>maintenance</html>"), TushareMalformedAnswer, "not JSON"),
        ((200, b'{"code": 0, "msg": "", "data": {"fields": ["a", "b"], "items": [[1]]}}'), TushareMalformedAnswer, "item 0"),
        ((200, b'{"msg": "ok"}'), TushareMalformedAnswer, "no 'code'"),
    ],
)
def test_server_error_and_malformed_answers(api, broken, error, fragment):
    api.broken = broken
    with pytest.raises(error, match=fragment) as caught:
        client(api).query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert "daily(" in str(caught.value)


def test_dropped_connection_is_retried_then_named(api):
    api.drop_from = 1
    made = client(api, retries=2)
    with pytest.raises(TushareServerError, match="no answer"):
        made.query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert len(made.waits) == 2


def test_the_token_never_prints():
    token = Token(TOKEN)
    assert TOKEN not in repr(token) and TOKEN not in str(token) and TOKEN not in f"{token}"
    assert TOKEN not in repr(TushareClient(token, url="http://127.0.0.1:9"))
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(token)
