-- eval.long_short: the top group's return minus the bottom group's, a diagnostic (shorting is restricted in A-shares).
CREATE OR REPLACE VIEW eval.long_short AS
SELECT * FROM read_parquet({eval_long_short}, union_by_name = true);
