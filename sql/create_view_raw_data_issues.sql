-- raw.data_issues: every irregular row of the source that was set right instead of failing, by month.
CREATE OR REPLACE VIEW raw.data_issues AS
SELECT month, source, kind, ts_code, detail
FROM read_parquet({raw_issues}, union_by_name = true);
