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


def _group_colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["RdYlBu_r"]  # blue for the bottom group, red (A-share up) for the top
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def plot_group_value(gross: pd.DataFrame, net: pd.DataFrame, title: str) -> bytes:
    """Cumulative value of every group (before costs, solid) and of the top group net of costs (dashed)."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    if gross is None or gross.empty:
        return _empty(fig, ax, "no complete month yet")
    months = ["start"] + [str(m) for m in gross.index]
    x = np.arange(len(months))
    for color, group in zip(_group_colors(len(gross.columns)), gross.columns):
        value = np.concatenate([[1.0], np.cumprod(1.0 + gross[group].fillna(0.0).to_numpy())])
        ax.plot(x, value, color=color, linewidth=1.3, label=f"group {group}")
    top = gross.columns.max()
    value = np.concatenate([[1.0], np.cumprod(1.0 + net[top].fillna(0.0).to_numpy())])
    ax.plot(x, value, color="black", linestyle="--", linewidth=1.2, label=f"group {top}, net of costs")
    ax.axhline(1.0, color="black", linewidth=0.6)
    _month_ticks(ax, months)
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_group_means(tables: dict[str, pd.DataFrame]) -> bytes:
    """Mean monthly return of each group, one set of bars per factor."""
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    tables = {name: t for name, t in tables.items() if t is not None and len(t)}
    if not tables:
        return _empty(fig, ax, "no complete month yet")
    width = 0.8 / len(tables)
    for i, (name, table) in enumerate(tables.items()):
        x = table.index.to_numpy(dtype=float) + (i - (len(tables) - 1) / 2) * width
        ax.bar(x, table["mean_return"].to_numpy() * 100, width=width, label=name)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("group (1 = lowest factor)")
    ax.set_ylabel("mean monthly return, %")
    ax.set_title("Mean return by group")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_ic_decay(decays: dict[str, pd.DataFrame]) -> bytes:
    """Mean IC against the horizon in sessions (lines), and against later months' returns (lag 1, 2)."""
    fig = Figure(figsize=(10, 4))
    horizon_ax, lag_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    drawn = False
    for name, frame in decays.items():
        if frame is None or frame.empty:
            continue
        h = frame[frame["lag_months"] == 0]
        horizon_ax.plot(h["horizon_sessions"].astype(float), h["ic"], marker="o", label=name)
        lags = frame[frame["lag_months"] > 0]
        lag_ax.plot(lags["lag_months"], lags["ic"], marker="o", label=name)
        drawn = True
    if not drawn:
        return _empty(fig, horizon_ax, "no decay yet")
    horizon_ax.axhline(0.0, color="black", linewidth=0.6)
    lag_ax.axhline(0.0, color="black", linewidth=0.6)
    horizon_ax.set_xlabel("sessions after the rebalance date")
    horizon_ax.set_ylabel("mean IC")
    horizon_ax.set_title("IC decay")
    horizon_ax.legend(loc="best", fontsize=8)
    lag_ax.set_xlabel("months of lag")
    lag_ax.set_xticks([1, 2])
    lag_ax.set_title("Next months' return")
    fig.tight_layout()
    return _png(fig)


def plot_ic_heatmap(ic: pd.DataFrame) -> bytes:
    """Monthly IC as a year x calendar-month grid."""
    fig = Figure(figsize=(10, 3.5))
    ax = fig.add_subplot()
    if ic is None or ic.empty:
        return _empty(fig, ax, "no IC yet")
    months = ic["month"].astype(str)
    grid = pd.DataFrame({"year": months.str[:4], "m": months.str[5:7].astype(int), "ic": ic["ic"].astype(float)})
    grid = grid.pivot_table(index="year", columns="m", values="ic", aggfunc="mean").reindex(columns=range(1, 13))
    limit = max(0.05, float(np.nanmax(np.abs(grid.to_numpy()))) if grid.notna().any().any() else 0.05)
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (row, col), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(12))
    ax.set_xticklabels([str(m) for m in range(1, 13)])
    ax.set_yticks(range(len(grid.index)))
    ax.set_yticklabels(list(grid.index))
    ax.set_title("Monthly IC")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return _png(fig)


def plot_ic_histogram(ic: pd.DataFrame) -> bytes:
    """The distribution of the monthly IC, its mean marked."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    values = ic["ic"].astype(float).dropna().to_numpy() if ic is not None and len(ic) else np.array([])
    if len(values) == 0:
        return _empty(fig, ax, "no IC yet")
    ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="#2e86c1", edgecolor="white")
    ax.axvline(values.mean(), color="#c0392b", label=f"mean {values.mean():.4f}")
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("monthly IC")
    ax.set_ylabel("months")
    ax.set_title("IC distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_style_exposure(exposure: pd.DataFrame) -> bytes:
    """Mean rank correlation of each factor with each style, one set of horizontal bars per factor."""
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    if exposure is None or exposure.empty:
        return _empty(fig, ax, "no style exposure yet")
    y = np.arange(len(exposure.index))
    height = 0.8 / len(exposure.columns)
    for i, column in enumerate(exposure.columns):
        ax.barh(y + (i - (len(exposure.columns) - 1) / 2) * height, exposure[column].fillna(0.0), height=height, label=column)
    ax.set_yticks(y)
    ax.set_yticklabels(list(exposure.index), fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("mean rank correlation")
    ax.set_title("Style exposure")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _png(fig)
