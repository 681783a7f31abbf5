-- raw.sessions: every XSHG session with its position, so views can count trading days.
CREATE OR REPLACE VIEW raw.sessions AS
SELECT trade_date, session_index, month
FROM read_parquet({calendar});
