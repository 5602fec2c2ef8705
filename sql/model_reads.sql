--
-- How often scoring reads the model tables (issue 5: a new connection's
-- first score of a 1 MB model costs one catalog read, not one per row or
-- per call).  Scans are counted as the shared statistics plus this backend's
-- pending counts, read live, over each table and its indexes; the
-- statements run in this backend, not in parallel workers.
--
SET force_parallel_mode = off;
SELECT setseed(0.5);
CREATE TABLE mr_rows AS
SELECT i, ARRAY(SELECT (random() * 4 + j % 7 + 0 * i)::real FROM generate_series(1, 128) j) AS f
FROM generate_series(1, 2048) i;

-- a knn model whose reference sample is 2048 x 128 floats: 1 MB of weights
SELECT (anomaly_train('mr', 'SELECT f FROM mr_rows', 'knn', '{"sample_size": 2048}')->>'rows')::int AS rows;
SELECT sum(pg_column_size(data)) >= 1024 * 1024 AS one_mb, count(*) AS tensors
FROM anomaly_weights WHERE model = 'mr';

CREATE VIEW mr_scans AS
SELECT v.rel, sum(pg_stat_get_numscans(r.oid) + pg_stat_get_xact_numscans(r.oid)) AS scans
FROM (VALUES ('anomaly_models', 'anomaly_models'::regclass::oid),
             ('anomaly_weights', 'anomaly_weights'::regclass::oid),
             ('toast of anomaly_weights',
              (SELECT reltoastrelid FROM pg_class WHERE oid = 'anomaly_weights'::regclass))) v(rel, relid),
     LATERAL (SELECT v.relid UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = v.relid) r(oid)
GROUP BY v.rel;
CREATE TABLE mr_mark AS SELECT * FROM mr_scans WHERE false;
CREATE VIEW mr_reads AS
SELECT s.rel, s.scans - m.scans AS scans FROM mr_scans s JOIN mr_mark m USING (rel) ORDER BY 1;
CREATE FUNCTION mr_mark() RETURNS void LANGUAGE sql AS
$$ DELETE FROM mr_mark; INSERT INTO mr_mark SELECT * FROM mr_scans; $$;

-- a new connection: its first statement scores 2048 rows, one call each,
-- and reads the model once: one scan of each table (one query)
\c
SET force_parallel_mode = off;
SET stats_fetch_consistency = none;
SELECT mr_mark();
SELECT count(anomaly_score('mr', f)) AS scored FROM mr_rows;
SELECT * FROM mr_reads;

-- later statements, and other functions, read nothing: the model is cached
SELECT mr_mark();
SELECT count(anomaly_score('mr', f)) AS scored FROM mr_rows;
SELECT count(*) FILTER (WHERE anomaly_is_anomaly('mr', f)) >= 0 AS flagged FROM mr_rows WHERE i <= 100;
SELECT count(anomaly_explain('mr', f)) AS explained FROM mr_rows WHERE i <= 10;
SELECT count(anomaly_score('mr', f)) AS scored FROM mr_rows WHERE i <= 10;
SELECT * FROM mr_reads;

-- a committed write to the model tables (another model trained) makes the
-- next statement read the model once more; then it is cached again
SELECT anomaly_train('mr2', 'SELECT f FROM mr_rows WHERE i <= 100', 'zscore') IS NOT NULL AS trained;
SELECT mr_mark();
SELECT count(anomaly_score('mr', f)) AS scored FROM mr_rows;
SELECT count(anomaly_score('mr', f)) AS scored FROM mr_rows;
SELECT * FROM mr_reads;

SELECT anomaly_drop('mr');
SELECT anomaly_drop('mr2');
DROP FUNCTION mr_mark();
DROP VIEW mr_reads;
DROP VIEW mr_scans;
DROP TABLE mr_mark;
DROP TABLE mr_rows;
