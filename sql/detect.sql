-- Scheduled detection: anomaly_detect() scores the rows added since its last
-- run and writes the anomalous ones to an alerts table.
-- (Models pay, pay_arr and temp; their alerts and watermarks start empty.)
DELETE FROM anomaly_alerts WHERE model IN ('pay', 'pay_arr', 'temp');
DELETE FROM anomaly_watermarks WHERE model IN ('pay', 'pay_arr', 'temp');
CREATE TABLE pay (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount float8 NOT NULL,
    n_items int NOT NULL,
    note text
);
INSERT INTO pay (amount, n_items, note)
SELECT round((20 + 10 * sin(i))::numeric, 2), 1 + i % 5, 'p' || i FROM generate_series(1, 200) i;
SELECT anomaly_train('pay', 'SELECT amount, n_items FROM pay', 'zscore')->>'rows' AS rows;

-- the first run scores every row; with a high explicit threshold none alerts
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10);
-- nothing new: nothing scored, the watermark stays
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10);

-- five new rows, two of them anomalous
INSERT INTO pay (amount, n_items) VALUES (21, 2), (900, 3), (19, 4), (20, 60), (22, 1);
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10);
SELECT model, source, key, round(score::numeric, 1) AS score, threshold,
       explanation->'features'->0->>'name' AS top_feature,
       explanation->>'is_anomaly' AS model_says
FROM anomaly_alerts WHERE model = 'pay' ORDER BY key::bigint;
SELECT model, source, key_column, last_key, runs, rows_scored, alerts, last_run_at IS NOT NULL AS has_run
FROM anomaly_watermarks WHERE model = 'pay';

-- max_rows bounds a run; the rest waits for the next one
INSERT INTO pay (amount, n_items) SELECT 20, 2 FROM generate_series(1, 7);
INSERT INTO pay (amount, n_items) VALUES (20, 99);
INSERT INTO pay (amount, n_items) SELECT 20, 2 FROM generate_series(1, 2);
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10, max_rows => 5);
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10, max_rows => 5);
SELECT * FROM anomaly_detect('pay', 'pay', 'id', threshold => 10, max_rows => 5);
SELECT key FROM anomaly_alerts WHERE model = 'pay' ORDER BY key::bigint;

-- without a threshold the model's is used
INSERT INTO pay (amount, n_items) VALUES (35, 5);
SELECT rows_scored, alerts_written FROM anomaly_detect('pay', 'pay', 'id');
SELECT a.threshold = m.threshold AS model_threshold
FROM anomaly_alerts a JOIN anomaly_models m ON m.name = a.model WHERE a.key = '216';

-- a features expression instead of row input, into an alerts table of one's
-- own (any table with these columns; key takes the source key's type)
SELECT anomaly_train('pay_arr', 'SELECT ARRAY[amount, n_items] FROM pay WHERE id <= 200', 'zscore')->>'features' AS features;
CREATE TABLE my_alerts (
    model text, source regclass, key bigint, score float8, threshold float8,
    explanation jsonb, detected_at timestamptz, acknowledged boolean DEFAULT false);
SELECT * FROM anomaly_detect('pay_arr', 'pay', 'id', alerts => 'my_alerts',
                             features => 'ARRAY[s.amount, n_items]', threshold => 10);
SELECT model, key, explanation->'features'->0->>'name' AS top_feature, acknowledged
FROM my_alerts ORDER BY key;
-- each (model, source) has its own watermark
SELECT model, last_key, runs FROM anomaly_watermarks WHERE model IN ('pay', 'pay_arr') ORDER BY model;

-- a time key: lag leaves the most recent rows for a later run
CREATE TABLE readings (ts timestamptz NOT NULL, temp float8 NOT NULL);
INSERT INTO readings
SELECT timestamptz '2024-03-01 00:00+00' + i * interval '1 minute', 20 + sin(i) FROM generate_series(1, 100) i;
SELECT anomaly_train('temp', 'SELECT temp FROM readings', 'zscore')->>'rows' AS rows;
INSERT INTO readings VALUES (timestamptz '2024-03-01 02:00+00', 80), (clock_timestamp(), 90);
SELECT rows_scored, alerts_written,
       watermark = to_jsonb(timestamptz '2024-03-01 02:00+00') AS watermark_is_last_old_row
FROM anomaly_detect('temp', 'readings', 'ts', lag => '1 hour', threshold => 10);
SELECT rows_scored, alerts_written FROM anomaly_detect('temp', 'readings', 'ts', threshold => 10);
SELECT round(score::numeric) AS score FROM anomaly_alerts WHERE model = 'temp' ORDER BY score;

-- a view works as the source (here: only the rows with a note)
CREATE VIEW pay_noted AS SELECT id, amount, n_items FROM pay WHERE note IS NOT NULL;
SELECT * FROM anomaly_detect('pay', 'pay_noted', 'id', threshold => 10);

-- the caller's search_path does not change what the extension reads
SET search_path = '';
SELECT rows_scored FROM public.anomaly_detect('pay', 'public.pay', 'id');
RESET search_path;

-- errors
SELECT * FROM anomaly_detect('nope', 'pay', 'id');
SELECT * FROM anomaly_detect('pay', 'pay', 'nope');
SELECT * FROM anomaly_detect('pay', 'pay', 'amount');
SELECT * FROM anomaly_detect('pay', 'pay', 'id', lag => '1 minute');
SELECT * FROM anomaly_detect('pay', 'pay', 'id', max_rows => 0);
SELECT * FROM anomaly_detect(NULL, 'pay', 'id');
\set VERBOSITY terse
SELECT * FROM anomaly_detect('temp', 'pay', 'id');
\set VERBOSITY default
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM anomaly_detect('pay', 'pay', 'id');
ROLLBACK;
-- a failed run leaves no trace: the watermark of 'temp' on pay is not created
SELECT count(*) FROM anomaly_watermarks WHERE model = 'temp' AND source = 'pay'::regclass;

-- starting from now instead of from the first row: set the watermark
INSERT INTO anomaly_watermarks (model, source, key_column, last_key)
SELECT 'temp', 'readings'::regclass, 'ts', to_jsonb(max(ts)) FROM readings
ON CONFLICT (model, source) DO UPDATE SET last_key = excluded.last_key;
SELECT rows_scored FROM anomaly_detect('temp', 'readings', 'ts');

-- the tables are dumped with the extension's configuration
SELECT t AS dumped, t::oid = ANY (e.extconfig) AS marked
FROM pg_extension e,
     unnest(ARRAY['anomaly_training_runs', 'anomaly_watermarks', 'anomaly_alerts']::regclass[]) t
WHERE e.extname = 'anomaly';

DROP VIEW pay_noted;
DROP TABLE pay, my_alerts, readings;
SELECT anomaly_drop(m) FROM unnest(ARRAY['pay', 'pay_arr', 'temp']) m;
DELETE FROM anomaly_alerts WHERE model IN ('pay', 'pay_arr', 'temp');
DELETE FROM anomaly_watermarks WHERE model IN ('pay', 'pay_arr', 'temp');
DELETE FROM anomaly_training_runs WHERE model IN ('pay', 'pay_arr', 'temp');
