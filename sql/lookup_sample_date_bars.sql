-- Each listed stock's last bar on or before each sample date, for the point-in-time universe flags.
WITH flagged AS (
    -- Volume-0 rows still carry the ST flag and the industry of a halted day.
    SELECT ts_code, trade_date, is_st, industry
    FROM daily
),
traded AS (
    SELECT ts_code, trade_date, close, pre_close, float_shares
    FROM daily
    WHERE volume > 0
)
SELECT
    c.row_id,
    COALESCE(f.is_st, FALSE) AS is_st,
    f.industry,
    COALESCE(b.trade_date = c.trade_date, FALSE) AS is_trading,
    b.close,
    b.pre_close,
    -- Size uses the last traded close (unadjusted: a market value), also for a halted stock.
    CASE WHEN b.close > 0 AND b.float_shares > 0 THEN ln(b.close * b.float_shares) END AS log_float_mcap
FROM candidates AS c
ASOF LEFT JOIN flagged AS f
    ON f.ts_code = c.ts_code AND c.trade_date >= f.trade_date
ASOF LEFT JOIN traded AS b
    ON b.ts_code = c.ts_code AND c.trade_date >= b.trade_date
ORDER BY c.row_id
