"""report/tables.py: the seed's table for a terminal, formatted like the seed."""

from factor_pipeline.evaluation.report.tables import format_table

# The seed's headline figures (seed-report-2026-03.txt), as summarize() would return them.
SEED = {
    "first_month": "2019-01",
    "last_month": "2026-01",
    "n_months": 85,
    "n_return_months": 84,
    "ic_mean": 0.1096,
    "rank_ic_mean": 0.1201,
    "icir": 0.87,
    "turnover": 0.82,
    "latest_month": "2026-01",
    "latest_ic": -0.0105,
    "latest_as_of": "2026-02-25",
    "latest_complete": False,
    "one_year_ic": 0.0517,
    "annual_return": 0.3813,
    "annual_volatility": 0.2318,
    "ir": 0.3813 / 0.2318,
    "max_drawdown": 0.2729,
    "annual_excess_return": 0.2232,
    "excess_ir": 1.9,
    "costs": {"commission": 0.00025, "slippage": 0.0005},
    "net_annual_return": 0.33,
    "oracle_ic_mean": None,
    "efficiency": None,
    "industry_ic_latest": [("Utilities", 0.1257), ("Retail", 0.1196), ("Real Estate", 0.1151),
                           ("Construction", 0.1130), ("Basic Chemicals", 0.1063)],
    "industry_ic_1y": [("Steel", 0.1404), ("Computers", 0.1175), ("Media", 0.1132), ("Retail", 0.1014),
                       ("Food & Beverage", 0.0989)],
    "industry_excess_latest": [("Oil & Petrochemicals", 0.0791), ("Communications", 0.0311),
                               ("Electronics", 0.0306), ("Non-ferrous Metals", 0.0278), ("Computers", 0.0278)],
    "industry_excess_1y": [("Real Estate", 0.0383), ("Retail", 0.0204), ("Automobiles", 0.0193),
                           ("Construction", 0.0150), ("Consumer Services", 0.0149)],
}
BASELINE = {**SEED, "ic_mean": 0.0412, "icir": float("nan"), "annual_return": None}


def test_table_formats_like_the_seed():
    text = format_table(SEED, {"reversal_20d": BASELINE})
    for figure in ("0.1096", "0.87", "0.82X", "-0.0105", "0.0517", "38.13%", "23.18%", "1.64", "27.29%", "22.32%"):
        assert figure in text, figure
    assert "as of 2026-02-25" in text and "GAN_GRU" in text and "reversal_20d" in text
    assert "Oracle" not in text and "Truth" not in text  # no oracle, no truth: the rows are left out
    ic_line = next(line for line in text.splitlines() if line.startswith("IC mean"))
    assert ic_line.split()[-2:] == ["0.1096", "0.0412"]
    icir_line = next(line for line in text.splitlines() if line.startswith("ICIR"))
    assert icir_line.split()[-2:] == ["0.87", "-"]  # undefined figures print as '-'
    assert "1. Utilities  0.1257" in text and "1. Oil & Petrochemicals  7.91%" in text


def test_table_shows_oracle_when_present():
    text = format_table({**SEED, "oracle_ic_mean": 0.2345, "efficiency": 0.467})
    assert "0.2345" in text and "0.47" in text


def test_table_puts_the_truth_correlation_first_with_its_paired_gap_per_baseline():
    truth = {"mean": 0.5261, "se": 0.0241, "months": 12}
    reversal = {**BASELINE, "truth_corr": {"mean": 0.4757, "se": 0.0203, "months": 12},
                "truth_corr_gap": {"mean": 0.0504, "se": 0.0262, "months": 12}}
    worse = {**BASELINE, "truth_corr": {"mean": 0.61, "se": 0.02, "months": 12},
             "truth_corr_gap": {"mean": -0.0839, "se": 0.011, "months": 12}}
    lines = format_table({**SEED, "truth_corr": truth}, {"reversal_20d": reversal, "other": worse}).splitlines()
    assert lines[3].startswith("Truth correlation mean") and lines[3].split()[-9:] == [
        "0.526", "±", "0.024", "0.476", "±", "0.020", "0.610", "±", "0.020"]
    assert lines[4].startswith("Truth correlation, GAN_GRU minus this (paired)")
    assert lines[4].split()[-7:] == ["-", "+0.050", "±", "0.026", "-0.084", "±", "0.011"]
    assert lines[5].startswith("IC mean")
