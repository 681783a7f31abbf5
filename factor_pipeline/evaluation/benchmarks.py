"""Index benchmarks and pools (docs/metrics.md, "Index benchmarks").

A source with index weights (the input file ``index_weight``) gives each index's constituents and weights as
published on or before d(m). The embedded market has no index data, so it builds CSI 300, CSI 500 and CSI 1000 by their rule from its own
float caps on each rebalance date: the largest 300 of about 5,000 names, the next 500, the next 1,000; a market of
another size takes the same shares (6%, 10%, 20%), so the 400-name demo still has three pools. Each index is
weighted by float cap on d(m) and held to d(m+1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factor_pipeline.evaluation.metrics import pair_count, spearman
from factor_pipeline.evaluation.portfolio import top_group
from factor_pipeline.stats import pearson

REFERENCE_MARKET = 5000
# (code, name, names ranked above it, its size) on the reference market.
INDEX_RULES = {
    "000300.SH": ("CSI 300", 0, 300),
    "000905.SH": ("CSI 500", 300, 500),
    "000852.SH": ("CSI 1000", 800, 1000),
}
INDEX_COLUMNS = [
    "month", "factor", "index_code", "n_stocks", "index_return", "long_excess", "ic", "rank_ic",
    "pool_long_return", "pool_long_excess",
]


def index_name(code: str) -> str:
    return INDEX_RULES[code][0] if code in INDEX_RULES else code


def pools(table: pd.DataFrame, codes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Boolean masks over ``table``'s rows: each index's constituents by float cap on d(m) (ts_code breaks ties)."""
    n = len(table)
    order = table.assign(_cap=table["log_float_mcap"].astype("float64")).sort_values(
        ["_cap", "ts_code"], ascending=[False, True], kind="mergesort", na_position="last"
    )
    rank = pd.Series(np.arange(n), index=order.index).reindex(table.index).to_numpy()
    has_cap = table["log_float_mcap"].notna().to_numpy()
    out = {}
    for code in codes:
        _, above, size = INDEX_RULES[code]
        first, last = round(n * above / REFERENCE_MARKET), round(n * (above + size) / REFERENCE_MARKET)
        out[code] = has_cap & (rank >= first) & (rank < last)
    return out


def published_pools(table: pd.DataFrame, index_weight: pd.DataFrame, codes: tuple[str, ...]) -> tuple[dict, dict]:
    """Masks over ``table``'s rows and log weights from the source's index weights as of d(m)
    (``market.store.weights_as_of``): a constituent outside U(m) is not in the pool."""
    masks, log_weights = {}, {}
    for code in codes:
        weights = index_weight[index_weight["index_code"] == code].set_index("con_code")["weight"]
        mapped = table["ts_code"].map(weights).to_numpy(dtype="float64")
        masks[code] = np.isfinite(mapped)
        log_weights[code] = np.log(mapped)
    return masks, log_weights


def index_return(fwd_return: np.ndarray, log_weight: np.ndarray) -> float:
    """Weighted return of the constituents that have one, weights exp(log_weight) (float caps, or the source's
    published weights) normalised over them."""
    keep = np.isfinite(fwd_return) & np.isfinite(log_weight)
    if not keep.any():
        return np.nan
    weight = np.exp(log_weight[keep] - log_weight[keep].max())
    return float(np.sum(weight * fwd_return[keep]) / np.sum(weight))


def index_rows(month: str, factor_name: str, panel: pd.DataFrame, log_weights: dict[str, np.ndarray], long_return: float,
               masks: dict[str, np.ndarray], n_groups: int) -> list[dict]:
    """One row per index: its return, the long group's excess over it, and the IC and long group inside the pool."""
    rows = []
    r = panel["fwd_return"].to_numpy(dtype="float64")
    for code, mask in masks.items():
        pool = panel[mask]
        bench = index_return(r[mask], log_weights[code][mask])
        top = top_group(pool, n_groups)
        pool_long = pool.loc[pool["ts_code"].astype(str).isin(top), "fwd_return"].mean()
        rows.append(
            {
                "month": month, "factor": factor_name, "index_code": code,
                "n_stocks": pair_count(pool["factor"], pool["fwd_return"]), "index_return": bench,
                "long_excess": long_return - bench, "ic": pearson(pool["factor"], pool["fwd_return"]),
                "rank_ic": spearman(pool["factor"], pool["fwd_return"]),
                "pool_long_return": float(pool_long), "pool_long_excess": float(pool_long) - bench,
            }
        )
    return rows
