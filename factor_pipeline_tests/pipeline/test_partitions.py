import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from factor_pipeline.pipeline import checks, partitions, schedules

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    "moment, month",
    [
        # 01:00 on 1 March in Shanghai is still 29 February in UTC: the month just ended is February.
        (dt.datetime(2024, 2, 29, 17, tzinfo=dt.timezone.utc), "2024-02"),
        # 23:00 on 31 March in Shanghai: March has not ended yet.
        (dt.datetime(2024, 3, 31, 15, tzinfo=dt.timezone.utc), "2024-02"),
        (dt.datetime(2025, 1, 1, 0, tzinfo=SHANGHAI), "2024-12"),
        (dt.datetime(2024, 7, 1, 6), "2024-06"),  # a naive moment is Shanghai time
    ],
)
def test_the_month_just_ended_is_read_in_shanghai_time(moment, month):
    assert partitions.month_just_ended(moment) == month
    # The independent reading: Shanghai has been UTC+8 without daylight saving since 1991.
    if moment.tzinfo:
        local = moment.astimezone(dt.timezone(dt.timedelta(hours=8)))
        first = local.replace(day=1)
        assert (first - dt.timedelta(days=1)).strftime("%Y-%m") == month


def test_the_lateness_check_and_the_schedules_share_one_definition():
    assert checks.month_just_ended is schedules.month_just_ended is partitions.month_just_ended
    assert schedules.TIMEZONE == partitions.TIMEZONE == "Asia/Shanghai"
