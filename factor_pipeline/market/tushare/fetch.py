"""Tushare Pro fetched month by month into ``<raw_dir>/<YYYY-MM>/<endpoint>.parquet``, as the API answers.

Each file carries its provenance in the Parquet metadata: endpoint, fields, every request's parameters,
rows and fetch time, and the trade dates it holds (never the token). A rerun asks only for what is
missing: the trade dates of the month's ``trade_cal`` up to ``through`` that a day endpoint does not hold
yet (a day the API answers empty, not yet published, is asked again next time). The snapshots of
``stock_basic``, ``index_member_all`` and ``namechange`` describe the present, whatever the month, so they
are kept once under ``<raw_dir>/snapshots/`` and taken again once per fetch of many months, when the stored
days have grown since. Memberships are asked per Shenwan level-1 code, each answer under the per-call cap, so
that paging (whose order the service does not guarantee) cannot lose or repeat a row. Every file is replaced
atomically, so a fetch killed midway leaves the previous complete files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from factor_pipeline import storage
from factor_pipeline.market import session_calendar
from factor_pipeline.market.trading_rules import SW_INDUSTRIES
from factor_pipeline.market.tushare.client import TushareClient


@dataclass(frozen=True)
class Endpoint:
    fields: tuple[str, ...]
    numeric: tuple[str, ...]
    page_size: int  # the endpoint's documented per-call row cap


ENDPOINTS = {
    "trade_cal": Endpoint(("exchange", "cal_date", "is_open", "pretrade_date"), ("is_open",), 6000),
    "daily": Endpoint(
        ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount"),
        ("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount"),
        6000,
    ),
    "adj_factor": Endpoint(("ts_code", "trade_date", "adj_factor"), ("adj_factor",), 6000),
    "daily_basic": Endpoint(("ts_code", "trade_date", "float_share"), ("float_share",), 6000),
    "stock_basic": Endpoint(
        ("ts_code", "symbol", "name", "industry", "market", "list_status", "list_date", "delist_date"), (), 6000
    ),
    "index_member_all": Endpoint(
        ("l1_code", "l1_name", "ts_code", "name", "in_date", "out_date", "is_new"), (), 2000
    ),
    "namechange": Endpoint(("ts_code", "name", "start_date", "end_date", "ann_date", "change_reason"), (), 10000),
}
DAY_ENDPOINTS = ("daily", "adj_factor", "daily_basic")
# Listed, delisted and paused names (no survivorship bias); current and past memberships of each level-1
# industry (the largest holds some hundreds of names, well under the cap of one call).
SNAPSHOTS = {
    "stock_basic": ({"list_status": "L"}, {"list_status": "D"}, {"list_status": "P"}),
    "index_member_all": tuple({"l1_code": f"{code}.SI", "is_new": new} for code, _, _ in SW_INDUSTRIES for new in ("Y", "N")),
    "namechange": ({},),
}
SNAPSHOT_DIR = "snapshots"
CALENDAR_FILE = "trade_cal.parquet"
_MONTH_DIR = re.compile(r"^\d{4}-\d{2}$")


def _typed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The endpoint's fields in order: numbers as float64, everything else as text or None."""
    endpoint = ENDPOINTS[name]
    frame = frame.reindex(columns=list(endpoint.fields))
    out = {}
    for column in endpoint.fields:
        values = frame[column]
        if column in endpoint.numeric:
            out[column] = pd.to_numeric(values, errors="raise").astype("float64")
        else:
            out[column] = values.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _stored(path: Path) -> tuple[pd.DataFrame | None, dict]:
    if not path.is_file():
        return None, {}
    return storage.read_parquet(path), storage.read_provenance(path) or {}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class _Fetcher:
    def __init__(self, client: TushareClient, directory: Path, log: logging.Logger):
        self.client, self.directory, self.log = client, directory, log
        self.requests = 0

    def ask(self, name: str, params: dict) -> tuple[pd.DataFrame, dict]:
        endpoint = ENDPOINTS[name]
        before = self.client.calls
        frame = _typed(name, self.client.query(name, params, ",".join(endpoint.fields), endpoint.page_size))
        self.requests += self.client.calls - before
        return frame, {"params": params, "rows": int(len(frame)), "fetched_at": _now(), "calls": self.client.calls - before}

    def save(self, name: str, frame: pd.DataFrame, requests: list[dict], **extra) -> None:
        provenance = {"endpoint": name, "fields": list(ENDPOINTS[name].fields), "rows": int(len(frame)),
                      "requests": requests, **extra}
        storage.write_parquet(frame, self.directory / f"{name}.parquet", provenance)


