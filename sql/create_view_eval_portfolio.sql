-- eval.portfolio: the monthly top-group long portfolio, its benchmark, excess return and turnover.
CREATE OR REPLACE VIEW eval.portfolio AS
SELECT * FROM read_parquet({eval_portfolio}, union_by_name = true);
