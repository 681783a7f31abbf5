-- raw.stocks: one row per stock, from the newest monthly snapshot that lists it.
CREATE OR REPLACE VIEW raw.stocks AS
SELECT * EXCLUDE (month), month AS as_of_month
FROM read_parquet({raw_stocks}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY ts_code ORDER BY month DESC) = 1;
