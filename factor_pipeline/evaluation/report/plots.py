"""The report's figures as PNG bytes.

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot: no global
state, safe in a Dagster worker thread) at a fixed dpi and without the "Software" PNG tag, so the same
data gives the same bytes and an unchanged report does not look changed.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from factor_pipeline.evaluation.metrics import ONE_YEAR_MONTHS, one_year_window
from factor_pipeline.market.trading_rules import EXCLUDED_FROM_ATTRIBUTION

DPI = 100
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" tag: its matplotlib version would change the bytes without changing the figure.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _empty(fig: Figure, ax, message: str) -> bytes:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _png(fig)


def _month_ticks(ax, months: list[str]) -> None:
    # About a dozen labels whatever the length of the history, so that they never overlap.
    step = max(1, math.ceil(len(months) / 12))
    ticks = list(range(0, len(months), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([months[i] for i in ticks], rotation=45, ha="right", fontsize=8)


def plot_ic(ic: pd.DataFrame) -> bytes:
    """Monthly IC bars (a partial month hatched) and the cumulative IC on a second axis."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    frame = ic.sort_values("month", kind="mergesort") if len(ic) else ic
    if len(frame) == 0:
        return _empty(fig, ax, "no IC yet")
    months = frame["month"].astype(str).tolist()
    values = frame["ic"].astype("float64").to_numpy()
    x = np.arange(len(months))
    colors = np.where(np.nan_to_num(values) >= 0, "#c0392b", "#2e86c1")  # A-share red = up
    bars = ax.bar(x, np.nan_to_num(values), color=colors, width=0.8, label="monthly IC")
    if "complete" in frame.columns:
        for bar, complete in zip(bars, frame["complete"].astype("boolean").fillna(True)):
            if not complete:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("IC")
    twin = ax.twinx()
    twin.plot(x, np.nancumsum(values), color="#34495e", linewidth=1.5, label="cumulative IC")
    twin.set_ylabel("cumulative IC")
    _month_ticks(ax, months)
    ax.set_title("Monthly IC and cumulative IC")
    handles = [bars, twin.get_lines()[0]]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_nav(portfolio: pd.DataFrame) -> bytes:
    """NAV of the long portfolio, the benchmark and the excess return, complete months only
    (the same months as the return statistics)."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    frame = portfolio
    if len(frame) and "complete" in frame.columns:
        frame = frame[frame["complete"].astype("boolean").fillna(False).astype(bool)]
    frame = frame.sort_values("month", kind="mergesort") if len(frame) else frame
    if len(frame) == 0:
        return _empty(fig, ax, "no complete month yet")
    months = frame["month"].astype(str).tolist()
    x = np.arange(len(months) + 1)  # position 0 is NAV(0) = 1, before the first month
    labels = ["start"] + months
    for column, name, color in (
        ("long_return", "long (top group)", "#c0392b"),
        ("benchmark_return", "benchmark (equal-weight universe)", "#7f8c8d"),
        ("excess_return", "excess", "#2e86c1"),
    ):
        growth = np.concatenate([[1.0], np.cumprod(1.0 + frame[column].astype("float64").fillna(0.0).to_numpy())])
        ax.plot(x, growth, label=name, color=color, linewidth=1.5)
    ax.axhline(1.0, color="black", linewidth=0.6)
    _month_ticks(ax, labels)
    ax.set_ylabel("NAV")
    ax.set_title("Net asset value (before costs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_industry_ic(industry_ic: pd.DataFrame) -> bytes:
    """Industry IC of the latest month beside its mean over the year to it (metrics.one_year_window), one pair
    of bars per industry (Conglomerates excluded), sorted by that mean."""
    fig = Figure(figsize=(10, 7))
    ax = fig.add_subplot()
    frame = industry_ic[industry_ic["industry"] != EXCLUDED_FROM_ATTRIBUTION] if len(industry_ic) else industry_ic
    if len(frame) == 0:
        return _empty(fig, ax, "no industry IC yet")
    months = frame["month"].astype(str)
    latest = months.max()
    year = frame[one_year_window(months, latest)].groupby("industry")["ic"].mean()
    last = frame[months == latest].set_index("industry")["ic"].reindex(year.index)
    order = year.sort_values(kind="mergesort").index
    y = np.arange(len(order))
    latest_values = np.nan_to_num(last.reindex(order).to_numpy())
    year_values = np.nan_to_num(year.reindex(order).to_numpy())
    ax.barh(y - 0.2, latest_values, height=0.4, color="#c0392b", label=f"latest month ({latest})")
    ax.barh(y + 0.2, year_values, height=0.4, color="#2e86c1", label=f"mean of {ONE_YEAR_MONTHS} months")
    ax.set_yticks(y)
    ax.set_yticklabels(list(order), fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("IC (industries with fewer than the minimum pairs show no bar)")
    ax.set_title("Industry IC (SW level 1)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_curves(curves: dict[str, list[float]], title: str) -> bytes:
    """Training curves (GAN losses per step, GRU loss and validation IC per epoch) on one axis.

    Each curve is drawn against its own index (step or epoch), so curves of different lengths can
    share the figure; NaN points leave gaps rather than failing.
    """
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    drawn = False
    for name, values in curves.items():
        y = np.asarray(list(values) if values is not None else [], dtype="float64")
        if len(y):
            ax.plot(np.arange(len(y)), y, label=str(name), linewidth=1.2)
            drawn = True
    if not drawn:
        return _empty(fig, ax, "no values")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _png(fig)
