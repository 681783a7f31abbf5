-- factor.pret: pRet of every eligible stock at each rebalance date, with the checkpoint that produced it and the baselines.
-- The view lives in the main schema of factor.duckdb, whose catalog is named "factor" after the file, so a
-- session on factor.duckdb reads it as factor.pret (a schema also named "factor" would make that name ambiguous).
CREATE OR REPLACE VIEW main.pret AS
SELECT * FROM read_parquet({factor}, union_by_name = true);
