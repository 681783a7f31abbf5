"""A small market in Tushare's shapes and units, and a local server that speaks Tushare Pro's HTTP protocol.

The exports are derived from canonical frames by dividing into Tushare's units (lots, thousands of CNY,
10,000 shares); the test markets hold values those divisions and the reader's multiplications keep exact.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import SW_INDUSTRIES

TOKEN = "tok-9f3c1e-SECRET-do-not-leak"
CHINESE = {english: chinese for _, chinese, english in SW_INDUSTRIES}
SW_CODE = {english: f"{code}.SI" for code, _, english in SW_INDUSTRIES}
RATE_LIMIT_MSG = "抱歉，您每分钟最多访问该接口500次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
BAD_TOKEN_MSG = "您的token不对，请确认。"
NO_PERMISSION_MSG = "抱歉，您没有访问该接口的权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"


def ymd(values) -> list:
    return [None if pd.isna(v) else pd.Timestamp(v).strftime("%Y%m%d") for v in values]


def exact_units(daily: pd.DataFrame) -> pd.DataFrame:
    """Volumes in whole lots, amounts in 1/8 thousand CNY, float shares in 1/16 of 10,000: exact both ways."""
    return daily.assign(
        volume=np.round(daily["volume"] / 100.0) * 100.0,
        amount=np.round(daily["amount"] / 125.0) * 125.0,
        float_shares=np.round(daily["float_shares"] / 625.0) * 625.0,
    )


def exports_from_canonical(daily: pd.DataFrame, stocks: pd.DataFrame, memberships: list[tuple]) -> dict[str, pd.DataFrame]:
    """Tushare's tables for canonical (daily, stocks); memberships: (ts_code, English industry, in_date, out_date)."""
    daily = daily.sort_values(["trade_date", "ts_code"], kind="stable").reset_index(drop=True)
    dates = ymd(daily["trade_date"])
    tables = {
        "daily": pd.DataFrame({
            "ts_code": daily["ts_code"], "trade_date": dates,
            **{c: daily[c] for c in ("open", "high", "low", "close", "pre_close")},
            "change": daily["close"] - daily["pre_close"],
            "pct_chg": (daily["close"] / daily["pre_close"] - 1) * 100,
            "vol": daily["volume"] / 100.0, "amount": daily["amount"] / 1000.0,
        }),
        "adj_factor": pd.DataFrame({"ts_code": daily["ts_code"], "trade_date": dates, "adj_factor": daily["adj_factor"]}),
        "daily_basic": pd.DataFrame({"ts_code": daily["ts_code"], "trade_date": dates,
                                     "float_share": daily["float_shares"] / 10_000.0}),
    }
    status = np.where(stocks["delist_date"].notna(), "D", "L")
    tables["stock_basic"] = pd.DataFrame({
        "ts_code": stocks["ts_code"], "symbol": stocks["ts_code"].str[:6], "name": stocks["name"],
        "industry": "全国地产",  # Tushare's own classification, not Shenwan's: the reader must not use it
        "market": "主板", "list_status": status,
        "list_date": ymd(stocks["list_date"]), "delist_date": ymd(stocks["delist_date"]),
    })
    members = pd.DataFrame(memberships, columns=["ts_code", "industry", "in_date", "out_date"])
    tables["index_member_all"] = pd.DataFrame({
        "l1_code": members["industry"].map(SW_CODE), "l1_name": members["industry"].map(CHINESE),
        "ts_code": members["ts_code"], "name": members["ts_code"], "in_date": ymd(members["in_date"]),
        "out_date": ymd(members["out_date"]), "is_new": np.where(members["out_date"].isna(), "Y", "N"),
    })
    rows = []
    names = stocks.set_index("ts_code")["name"]
    for code, bars in daily.groupby("ts_code", sort=True):
        flags = bars["is_st"].to_numpy(bool)
        starts = np.flatnonzero(np.r_[True, flags[1:] != flags[:-1]])
        days = bars["trade_date"].to_numpy()
        for k, start in enumerate(starts):
            begin = pd.Timestamp(days[start]) if k else pd.Timestamp("1990-12-19")
            end = pd.Timestamp(days[starts[k + 1]]) - pd.Timedelta(days=1) if k + 1 < len(starts) else None
            name = ("*ST" if flags[start] else "") + names[code]
            rows.append((code, name, begin, end, begin, "*ST" if flags[start] else "其他"))
    changes = pd.DataFrame(rows, columns=["ts_code", "name", "start_date", "end_date", "ann_date", "change_reason"])
    for column in ("start_date", "end_date", "ann_date"):
        changes[column] = ymd(changes[column])
    tables["namechange"] = changes
    first, last = daily["trade_date"].min(), daily["trade_date"].max()
    days = pd.date_range(first.replace(day=1), last + pd.offsets.MonthEnd(0), freq="D")
    sessions = set(session_calendar.exchange_calendar().sessions)
    tables["trade_cal"] = pd.DataFrame({
        "exchange": "SSE", "cal_date": ymd(days), "is_open": [1 if d in sessions else 0 for d in days],
        "pretrade_date": None,
    })
    return tables


