"""The Tushare Pro HTTP client against a local server: pagination, back-off, and a clear error for each refusal."""

from __future__ import annotations

import logging

import pytest

from factor_pipeline.market.tushare.client import (
    DEFAULT_URL,
    Throttle,
    Token,
    TushareAuthError,
    TushareClient,
    TushareMalformedAnswer,
    TusharePermissionError,
    TushareRateLimitError,
    TushareServerError,
    calls_per_minute,
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


@pytest.mark.parametrize(
    "fault",
    [(502, b"<html><body>502 Bad Gateway</body></html>"), (504, b""), (200, b"<!DOCTYPE html><html>maintenance</html>")],
)
def test_a_gateway_error_or_an_html_page_is_retried_and_nothing_is_asked_again_after_success(api, tables, fault, caplog):
    api.faults = {2: fault}
    made = client(api)
    with caplog.at_level(logging.WARNING, logger="factor_pipeline.tushare"):
        days = [made.query("daily", {"trade_date": d}, FIELDS, page_size=6000) for d in ("20240104", "20240105", "20240108")]
    assert [len(d) for d in days] == [4, 4, 4]
    asked = [p["trade_date"] for _, p in api.requests]
    assert asked == ["20240104", "20240105", "20240105", "20240108"]  # the failed call once more, nothing else
    assert [p["trade_date"] for _, p in api.answered] == ["20240104", "20240105", "20240108"]
    assert made.waits == [10.0]
    assert any("retry 1 of 6" in r.message and "daily(" in r.message for r in caplog.records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_a_refusal_of_the_request_itself_is_not_retried(api):
    api.broken = (404, b"not found")
    with pytest.raises(TushareServerError, match="HTTP 404"):
        client(api).query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert len(api.requests) == 1


def test_transient_failures_are_bounded(api):
    api.broken = (503, b"busy")
    made = client(api, retries=3)
    with pytest.raises(TushareServerError, match="HTTP 503"):
        made.query("daily", {"trade_date": "20240105"}, FIELDS, page_size=6000)
    assert len(api.requests) == 4 and made.waits == [10.0, 20.0, 30.0]


class FakeClock:
    def __init__(self):
        self.now, self.slept = 1000.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_throttle_keeps_the_account_under_its_rate_without_refusals(api):
    clock = FakeClock()
    made = client(api, throttle=Throttle(calls_per_minute(2000), clock=clock, sleep=clock.sleep))
    for day in ("20240102", "20240103", "20240104", "20240105"):
        made.query("daily", {"trade_date": day}, FIELDS, page_size=6000)
        clock.now += 0.1  # the answer's own time counts toward the spacing
    assert clock.slept == [0.2, 0.2, 0.2]  # 60 / 200 = 0.3 s between calls
    assert len(api.requests) == len(api.answered) == 4 and made.waits == []


@pytest.mark.parametrize("points, rate", [(2000, 200), (4999, 200), (5000, 500), (20000, 500)])
def test_calls_a_minute_by_points(points, rate):
    assert calls_per_minute(points) == rate


def test_too_few_points_for_the_pipelines_endpoints():
    with pytest.raises(TusharePermissionError, match="2,000 or more"):
        calls_per_minute(120)


def test_https_by_default():
    assert DEFAULT_URL.startswith("https://")
