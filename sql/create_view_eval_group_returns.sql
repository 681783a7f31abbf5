-- eval.group_returns: each month's buyable set in n_groups groups by factor (1 lowest): size, equal-weight return, turnover.
CREATE OR REPLACE VIEW eval.group_returns AS
SELECT * FROM read_parquet({eval_group_returns}, union_by_name = true);
