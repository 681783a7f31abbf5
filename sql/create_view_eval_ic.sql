-- eval.ic: monthly IC and Rank IC of pRet (and the oracle IC on the synthetic market), with the returns' as-of date.
CREATE OR REPLACE VIEW eval.ic AS
SELECT * FROM read_parquet({eval_ic}, union_by_name = true);
