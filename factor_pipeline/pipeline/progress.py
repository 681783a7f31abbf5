"""Training progress as log lines: the steps log them (the UI shows them in the step's logs) and
``factor-pipeline backfill`` prints them from the run's event log as they arrive."""

from __future__ import annotations

import time
from collections.abc import Callable

# Every progress line starts with this, so the CLI can tell them from the steps' other log lines.
PREFIX = "progress:"


def is_progress_line(message: str) -> bool:
    return message.startswith(PREFIX)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class TrainingProgress:
    """The callbacks model.store's training takes, writing one line per GRU epoch and per GAN check to ``log``.

    The time left assumes every remaining epoch runs: early stopping can only make it shorter.
    """

    def __init__(self, log: Callable[[str], None], what: str, clock: Callable[[], float] = time.monotonic):
        self.log, self.what, self.clock = log, what, clock
        self.started = clock()

    def _times(self, done: int, total: int) -> str:
        elapsed = self.clock() - self.started
        left = elapsed / done * (total - done) if done else float("nan")
        return f"elapsed {_duration(elapsed)}, about {_duration(left)} left" if done else f"elapsed {_duration(elapsed)}"

    def gru_epoch(self, member: int, members: int, epoch: int, max_epochs: int, val_ic: float) -> None:
        done, total = (member - 1) * max_epochs + epoch, members * max_epochs
        self.log(
            f"{PREFIX} {self.what} GRU member {member}/{members}, epoch {epoch}/{max_epochs}, "
            f"validation IC {val_ic:.4f}, {self._times(done, total)}"
        )

    def gan_step(self, step: int, max_steps: int) -> None:
        self.log(f"{PREFIX} {self.what} GAN step {step}/{max_steps}, {self._times(step, max_steps)}")