def write_tables(directory: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(directory / f"{name}.csv", index=False)
        else:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory


def write_canonical(directory: Path, daily: pd.DataFrame, stocks: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    daily.to_parquet(directory / "daily.parquet", index=False)
    stocks.to_parquet(directory / "stocks.parquet", index=False)
    return directory


def small_market() -> tuple[pd.DataFrame, pd.DataFrame, list[tuple]]:
    """Four stocks, 2024-01..2024-03: an ex-dividend step (600000.SH on 2024-01-17), an industry reassignment
    and an ST change (000001.SZ: Computers -> Media from 2024-02-19, *ST from 2024-02-05), a three-session
    suspension (300001.SZ, 2024-01-10..12) and a delisting (600001.SH, delist_date 2024-02-15)."""
    sessions = session_calendar.sessions_between("2024-01-02", "2024-03-29")
    stocks = pd.DataFrame({
        "ts_code": ["000001.SZ", "300001.SZ", "600000.SH", "600001.SH"],
        "name": ["平安测试", "特锐测试", "浦发测试", "邯钢测试"],
        "industry": ["Media", "Power Equipment", "Banks", "Steel"],
        "list_date": pd.to_datetime(["1991-04-03", "2009-10-30", "1999-11-10", "1998-01-22"]),
        "delist_date": pd.to_datetime([None, None, None, "2024-02-15"]),
    })
    rows = []
    for i, day in enumerate(sessions):
        for j, code in enumerate(stocks["ts_code"]):
            if code == "300001.SZ" and pd.Timestamp("2024-01-10") <= day <= pd.Timestamp("2024-01-12"):
                continue
            if code == "600001.SH" and day >= pd.Timestamp("2024-02-15"):
                continue
            pre = 10.0 + j + 0.01 * i
            step = code == "600000.SH" and day == pd.Timestamp("2024-01-17")
            pre = pre - 0.5 if step else pre  # pre_close after the dividend
            close = round(pre * (1.01 if (i + j) % 2 else 0.99), 2)
            rows.append({
                "ts_code": code, "trade_date": day, "open": round(pre, 2), "high": round(max(pre, close) + 0.05, 2),
                "low": round(min(pre, close) - 0.05, 2), "close": close, "pre_close": round(pre, 2),
                "volume": 1_000_000.0 + 100.0 * i, "amount": 10_000_000.0 + 125.0 * (i + j),
                "adj_factor": 1.05 if (code == "600000.SH" and day >= pd.Timestamp("2024-01-17")) else 1.0,
                "float_shares": 5e8 + 625.0 * j,
                "is_st": code == "000001.SZ" and day >= pd.Timestamp("2024-02-05"),
                "industry": ("Computers" if day < pd.Timestamp("2024-02-19") else "Media") if code == "000001.SZ"
                else stocks.set_index("ts_code").loc[code, "industry"],
            })
    daily = pd.DataFrame(rows)
    memberships = [
        ("000001.SZ", "Computers", "2014-02-21", "2024-02-18"),
        ("000001.SZ", "Media", "2024-02-19", None),
        ("300001.SZ", "Power Equipment", "2014-02-21", None),
        ("600000.SH", "Banks", "2014-02-21", None),
        ("600001.SH", "Steel", "2014-02-21", "2024-02-15"),
    ]
    members = [(c, i, pd.Timestamp(a), None if b is None else pd.Timestamp(b)) for c, i, a, b in memberships]
    return daily, stocks, members


ADJ_GAP = ("689009.SH", "20240220")  # the untidy market's stock-day without an adj_factor row
UNCLASSIFIED_CODES = ("920002.BJ", "301999.SZ")
TWICE = "600000.SH"  # whose membership the untidy market answers twice


def planted_issues(twice: str, gap_code: str, unclassified: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """What :func:`untidy` plants, as (table, kind, ts_code): each must be in raw.data_issues once."""
    return sorted([
        ("stock_basic", "malformed_code", "T600018.SH"),
        ("index_member_all", "membership_not_listed", "T00018.SH"),
        ("index_member_all", "duplicate_row", twice),
        ("adj_factor", "adj_factor_carried", gap_code),
        *(("index_member_all", "unclassified", code) for code in unclassified),
    ])


def _continuous_bars(code: str, sessions, first: float, step: int) -> list[dict]:
    """Bars whose pre_close is the previous close (no corporate action), so that a missing factor can be carried."""
    rows, pre = [], first
    for i, day in enumerate(sessions):
        close = round(pre * (1.01 if (i + step) % 3 else 0.985), 2)
        rows.append({"ts_code": code, "trade_date": day, "open": pre, "high": round(max(pre, close) + 0.03, 2),
                     "low": round(min(pre, close) - 0.03, 2), "close": close, "pre_close": pre,
                     "volume": 800_000.0 + 100.0 * i, "amount": 9_000_000.0 + 125.0 * i, "adj_factor": 1.0,
                     "float_shares": 2e8 + 625.0 * step, "is_st": False, "industry": "Electronics"})
        pre = close
    return rows


def untidy_market() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """The small market with what the real service answers: (canonical daily, canonical stocks, Tushare tables).

    Beside small_market's four stocks: a STAR CDR (689009.SH) missing its adj_factor on ADJ_GAP, a Beijing
    stock (920002.BJ) and a new listing (301999.SZ, from 2024-02-20) without any Shenwan membership, and
    :func:`untidy`'s other plants. The canonical frames are what the tables must read as, set right.
    """
    daily, stocks, members = small_market()
    sessions = session_calendar.sessions_between("2024-01-02", "2024-03-29")
    extra = _continuous_bars("689009.SH", sessions, 36.5, 1) + _continuous_bars("920002.BJ", sessions, 12.0, 2)
    extra += _continuous_bars("301999.SZ", sessions[sessions >= pd.Timestamp("2024-02-20")], 25.0, 3)
    bars = pd.DataFrame(extra)
    bars.loc[bars["ts_code"] != "689009.SH", "industry"] = "Unclassified"
    daily = pd.concat([daily, bars], ignore_index=True).sort_values(["trade_date", "ts_code"], kind="stable")
    stocks = pd.concat([stocks, pd.DataFrame({
        "ts_code": ["689009.SH", "920002.BJ", "301999.SZ"], "name": ["九号测试", "北交测试", "新股测试"],
        "industry": ["Electronics", "Unclassified", "Unclassified"],
        "list_date": pd.to_datetime(["2020-10-29", "2023-01-05", "2024-02-20"]), "delist_date": pd.NaT,
    })], ignore_index=True).sort_values("ts_code", kind="stable").reset_index(drop=True)
    daily = daily.reset_index(drop=True)
    members = members + [("689009.SH", "Electronics", pd.Timestamp("2020-10-29"), None)]
    return daily, stocks, untidy(exports_from_canonical(daily, stocks, members), TWICE, ADJ_GAP, UNCLASSIFIED_CODES)


def untidy(tables: dict[str, pd.DataFrame], twice: str, gap: tuple[str, str], unclassified: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The tables as the service answers them: ``twice``'s membership repeated, no adj_factor row for ``gap``
    (ts_code, YYYYMMDD), no membership of the ``unclassified`` codes, a delisted name spelt T600018.SH in
    stock_basic and T00018.SH in the memberships (:func:`planted_issues`)."""
    tables = dict(tables)
    adj = tables["adj_factor"]
    tables["adj_factor"] = adj[~((adj["ts_code"] == gap[0]) & (adj["trade_date"] == gap[1]))].reset_index(drop=True)
    basic = tables["stock_basic"]
    ghost = basic.iloc[[0]].assign(ts_code="T600018.SH", symbol="T60001", name="退市测试", list_status="D",
                                   list_date="19970101", delist_date="20200101")
    tables["stock_basic"] = pd.concat([basic, ghost], ignore_index=True)
    member_rows = tables["index_member_all"]
    member_rows = member_rows[~member_rows["ts_code"].isin(unclassified)]
    delisted = member_rows.iloc[[0]].assign(ts_code="T00018.SH", name="退市测试", l1_code=SW_CODE["Transportation"],
                                            l1_name=CHINESE["Transportation"], in_date="20140221", out_date="20200101",
                                            is_new="N")
    repeated = member_rows[member_rows["ts_code"] == twice].iloc[[0]]
    tables["index_member_all"] = pd.concat([member_rows, delisted, repeated], ignore_index=True)
    return tables


class FakeTushare:
    """Tushare Pro on 127.0.0.1: answers {code, msg, data: {fields, items, has_more}} from ``tables``.

    Knobs: ``caps`` (per-call row cap by endpoint), ``denied`` (endpoints without permission),
    ``rate_limited`` (endpoint -> rate-limit answers to give before succeeding), ``unpublished`` (daily
    trade dates answered empty), ``drop_from`` (from this request number on, drop the connection unanswered).
    As the service is untidy: ``faults`` (request number -> (HTTP status, body) answered once instead, a
    gateway's 502 or its HTML page), ``shuffled`` (endpoints whose rows come in a new order on every call, as
    the service guarantees none, so that offset pages may lose or repeat rows). ``requests`` records
    (api_name, params) of every request, ``answered`` those answered with data.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], token: str = TOKEN):
        self.tables, self.token = tables, token
        self.caps: dict[str, int] = {}
        self.denied: set[str] = set()
        self.rate_limited: dict[str, int] = {}
        self.unpublished: set[str] = set()
        self.drop_from: int | None = None
        self.broken: tuple[int, bytes] | None = None  # (HTTP status, body) answered to every request
        self.faults: dict[int, tuple[int, bytes]] = {}
        self.shuffled: set[str] = set()
        self.answered: list[tuple[str, dict]] = []
        self.requests: list[tuple[str, dict]] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._server = None

    def __enter__(self) -> "FakeTushare":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    owner.bodies.append(body)
                    request = json.loads(body)
                    owner.requests.append((request["api_name"], dict(request.get("params") or {})))
                    number = len(owner.requests)
                if self.path.rstrip("/") not in ("", f"/{request['api_name']}"):  # the root, or the official client's
                    self.send_error(404)
                    return
                if owner.drop_from is not None and number >= owner.drop_from:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                fault = owner.faults.pop(number, None) or owner.broken
                if fault is None:
                    answer = owner.answer(request, number)
                    if answer["code"] == 0:
                        with owner._lock:
                            owner.answered.append((request["api_name"], dict(request.get("params") or {})))
                status, data = fault or (200, json.dumps(answer, ensure_ascii=False).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if data[:1] == b"{" else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, request: dict, number: int = 0) -> dict:
        name, params = request["api_name"], dict(request.get("params") or {})
        if request.get("token") != self.token:
            return {"code": 40101, "msg": BAD_TOKEN_MSG, "data": None}
        if name in self.denied:
            return {"code": 40203, "msg": NO_PERMISSION_MSG, "data": None}
        with self._lock:
            if self.rate_limited.get(name, 0) > 0:
                self.rate_limited[name] -= 1
                return {"code": 40203, "msg": RATE_LIMIT_MSG, "data": None}
        table = self.tables[name]
        fields = [f for f in (request.get("fields") or "").split(",") if f] or list(table.columns)
        rows = table
        if "trade_date" in params:
            rows = rows[rows["trade_date"] == params["trade_date"]]
            if name == "daily" and params["trade_date"] in self.unpublished:
                rows = rows.iloc[:0]
        if name == "trade_cal":
            rows = rows[(rows["cal_date"] >= params["start_date"]) & (rows["cal_date"] <= params["end_date"])]
        if name == "stock_basic":
            rows = rows[rows["list_status"] == params.get("list_status", "L")]
        if name == "index_member_all":
            rows = rows[rows["is_new"] == params.get("is_new", "Y")]
            if "l1_code" in params:
                rows = rows[rows["l1_code"] == params["l1_code"]]
        if name in self.shuffled:
            rows = rows.sample(frac=1.0, random_state=number)
        offset = int(params.get("offset", 0))
        limit = min(int(params.get("limit", 10**9)), self.caps.get(name, 10**9))
        page = rows.iloc[offset: offset + limit].reindex(columns=fields)
        items = [[None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
                 for row in page.itertuples(index=False)]
        return {"code": 0, "msg": "", "data": {"fields": fields, "items": items,
                                               "has_more": offset + limit < len(rows)}}
