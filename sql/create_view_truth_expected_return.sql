-- truth.expected_return: the synthetic market's conditional expected return of each stock over each holding month.
CREATE OR REPLACE VIEW truth.expected_return AS
SELECT month, ts_code, expected_return
FROM read_parquet({raw_truth}, union_by_name = true);
