"""pipeline/backfill_daemon.py: when the command's pollers keep quiet."""

from types import SimpleNamespace

import dagster as dg

from factor_pipeline.pipeline import backfill_daemon


def _run(*assets):
    return SimpleNamespace(asset_selection={dg.AssetKey(asset) for asset in assets} if assets else None)


def test_a_training_run_in_flight_quietens_the_pollers():
    assert backfill_daemon.training_in_flight([_run("features"), _run("gru_checkpoint")])
    assert backfill_daemon.training_in_flight([_run("gan_model", "gru_checkpoint")])
    assert not backfill_daemon.training_in_flight([_run("raw_bars", "features"), _run(), _run("pret_factor")])
    assert not backfill_daemon.training_in_flight([])


def test_the_run_queue_is_quiet_only_while_a_training_run_is_in_flight(monkeypatch):
    in_flight = []
    monkeypatch.setattr(backfill_daemon.dagster_internals, "runs_in_flight", lambda instance: in_flight)
    assert backfill_daemon.quiet_while_training(None) is None
    in_flight.append(_run("gru_checkpoint"))
    assert backfill_daemon.quiet_while_training(None) == backfill_daemon.QUIET_SECONDS > backfill_daemon.DAEMON_INTERVAL_SECONDS
