-- eval.industry_ic: monthly IC within each Shenwan level-1 industry with at least 10 stocks.
CREATE OR REPLACE VIEW eval.industry_ic AS
SELECT * FROM read_parquet({eval_industry_ic}, union_by_name = true);