def _calendar(fetcher: _Fetcher, period: pd.Period) -> pd.DataFrame | None:
    """The month's stored trade_cal, fetched when missing; None while Tushare has none for it."""
    calendar, _ = _stored(fetcher.directory / "trade_cal.parquet")
    if calendar is None:
        params = {"exchange": "SSE", "start_date": period.start_time.strftime("%Y%m%d"),
                  "end_date": period.end_time.strftime("%Y%m%d")}
        calendar, request = fetcher.ask("trade_cal", params)
        if calendar.empty:
            return None
        fetcher.save("trade_cal", calendar, [request])
        write_calendar(fetcher.directory.parent)
    return calendar


def fetch_month(client: TushareClient, raw_dir: Path, month: str, through, log: logging.Logger | None = None) -> dict:
    """Fetch what ``month`` lacks, up to the date ``through``; return {"requests": n, "new_dates": {...}}."""
    log = log or client.log
    period = session_calendar.parse_month(month)
    directory = Path(raw_dir) / month
    fetcher = _Fetcher(client, directory, log)
    summary = {"month": month, "requests": 0, "new_dates": {}}
    through = min(pd.Timestamp(through).normalize(), period.end_time.normalize())
    if through < period.start_time:
        return summary

    calendar = _calendar(fetcher, period)
    if calendar is None:
        raise ValueError(f"Tushare has no trade calendar for {month} yet")
    # The next month's sessions too, so that past exchange-calendars' horizon the partial-month sensor
    # knows the sessions of the month it refreshes before any of its bars are fetched.
    following = _Fetcher(client, Path(raw_dir) / (period + 1).strftime("%Y-%m"), log)
    _calendar(following, period + 1)
    fetcher.requests += following.requests
    open_days = sorted(d for d, o in zip(calendar["cal_date"], calendar["is_open"]) if o == 1.0)
    wanted = [d for d in open_days if d <= through.strftime("%Y%m%d")]

    for name in DAY_ENDPOINTS:
        stored, meta = _stored(directory / f"{name}.parquet")
        have = set(meta.get("dates", []))
        frames, requests, got = [stored] if stored is not None else [], list(meta.get("requests", [])), []
        for day in (d for d in wanted if d not in have):
            frame, request = fetcher.ask(name, {"trade_date": day})
            if frame.empty:
                log.info(f"Tushare {name} has no rows for {day} yet; it is asked again on the next fetch")
                continue
            frames.append(frame)
            requests.append(request)
            got.append(day)
        if got:
            merged = pd.concat(frames, ignore_index=True)
            fetcher.save(name, merged, requests, dates=sorted(have | set(got)))
            summary["new_dates"][name] = got
        if name == "daily":
            wanted = sorted(have | set(got))  # the other day endpoints follow the days that have bars

    summary["requests"] = fetcher.requests
    if fetcher.requests:
        log.info(f"Tushare {month} through {through.date()}: {fetcher.requests} requests, new days {summary['new_dates']}")
    return summary


def _newest_day(raw_dir: Path) -> str | None:
    days = [d for m in months_stored(raw_dir) for d in (_stored(raw_dir / m / "daily.parquet")[1].get("dates") or [])]
    return max(days) if days else None


def fetch_snapshots(client: TushareClient, raw_dir: Path, log: logging.Logger | None = None) -> int:
    """Take the snapshots again when the stored days have grown since they were taken; the requests made."""
    log = log or client.log
    latest = _newest_day(Path(raw_dir))
    fetcher = _Fetcher(client, Path(raw_dir) / SNAPSHOT_DIR, log)
    for name, variants in SNAPSHOTS.items():
        _, meta = _stored(fetcher.directory / f"{name}.parquet")
        if latest is None or meta.get("through", "") >= latest:
            continue
        parts, requests = [], []
        for params in variants:
            frame, request = fetcher.ask(name, dict(params))
            if name == "index_member_all" and request["calls"] > 1:
                log.warning(f"Tushare index_member_all{params} took {request['calls']} pages: the service does not "
                            "guarantee their order, so a row may be missing or repeated (repeats are dropped and counted)")
            parts.append(frame)
            requests.append(request)
        fetcher.save(name, pd.concat(parts, ignore_index=True), requests, through=latest)
    uncovered = _without_membership(fetcher.directory)
    if uncovered:
        shown = ", ".join(uncovered[:20]) + (f" and {len(uncovered) - 20} more" if len(uncovered) > 20 else "")
        log.warning(f"{len(uncovered)} listed stocks have no Shenwan level-1 membership: {shown}; they are read as "
                    "unclassified (raw.data_issues)")
    return fetcher.requests


