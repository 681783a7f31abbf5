from factor_pipeline.pipeline.progress import TrainingProgress, is_progress_line


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_gru_epoch_line_names_member_epoch_ic_elapsed_and_time_left():
    lines, clock = [], _Clock()
    progress = TrainingProgress(lines.append, "gru_checkpoint 2024-06 (trains 2024-06)", clock)
    clock.t += 30  # member 1 of 2, epoch 3 of 10: 3 of 20 epochs in 30 s, so 17 more take at most 170 s
    progress.gru_epoch(1, 2, 3, 10, 0.04123)
    assert lines == [
        "progress: gru_checkpoint 2024-06 (trains 2024-06) GRU member 1/2, epoch 3/10, validation IC 0.0412, "
        "elapsed 30s, about 2m50s left"
    ]
    clock.t += 90  # member 2, epoch 2: 12 of 20 epochs in 120 s
    progress.gru_epoch(2, 2, 2, 10, -0.01)
    assert lines[-1].endswith("member 2/2, epoch 2/10, validation IC -0.0100, elapsed 2m00s, about 1m20s left")
    assert all(is_progress_line(line) for line in lines)


def test_a_gan_line_names_the_step_and_time_left():
    lines, clock = [], _Clock()
    progress = TrainingProgress(lines.append, "gan_model 2024-06 (trains 2024-06)", clock)
    clock.t += 4
    progress.gan_step(10, 30)
    assert lines == ["progress: gan_model 2024-06 (trains 2024-06) GAN step 10/30, elapsed 4s, about 8s left"]
    assert not is_progress_line("epoch 1: train loss 0.1, val IC 0.02")
