"""report/plots.py: the figures as deterministic PNG bytes."""

import numpy as np
import pandas as pd
import pytest

from factor_pipeline.evaluation.report.plots import PNG_MAGIC, plot_curves, plot_ic, plot_industry_ic, plot_nav


def eval_frames(n=30):
    rng = np.random.default_rng(0)
    months = [str(p) for p in pd.period_range("2023-08", periods=n, freq="M")]
    ic = pd.DataFrame({"month": months, "ic": rng.normal(0.05, 0.1, n), "complete": [True] * (n - 1) + [False]})
    long = rng.normal(0.02, 0.06, n)
    bench = rng.normal(0.01, 0.05, n)
    portfolio = pd.DataFrame({"month": months, "long_return": long, "benchmark_return": bench,
                              "excess_return": long - bench, "complete": ic.complete})
    industry = pd.DataFrame([{"month": m, "industry": k, "ic": rng.normal(0.05, 0.1)}
                             for m in months for k in ("Banks", "Steel", "Food & Beverage", "Conglomerates")])
    return ic, portfolio, industry


@pytest.mark.parametrize("plot,which", [(plot_ic, 0), (plot_nav, 1), (plot_industry_ic, 2)])
def test_plots_are_deterministic_pngs(plot, which):
    frame = eval_frames()[which]
    data = plot(frame)
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert plot(frame) == data  # same data, same bytes
    empty = plot(frame.iloc[0:0])
    assert empty.startswith(PNG_MAGIC)


def test_plot_curves_of_different_lengths():
    data = plot_curves({"generator": [1.0, 0.8, np.nan, 0.7], "discriminator": [0.7, 0.69]}, "GAN losses")
    assert data.startswith(PNG_MAGIC)
    assert plot_curves({"empty": []}, "nothing").startswith(PNG_MAGIC)
