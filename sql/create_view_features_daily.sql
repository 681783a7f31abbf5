-- features.daily: the 18 daily volume-price features of every stock and traded day (docs/features.md).
CREATE OR REPLACE VIEW features.daily AS
SELECT * FROM read_parquet({features}, union_by_name = true);
