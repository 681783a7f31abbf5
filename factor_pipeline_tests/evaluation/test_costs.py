import numpy as np
import pandas as pd
import pytest

from factor_pipeline.config import ConfigError, EvaluationConfig, profile_config
from factor_pipeline.evaluation import costs
from factor_pipeline.market.trading_rules import stamp_duty_rate


def test_stamp_duty_halves_from_2023_08_28():
    rates = stamp_duty_rate(["2008-09-19", "2023-08-25", "2023-08-27", "2023-08-28", "2024-06-28"])
    assert rates.tolist() == [0.001, 0.001, 0.001, 0.0005, 0.0005]


def test_monthly_cost_charges_both_sides_and_stamp_duty_on_sells_only():
    cfg = EvaluationConfig(commission=0.0003, slippage=0.001)
    turnover = pd.Series([np.nan, 0.4, 0.4, 0.0])
    dates = pd.to_datetime(["2023-06-30", "2023-07-31", "2023-08-31", "2023-09-28"])
    cost = costs.monthly_cost(turnover, dates, cfg)
    side = 0.0013
    assert cost.tolist() == pytest.approx([
        1.0 * side,  # bought from cash: no sale, no stamp duty
        0.4 * side + 0.4 * (side + 0.001),
        0.4 * side + 0.4 * (side + 0.0005),  # the halved duty
        0.0,
    ])


def test_net_returns_and_value():
    cfg = EvaluationConfig(commission=0.0, slippage=0.0)
    frame = pd.DataFrame({"mean_return": [0.1, -0.05], "turnover": [np.nan, 1.0],
                          "rebalance_date": pd.to_datetime(["2022-01-28", "2022-02-28"])})
    net = costs.net_returns(frame, cfg)
    assert net.tolist() == pytest.approx([0.1, -0.05 - 0.001])  # stamp duty alone
    assert costs.net_value(net).tolist() == pytest.approx([1.0, 1.1, 1.1 * (1 - 0.051)])


@pytest.mark.parametrize(
    "section, message",
    [
        ({"evaluation": {"commission": -0.001}}, "evaluation.commission=-0.001 is a cost"),
        ({"evaluation": {"slippage": -1.0}}, "evaluation.slippage=-1.0 is a cost"),
        ({"evaluation": {"indices": ("000300.SH", "399006.SZ")}}, r"unknown index code\(s\) \['399006.SZ'\]"),
        ({"factor": {"n_groups": 1}}, "factor.n_groups=1 must be at least 2"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(section, message):
    with pytest.raises(ConfigError, match=message):
        profile_config("smoke").replace(**section)


def test_the_evaluation_settings_change_no_stored_artefact():
    cfg = profile_config("demo")
    other = cfg.replace(evaluation={"commission": 0.001, "indices": ("000300.SH",)})
    assert other.to_dict() == cfg.to_dict() and other.fingerprint() == cfg.fingerprint()
    assert cfg.to_dict()["factor"]["cost_per_turnover"] == 0.003  # the retired flat cost keeps fingerprints
