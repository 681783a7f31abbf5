-- features.samples: every listed stock on every sample date, its universe flags and its label, NULL until known.
-- The label is the forward 20-session return on adjusted closes (the last close at or before the 20th session),
-- known once that session is in raw.daily_bars; the pipeline itself computes labels point-in-time in Python.
CREATE OR REPLACE VIEW features.samples AS
WITH samples AS (
    SELECT * FROM read_parquet({samples}, union_by_name = true)
),
closes AS (
    SELECT ts_code, trade_date, close * adj_factor AS adj_close
    FROM raw.daily_bars
    WHERE volume > 0
),
targets AS (
    SELECT samples.*, horizon.trade_date AS label_end
    FROM samples
    JOIN raw.sessions AS start_session ON start_session.trade_date = samples.trade_date
    LEFT JOIN raw.sessions AS horizon ON horizon.session_index = start_session.session_index + 20
)
SELECT
    targets.* EXCLUDE (label_end),
    CASE
        WHEN targets.label_end <= (SELECT max(trade_date) FROM raw.daily_bars)
         AND last_close.trade_date > targets.trade_date
        THEN last_close.adj_close / start_close.adj_close - 1
    END AS label
FROM targets
LEFT JOIN closes AS start_close
    ON start_close.ts_code = targets.ts_code AND start_close.trade_date = targets.trade_date
ASOF LEFT JOIN closes AS last_close
    ON last_close.ts_code = targets.ts_code AND last_close.trade_date <= targets.label_end;
