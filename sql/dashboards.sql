-- The dashboard queries of doc/dashboards.md, run verbatim.  They use now();
-- to get stable output the test puts a schema with a fixed now() before
-- pg_catalog in search_path, so that the same text runs at a known "now".
SET TimeZone = 'UTC';
-- (Model payments; its history, alerts and watermarks start empty.)
DELETE FROM anomaly_training_runs WHERE model = 'payments';
DELETE FROM anomaly_alerts WHERE model = 'payments';
DELETE FROM anomaly_watermarks WHERE model = 'payments';
CREATE TABLE payments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount float8 NOT NULL,
    n_items int NOT NULL,
    created_at timestamptz NOT NULL
);
-- a day of payments, one every 5 minutes from 2024-05-01 00:05 UTC
INSERT INTO payments (amount, n_items, created_at)
SELECT round((20 + 10 * sin(i))::numeric, 2), 1 + i % 5, timestamptz '2024-05-01 00:00+00' + i * interval '5 minutes'
FROM generate_series(1, 288) i;
-- some anomalies: large amounts in the morning and afternoon, many items in the evening
UPDATE payments SET amount = 400 + id WHERE id IN (50, 160, 170, 171);
UPDATE payments SET n_items = 50 WHERE id IN (230, 260);

-- two model versions: the first trained on clean rows, the second on a day
-- with its anomalies; pretend they were trained at midnight and at noon
SELECT anomaly_train('payments', 'SELECT amount, n_items FROM payments WHERE amount < 100 AND n_items < 10', 'zscore')->>'version' AS version;
SELECT anomaly_train('payments', 'SELECT amount, n_items FROM payments', 'zscore')->>'version' AS version;
UPDATE anomaly_training_runs SET trained_at = timestamptz '2024-04-30 12:00+00' + version * interval '12 hours';

-- detection (the last 8 rows not yet), then pretend each alert was raised a
-- minute after its payment and the last run was at 23:20
SELECT * FROM anomaly_detect('payments', 'payments', 'id', threshold => 10, max_rows => 280);
UPDATE anomaly_alerts a SET detected_at = p.created_at + interval '1 minute'
FROM payments p WHERE a.key = p.id::text;
UPDATE anomaly_watermarks SET last_run_at = timestamptz '2024-05-01 23:20+00';

CREATE SCHEMA fixed_clock;
CREATE FUNCTION fixed_clock.now() RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$SELECT timestamptz '2024-05-01 23:30+00'$$;
SET search_path = fixed_clock, public, pg_catalog;
SELECT now();

-- Anomalies per hour
SELECT h.hour, count(a.key) AS alerts
FROM generate_series(date_trunc('hour', now()) - interval '23 hours',
                     date_trunc('hour', now()), interval '1 hour') AS h(hour)
LEFT JOIN anomaly_alerts a
       ON a.model = 'payments'
      AND a.detected_at >= h.hour AND a.detected_at < h.hour + interval '1 hour'
GROUP BY h.hour
ORDER BY h.hour;

-- Score percentiles over time (floats printed with 11 significant digits)
SET extra_float_digits = -9;
SELECT date_trunc('hour', p.created_at) AS hour,
       count(*) AS rows,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.score) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY s.score) AS p90,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s.score) AS p99,
       max(s.score) AS max,
       (SELECT m.threshold FROM anomaly_models m WHERE m.name = 'payments') AS threshold
FROM payments p
CROSS JOIN LATERAL (SELECT anomaly_score('payments', p) AS score) s
WHERE p.created_at >= now() - interval '24 hours'
GROUP BY 1
ORDER BY 1
;

RESET extra_float_digits;

-- Top features behind today's alerts
SELECT e.f->>'name' AS feature,
       count(*) FILTER (WHERE e.rank = 1) AS top_feature_in,
       round((100 * sum((e.f->>'contribution')::float8)
              / sum(sum((e.f->>'contribution')::float8)) OVER ())::numeric, 1) AS share_pct
FROM anomaly_alerts a
CROSS JOIN LATERAL jsonb_array_elements(a.explanation->'features') WITH ORDINALITY AS e(f, rank)
WHERE a.model = 'payments' AND a.detected_at >= date_trunc('day', now())
GROUP BY 1
ORDER BY top_feature_in DESC, feature;

-- Drift between model versions
SELECT r.version, r.trained_at, r.kind, r.rows,
       round(r.threshold::numeric, 3) AS threshold,
       round((r.threshold / lag(r.threshold) OVER w - 1)::numeric * 100, 1) AS threshold_change_pct,
       round(r.score_percentiles[51]::numeric, 3) AS median_score,
       round(((r.score_percentiles[51] - lag(r.score_percentiles[51]) OVER w)
              / nullif(lag(r.score_percentiles[76] - r.score_percentiles[26]) OVER w, 0))::numeric, 2) AS median_shift
FROM anomaly_training_runs r
WHERE r.model = 'payments'
WINDOW w AS (ORDER BY r.version)
ORDER BY r.version;

-- Alerts per model version
SELECT r.version, r.trained_at, count(a.key) AS alerts,
       round(count(a.key) / greatest(extract(epoch FROM least(r.until, now()) - r.trained_at) / 3600, 1)::numeric, 2) AS alerts_per_hour
FROM (SELECT version, trained_at,
             coalesce(lead(trained_at) OVER (ORDER BY version), 'infinity') AS until
      FROM anomaly_training_runs WHERE model = 'payments') r
LEFT JOIN anomaly_alerts a
       ON a.model = 'payments' AND a.detected_at >= r.trained_at AND a.detected_at < r.until
GROUP BY r.version, r.trained_at, r.until
ORDER BY r.version;

-- Detection job health
SELECT w.model, w.source, w.last_run_at, now() - w.last_run_at AS since_last_run,
       w.runs, w.rows_scored, w.alerts,
       (SELECT count(*) FROM payments p WHERE p.id > (w.last_key #>> '{}')::bigint) AS backlog
FROM anomaly_watermarks w
WHERE w.source = 'payments'::regclass;

RESET search_path;
DROP SCHEMA fixed_clock CASCADE;
DROP TABLE payments;
SELECT anomaly_drop('payments');
DELETE FROM anomaly_alerts WHERE model = 'payments';
DELETE FROM anomaly_watermarks WHERE model = 'payments';
DELETE FROM anomaly_training_runs WHERE model = 'payments';
