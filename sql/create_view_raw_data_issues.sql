-- raw.data_issues: every irregular row of the source that was set right instead of failing; month NULL for a snapshot's.
-- A snapshot's issue is stored with every month that read it, so DISTINCT lists it once.
CREATE OR REPLACE VIEW raw.data_issues AS
SELECT DISTINCT month, source, kind, ts_code, detail
FROM read_parquet({raw_issues}, union_by_name = true);
