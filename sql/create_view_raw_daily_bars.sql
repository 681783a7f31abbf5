-- raw.daily_bars: the daily bars of every stock and traded day, unadjusted, one Parquet file per month.
CREATE OR REPLACE VIEW raw.daily_bars AS
SELECT * FROM read_parquet({raw_daily}, union_by_name = true);
