-- Training history: every anomaly_train() run appends a row to
-- anomaly_training_runs in the same transaction as the model.
-- (Models h and other; their history starts empty.)
DELETE FROM anomaly_training_runs WHERE model IN ('h', 'other');
CREATE TABLE hist (a float8, b float8);
INSERT INTO hist SELECT sin(i), cos(i * 0.7) FROM generate_series(1, 300) i;

-- versions count per model name; the summary returns the version
SELECT (anomaly_train('h', 'SELECT a, b FROM hist', 'zscore')->>'version')::int AS version;
SELECT (anomaly_train('h', 'SELECT a, b FROM hist WHERE a > -0.5', 'zscore', '{"contamination": 0.1}')->>'version')::int AS version;
SELECT (anomaly_train('other', 'SELECT a FROM hist', 'zscore')->>'version')::int AS version;

SELECT model, version, kind, n_features, feature_names, rows, seconds >= 0 AS timed,
       options->>'contamination' AS contamination, metrics->>'rows' AS metrics_rows,
       trained_by = current_user AS by_me
FROM anomaly_training_runs WHERE model IN ('h', 'other') ORDER BY model, version;

-- the latest run matches the stored model
SELECT r.threshold = m.threshold AS same_threshold,
       r.trained_at = m.trained_at AS same_time,
       r.metrics = m.metrics AS same_metrics,
       r.options = m.options AS same_options
FROM anomaly_training_runs r JOIN anomaly_models m ON m.name = r.model
WHERE r.model = 'h' AND r.version = 2;

-- score_percentiles[p + 1] is the p-th percentile of the training scores
SELECT cardinality(r.score_percentiles) AS n,
       r.score_percentiles[1] = m.score_quantiles[1] AS min,
       r.score_percentiles[51] = m.score_quantiles[501] AS median,
       r.score_percentiles[96] = m.score_quantiles[951] AS p95,
       r.score_percentiles[101] = m.score_quantiles[1001] AS max,
       (SELECT bool_and(p >= lag_p) FROM (
            SELECT p, lag(p) OVER (ORDER BY i) AS lag_p
            FROM unnest(r.score_percentiles) WITH ORDINALITY u(p, i)) x) AS ascending
FROM anomaly_training_runs r JOIN anomaly_models m ON m.name = r.model
WHERE r.model = 'h' AND r.version = 2;

-- drift between versions: threshold and median training score, version to version
SELECT version, rows,
       round((threshold - lag(threshold) OVER w)::numeric, 3) AS threshold_change,
       round((score_percentiles[51] - lag(score_percentiles[51]) OVER w)::numeric, 3) AS median_change
FROM anomaly_training_runs WHERE model = 'h'
WINDOW w AS (ORDER BY version) ORDER BY version;

-- a training that fails, or is rolled back, leaves no history
SELECT anomaly_train('h', 'SELECT a, b FROM hist WHERE false', 'zscore');
BEGIN;
SELECT (anomaly_train('h', 'SELECT a, b FROM hist', 'zscore')->>'version')::int AS version;
ROLLBACK;
SELECT max(version) FROM anomaly_training_runs WHERE model = 'h';

-- the option verbose is not a hyper-parameter: it is not stored
SET client_min_messages = warning;
SELECT anomaly_train('h', 'SELECT a, b FROM hist', 'zscore', '{"verbose": true}') ? 'verbose' AS in_summary;
RESET client_min_messages;
SELECT options ? 'verbose' AS stored FROM anomaly_training_runs WHERE model = 'h' AND version = 3;

-- history outlives the model; training it again continues the versions
SELECT anomaly_drop('h');
SELECT count(*) AS runs_kept FROM anomaly_training_runs WHERE model = 'h';
SELECT (anomaly_train('h', 'SELECT a, b FROM hist', 'zscore')->>'version')::int AS version;

SELECT anomaly_drop(m) FROM unnest(ARRAY['h', 'other']) m;
DELETE FROM anomaly_training_runs WHERE model IN ('h', 'other');
DROP TABLE hist;
