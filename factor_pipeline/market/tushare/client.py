"""A small client of Tushare Pro's HTTP protocol (stdlib only).

POST JSON ``{api_name, token, params, fields}``; the answer is ``{code, msg, data: {fields, items, has_more}}``
and ``code != 0`` is an error whose ``msg`` says which. The official ``tushare`` package is not used: its
endpoint is a name-mangled class attribute (``DataApi._DataApi__http_url``) that a test can only reach by
patching a private name, it turns an HTTP error status into an empty frame (an outage would read as an
empty trading day), it raises a bare ``Exception`` for every answer code and neither paginates nor backs
off, and it pulls requests, lxml, bs4, simplejson, websocket-client and tqdm.

The token travels only in the request body; :class:`Token` hides it from repr, str and logs, and no error
message quotes a request body. A long backfill survives the service's bad moments: a gateway's 5xx, a
timeout, a reset connection and an answer that is not JSON are retried after a growing wait (bounded and
logged), and a :class:`Throttle` spaces the calls at the account's rate so that the service is not refused.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Callable

import pandas as pd

DEFAULT_URL = "https://api.tushare.pro"
# Calls a minute by the account's points (Tushare's points table); below 2,000 points the pipeline's
# endpoints (adj_factor, index_member_all) are not available at all.
CALLS_PER_MINUTE_BY_POINTS = ((2000, 200), (5000, 500))
# Words of the answer's msg, lower-cased; the rate-limit answer also says 权限, so it is tested first.
RATE_LIMIT_MARKERS = ("每分钟最多访问", "每小时最多访问", "每天最多访问", "访问频率", "rate limit")
TOKEN_MARKERS = ("token",)
PERMISSION_MARKERS = ("权限", "积分", "permission")

logger = logging.getLogger("factor_pipeline.tushare")


class Token:
    """The user's token; shown as ``Token(***)`` everywhere but the request body."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        value = (value or "").strip()
        if not value:
            raise TushareAuthError("TUSHARE_TOKEN is empty: set it to your Tushare Pro token (tushare.pro, 个人主页 > 接口TOKEN)")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token(***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Token is not pickled: pass TUSHARE_TOKEN in the environment instead")


class TushareError(RuntimeError):
    """An answer the pipeline cannot use; the message names the endpoint and parameters, never the token."""


class TushareAuthError(TushareError):
    pass


class TusharePermissionError(TushareError):
    pass


class TushareRateLimitError(TushareError):
    pass


class TushareServerError(TushareError):
    pass


class TushareMalformedAnswer(TushareError):
    pass


class TushareTransientError(TushareServerError):
    """No usable answer this time (5xx, timeout, reset, not JSON): asked again after a wait."""


class TushareNotJson(TushareTransientError, TushareMalformedAnswer):
    pass


def calls_per_minute(points: int) -> int:
    """The rate of the highest points tier the account reaches."""
    rates = [rate for floor, rate in CALLS_PER_MINUTE_BY_POINTS if points >= floor]
    if not rates:
        raise TusharePermissionError(
            f"{points} Tushare points: the pipeline's endpoints (adj_factor, index_member_all) need "
            f"{CALLS_PER_MINUTE_BY_POINTS[0][0]:,} or more"
        )
    return rates[-1]


class Throttle:
    """At most ``per_minute`` calls in any minute: each call waits until 60/per_minute s after the previous one."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not per_minute > 0:
            raise ValueError(f"calls per minute must be positive, not {per_minute}")
        self.per_minute, self.interval = per_minute, 60.0 / per_minute
        self._clock, self._sleep, self._last = clock, sleep, None

    def wait(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            self._sleep(self.interval - (now - self._last))
            now = self._clock()
        self._last = now


def _describe(api_name: str, params: dict) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{api_name}({shown})"


def _classify(code, msg: str, what: str) -> TushareError:
    lowered = msg.lower()
    if any(m in lowered for m in RATE_LIMIT_MARKERS):
        return TushareRateLimitError(f"Tushare rate limit on {what}: {msg}")
    if any(m in lowered for m in TOKEN_MARKERS):
        return TushareAuthError(f"Tushare refused the token on {what}: {msg} (check TUSHARE_TOKEN)")
    if any(m in lowered for m in PERMISSION_MARKERS):
        return TusharePermissionError(
            f"Tushare denies {what}: {msg} (the account lacks the points or permission for this endpoint)"
        )
    return TushareServerError(f"Tushare answered code {code} on {what}: {msg}")


class TushareClient:
    """One token, one endpoint URL; :meth:`query` paginates and backs off on the rate-limit answer."""

    def __init__(
        self,
        token: Token,
        url: str = DEFAULT_URL,
        timeout: float = 30.0,
        retries: int = 6,
        backoff_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | None = None,
        throttle: Throttle | None = None,
    ):
        if not isinstance(token, Token):
            raise TypeError("token must be a Token, so that it never prints")
        self._token, self._sleep, self.throttle = token, sleep, throttle
        self.url, self.timeout, self.retries, self.backoff_s = url, timeout, retries, backoff_s
        self.log = log or logger
        self.calls = 0  # HTTP requests made, for the fetch's accounting

    def __repr__(self) -> str:
        return f"TushareClient(url={self.url!r}, token=Token(***))"

    def _post(self, api_name: str, params: dict, fields: str) -> dict:
        what = _describe(api_name, params)
        body = json.dumps({"api_name": api_name, "token": self._token.reveal(), "params": params, "fields": fields})
        request = urllib.request.Request(
            self.url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
        )
        if self.throttle is not None:
            self.throttle.wait()
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            error = TushareTransientError if exc.code >= 500 or exc.code == 429 else TushareServerError
            raise error(f"Tushare answered HTTP {exc.code} on {what}") from None
        except (http.client.HTTPException, OSError) as exc:  # URLError, timeouts and resets are OSErrors
            raise TushareTransientError(f"no answer from Tushare ({self.url}) on {what}: {exc}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            # A gateway's HTML error page is answered with status 200 too.
            raise TushareNotJson(f"Tushare's answer on {what} is not JSON: {text[:200]!r}") from None
        if not isinstance(answer, dict) or "code" not in answer:
            raise TushareMalformedAnswer(f"Tushare's answer on {what} has no 'code': {text[:200]!r}")
        if answer["code"] != 0:
            raise _classify(answer["code"], str(answer.get("msg") or ""), what)
        data = answer.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("fields"), list) or not isinstance(data.get("items"), list):
            raise TushareMalformedAnswer(f"Tushare's answer on {what} lacks data.fields or data.items: {text[:200]!r}")
        width = len(data["fields"])
        bad = next((i for i, row in enumerate(data["items"]) if not isinstance(row, list) or len(row) != width), None)
        if bad is not None:
            raise TushareMalformedAnswer(f"Tushare's answer on {what}: item {bad} does not have the {width} fields {data['fields']}")
        return data

    def call(self, api_name: str, params: dict, fields: str) -> dict:
        """One request, retried after a growing wait on the rate-limit answer and on a transient failure."""
        for attempt in range(self.retries + 1):
            try:
                return self._post(api_name, params, fields)
            except (TushareRateLimitError, TushareTransientError) as exc:
                if attempt == self.retries:
                    raise
                wait = self.backoff_s * (attempt + 1)
                self.log.warning(f"{exc}; waiting {wait:.0f}s before retry {attempt + 1} of {self.retries}")
                self._sleep(wait)
        raise AssertionError("unreachable")

    def query(self, api_name: str, params: dict, fields: str, page_size: int) -> pd.DataFrame:
        """Every row of one query, fetched ``page_size`` rows at a time with offset/limit."""
        frames, offset = [], 0
        while True:
            data = self.call(api_name, {**params, "limit": page_size, "offset": offset}, fields)
            frames.append(pd.DataFrame(data["items"], columns=data["fields"]))
            offset += len(data["items"])
            more = data.get("has_more")
            if not data["items"] or more is False or (more is None and len(data["items"]) < page_size):
                break
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
