-- Eighteen volume-price features of every stock's traded days in one month, on adjusted prices.
WITH traded AS (
    -- A volume-0 row is a suspended day: it must not enter a stock's own series of traded days.
    SELECT
        ts_code,
        trade_date,
        open * adj_factor AS adj_open,
        high * adj_factor AS adj_high,
        low * adj_factor AS adj_low,
        close * adj_factor AS adj_close,
        pre_close * adj_factor AS adj_pre_close,
        amount / volume * adj_factor AS adj_vwap,
        volume,
        amount,
        volume / NULLIF(float_shares, 0) AS turnover_rate
    FROM daily
    WHERE volume > 0
),
history AS (
    -- Windows run over the stock's own traded days, so a halt neither shortens a window nor adds
    -- zero-volume days to it; the month filter comes only after them, so lags reach into the
    -- months read before the partition.
    SELECT
        *,
        -- The exchange's pre_close stands in where the previous traded day lies before the bars
        -- read (the listing day, a halt longer than the look-back); both are dividend-consistent.
        COALESCE(LAG(adj_close) OVER stock_days, adj_pre_close) AS prev_close,
        -- Ratios compare today with the days before it (the A-share "volume ratio" convention),
        -- so today's own spike is not averaged into its reference. list_avg sums the frame in
        -- day order: AVG() OVER sums through a segment tree whose nodes are aligned to the whole
        -- sorted input, so its last bits would change with rows of other stocks or later days.
        list_avg(list(volume) OVER (stock_days ROWS BETWEEN 5 PRECEDING AND 1 PRECEDING)) AS volume_mean_5,
        list_avg(list(turnover_rate) OVER (stock_days ROWS BETWEEN 20 PRECEDING AND 1 PRECEDING)) AS turnover_mean_20
    FROM traded
    WINDOW stock_days AS (PARTITION BY ts_code ORDER BY trade_date)
)
SELECT
    ts_code,
    trade_date,
    $month AS month,
    adj_close AS close,
    adj_open AS open,
    adj_high AS high,
    adj_low AS low,
    adj_vwap AS vwap,
    volume,
    amount,
    turnover_rate,
    adj_close / NULLIF(prev_close, 0) - 1 AS ret,
    -- Guarded so a corrupt non-positive price yields NULL rather than -inf.
    CASE WHEN adj_close > 0 AND prev_close > 0 THEN ln(adj_close / prev_close) END AS log_ret,
    adj_close / NULLIF(adj_open, 0) - 1 AS intraday_ret,
    adj_open / NULLIF(prev_close, 0) - 1 AS overnight_ret,
    -- Ranges are scaled by the previous close, as the exchanges' amplitude is, so they read as returns.
    (adj_high - adj_low) / NULLIF(prev_close, 0) AS amplitude,
    (adj_high - greatest(adj_open, adj_close)) / NULLIF(prev_close, 0) AS upper_shadow,
    (least(adj_open, adj_close) - adj_low) / NULLIF(prev_close, 0) AS lower_shadow,
    adj_close / NULLIF(adj_vwap, 0) - 1 AS close_to_vwap,
    volume / NULLIF(volume_mean_5, 0) AS volume_ratio_5,
    turnover_rate / NULLIF(turnover_mean_20, 0) AS turnover_ratio_20,
    adj_close
FROM history
WHERE trade_date >= $first_day AND trade_date <= $last_day
ORDER BY ts_code, trade_date
