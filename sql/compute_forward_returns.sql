-- Forward return of each target: adjusted close on start_date to the last adjusted close on or before end_date.
WITH traded AS (
    SELECT ts_code, trade_date, close * adj_factor AS adj_close
    FROM daily
    WHERE volume > 0
)
SELECT
    t.target_row,
    -- The ASOF match is the last traded day <= end_date: a stock halted at end_date keeps its last
    -- close before the halt, a delisted one its final close; a match not after start_date means
    -- there was no close after the start at all, so there is no return.
    CASE
        WHEN last_bar.trade_date > t.start_date
        THEN last_bar.adj_close / NULLIF(start_bar.adj_close, 0) - 1
    END AS forward_return
FROM targets AS t
LEFT JOIN traded AS start_bar
    ON start_bar.ts_code = t.ts_code AND start_bar.trade_date = t.start_date
ASOF LEFT JOIN traded AS last_bar
    ON last_bar.ts_code = t.ts_code AND t.end_date >= last_bar.trade_date
ORDER BY t.target_row
