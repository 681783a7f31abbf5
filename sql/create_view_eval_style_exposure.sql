-- eval.style_exposure: the rank correlation of each factor with size, beta, volatility, turnover, reversal and momentum.
CREATE OR REPLACE VIEW eval.style_exposure AS
SELECT * FROM read_parquet({eval_style_exposure}, union_by_name = true);
