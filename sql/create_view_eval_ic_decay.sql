-- eval.ic_decay: IC of a month's factor over 5 to 60 sessions (lag_months 0) and against later months' returns.
CREATE OR REPLACE VIEW eval.ic_decay AS
SELECT * FROM read_parquet({eval_ic_decay}, union_by_name = true);
