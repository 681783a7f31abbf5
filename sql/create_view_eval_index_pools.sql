-- eval.index_pools: each index's return, the long group's excess over it, and IC and long group inside its pool.
CREATE OR REPLACE VIEW eval.index_pools AS
SELECT * FROM read_parquet({eval_index_pools}, union_by_name = true);
