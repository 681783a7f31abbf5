-- eval.industry_long_excess: monthly excess return of each industry's top-20% long group over the industry.
CREATE OR REPLACE VIEW eval.industry_long_excess AS
SELECT * FROM read_parquet({eval_industry_long_excess}, union_by_name = true);