def _without_membership(directory: Path) -> list[str]:
    """Listed stocks of the stored stock_basic without a row in the stored memberships."""
    basic, _ = _stored(directory / "stock_basic.parquet")
    members, _ = _stored(directory / "index_member_all.parquet")
    if basic is None or members is None:
        return []
    listed = basic.loc[basic["list_status"] == "L", "ts_code"]
    return sorted(set(listed) - set(members["ts_code"]))


def fetch_months(client: TushareClient, raw_dir: Path, months: list[str], through, log: logging.Logger | None = None) -> list[dict]:
    """Each month in order up to ``through``, then the snapshots once (:func:`fetch_snapshots`)."""
    summaries = [fetch_month(client, raw_dir, month, through, log) for month in months]
    snapshots = fetch_snapshots(client, raw_dir, log)
    if summaries:
        summaries[-1]["snapshot_requests"] = snapshots
    return summaries


def planned_calls(months: list[str], stored: set[str] = frozenset()) -> int:
    """The requests a fetch of ``months`` makes when none of their days is stored (``stored`` months are skipped):
    three day endpoints per session and one calendar per month, then the snapshots once, one page each."""
    sessions = sum(len(session_calendar.month_sessions(m)) for m in months if m not in stored)
    fresh = sum(1 for m in months if m not in stored)
    return len(DAY_ENDPOINTS) * sessions + fresh + sum(len(v) for v in SNAPSHOTS.values()) * (fresh > 0)


def months_stored(raw_dir: Path) -> list[str]:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        return []
    return sorted(p.name for p in raw_dir.iterdir() if p.is_dir() and _MONTH_DIR.match(p.name))


def write_calendar(raw_dir: Path) -> Path:
    """Every stored month's trade_cal as one file, the calendar file of the tushare source."""
    months = [m for m in months_stored(raw_dir) if (Path(raw_dir) / m / "trade_cal.parquet").is_file()]
    frames = [storage.read_parquet(Path(raw_dir) / m / "trade_cal.parquet") for m in months]
    calendar = pd.concat(frames, ignore_index=True).sort_values("cal_date", kind="stable")
    provenance = {"endpoint": "trade_cal", "rows": int(len(calendar)), "months": months}
    return storage.write_parquet(calendar, Path(raw_dir) / CALENDAR_FILE, provenance)


def stored_tables(raw_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """(tables, labels) for exports.convert: day endpoints over every stored month, and the snapshots."""
    raw_dir = Path(raw_dir)
    months = months_stored(raw_dir)
    tables, labels = {}, {}
    for name in DAY_ENDPOINTS:
        paths = [raw_dir / m / f"{name}.parquet" for m in months if (raw_dir / m / f"{name}.parquet").is_file()]
        if paths:
            labels[name] = f"{raw_dir}/*/{name}.parquet (rows counted across months in order)"
            tables[name] = pd.concat([storage.read_parquet(p) for p in paths], ignore_index=True)
    for name in SNAPSHOTS:
        path = raw_dir / SNAPSHOT_DIR / f"{name}.parquet"
        if path.is_file():
            labels[name], tables[name] = str(path), storage.read_parquet(path)
    missing = [n for n in ("daily", "stock_basic", "index_member_all") if n not in tables]
    if missing:
        raise FileNotFoundError(
            f"nothing fetched from Tushare into {raw_dir} yet ({missing[0]} is missing): materialise raw_bars for a "
            "month with FACTOR_PIPELINE_SOURCE=tushare and TUSHARE_TOKEN set"
        )
    return tables, labels


def stored_fingerprint(raw_dir: Path) -> str:
    """Names, sizes and times of every stored file: what the source cache's key covers."""
    digest = hashlib.sha256()
    for path in sorted(Path(raw_dir).rglob("*.parquet")):
        if path.name.startswith("."):
            continue
        stat = path.stat()
        digest.update(f"{path.relative_to(raw_dir)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]
