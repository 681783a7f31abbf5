-- factor.pret: pRet of every eligible stock at each rebalance date, with the checkpoint that produced it and the baselines.
CREATE OR REPLACE VIEW factor.pret AS
SELECT * FROM read_parquet({factor}, union_by_name = true);
