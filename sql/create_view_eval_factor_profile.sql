-- eval.factor_profile: each factor's rank autocorrelation and its IC raw, industry-size neutral and style neutral.
CREATE OR REPLACE VIEW eval.factor_profile AS
SELECT * FROM read_parquet({eval_factor_profile}, union_by_name = true);
