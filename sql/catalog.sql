-- The model catalog and the SQL surface: tables, training, replacing and
-- dropping models, options as used, the summary, feature names, every input
-- column type, sampling, the anomaly.model setting, thresholds and the shape
-- of anomaly_explain's answer.

-- deterministic data: 300 rows, three smooth features
CREATE TABLE pts AS
SELECT i AS id,
       sin(i)::real AS a,
       cos(i * 1.7)::float8 AS b,
       round((((i * 37) % 101) / 10.0)::numeric, 1) AS c
FROM generate_series(1, 300) AS i;

------------------------------------------------------------------------------
-- The catalog tables, their columns, and pg_dump marking
------------------------------------------------------------------------------

SELECT table_name, column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_name IN ('anomaly_models', 'anomaly_weights')
ORDER BY table_name, ordinal_position;

SELECT conrelid::regclass AS tab, contype, pg_get_constraintdef(oid) AS def
FROM pg_constraint
WHERE conrelid IN ('anomaly_models'::regclass, 'anomaly_weights'::regclass)
ORDER BY 1, 2, 3;

-- both tables are extension configuration tables, so pg_dump carries models
SELECT unnest(extconfig)::regclass AS config_table, unnest(extcondition) AS condition
FROM pg_extension WHERE extname = 'anomaly'
ORDER BY 1;

SELECT kind FROM anomaly_kinds() WHERE kind = 'zscore';

------------------------------------------------------------------------------
-- Training, the summary, options as used
------------------------------------------------------------------------------

-- the summary's keys and values (seconds vary, so only its type is shown)
SELECT key, CASE key WHEN 'seconds' THEN jsonb_typeof(value)::text
                     WHEN 'threshold' THEN round(value::numeric, 4)::text
                     ELSE value::text END AS value
FROM jsonb_each(anomaly_train('pts', 'SELECT a, b, c FROM pts', 'zscore'))
ORDER BY key;

SELECT name, kind, n_features, feature_names, options,
       threshold > 0 AS threshold_positive,
       cardinality(score_quantiles) AS n_quantiles,
       trained_at <= now() AS trained_at_ok,
       owner = current_user AS owned
FROM anomaly_models;

SELECT model, tensor, shape, cardinality(data) AS n
FROM anomaly_weights ORDER BY model, tensor COLLATE "C";

-- the quantiles are sorted, run from the smallest to the largest training
-- score exactly as anomaly_score() computes it, and the threshold is the 0.95
-- quantile (default contamination 0.05)
SELECT (SELECT bool_and(q1 <= q2) FROM (SELECT score_quantiles[i] q1, score_quantiles[i + 1] q2
                                        FROM generate_series(1, 1000) i) s) AS sorted,
       abs(score_quantiles[951] - threshold) < 1e-9 * threshold AS threshold_is_q95,
       score_quantiles[1001] = (SELECT max(anomaly_score('pts', ARRAY[a, b, c]::float8[])) FROM pts) AS max_is_q100,
       score_quantiles[1] = (SELECT min(anomaly_score('pts', ARRAY[a, b, c]::float8[])) FROM pts) AS min_is_q0
FROM anomaly_models WHERE name = 'pts';

-- options given are recorded as used; metrics hold the summary
SELECT anomaly_train('pts_opts', 'SELECT a, b, c FROM pts', 'zscore',
                     '{"contamination": 0.1, "seed": 7, "max_rows": 1000, "standardize": false, "robust": true}')->'options';
SELECT options, metrics->'rows' AS rows, metrics->'kind' AS kind FROM anomaly_models WHERE name = 'pts_opts';
-- a JSON null means "the default"
SELECT anomaly_train('pts_opts', 'SELECT a, b, c FROM pts', 'zscore', '{"seed": null}')->'options';

------------------------------------------------------------------------------
-- Replacing and dropping
------------------------------------------------------------------------------

SELECT anomaly_train('pts_opts', 'SELECT a, b FROM pts WHERE id <= 100', 'zscore')->'rows' AS rows;
SELECT name, n_features, feature_names, metrics->'rows' AS rows FROM anomaly_models WHERE name = 'pts_opts';
SELECT count(*) AS models FROM anomaly_models WHERE name = 'pts_opts';
SELECT tensor, shape FROM anomaly_weights WHERE model = 'pts_opts' ORDER BY tensor COLLATE "C";

SELECT anomaly_drop('pts_opts');
SELECT anomaly_drop('pts_opts');
SELECT count(*) AS models FROM anomaly_models WHERE name = 'pts_opts';
SELECT count(*) AS tensors FROM anomaly_weights WHERE model = 'pts_opts';
SELECT anomaly_drop(NULL) IS NULL AS strict;

-- a replacement inside a rolled-back transaction leaves the old model
BEGIN;
SELECT anomaly_train('pts', 'SELECT a, b FROM pts', 'zscore')->'features' AS features;
SELECT n_features FROM anomaly_models WHERE name = 'pts';
ROLLBACK;
SELECT n_features FROM anomaly_models WHERE name = 'pts';
SELECT anomaly_score('pts', ARRAY[0, 0, 5]::float8[]) > 0 AS scores;

-- the default kind is autoencoder (when this build has it, the call succeeds)
SELECT pg_get_function_arguments('anomaly_train'::regproc);

------------------------------------------------------------------------------
-- Feature names and input column types
------------------------------------------------------------------------------

CREATE TABLE typed AS
SELECT (i % 5)::int2 AS c_int2,
       (i % 7)::int4 AS c_int4,
       (i % 11)::int8 AS c_int8,
       sin(i)::float4 AS c_float4,
       cos(i)::float8 AS c_float8,
       round(sin(i * 0.3)::numeric, 3) AS c_numeric,
       (i % 3 = 0) AS c_bool,
       ARRAY[sin(i), cos(i * 1.7), i % 13]::real[] AS arr_real,
       ARRAY[sin(i), cos(i * 1.7), i % 13]::float8[] AS arr_float8,
       ARRAY[sin(i), cos(i * 1.7), i % 13]::numeric[] AS arr_numeric,
       ARRAY[i % 5, i % 7, i % 13]::int[] AS arr_int,
       ARRAY[i % 5, i % 7, i % 13]::float8[] AS arr_int_as_float8
FROM generate_series(1, 200) AS i;

-- several numeric and boolean columns: names come from the columns (aliases too)
SELECT anomaly_train('typed_cols', 'SELECT c_int2, c_int4, c_int8, c_float4, c_float8, c_numeric, c_bool AS flag FROM typed', 'zscore')->'features' AS features;
SELECT feature_names FROM anomaly_models WHERE name = 'typed_cols';
SELECT round(anomaly_score('typed_cols', ARRAY[c_int2, c_int4, c_int8, c_float4, c_float8, c_numeric, c_bool::int]::float8[])::numeric, 3) AS score
FROM typed ORDER BY 1 DESC LIMIT 3;

-- one array column: features are named f1..fN
SELECT anomaly_train('typed_real', 'SELECT arr_real FROM typed', 'zscore')->'features' AS features;
SELECT anomaly_train('typed_float8', 'SELECT arr_float8 FROM typed', 'zscore')->'features' AS features;
SELECT anomaly_train('typed_numeric', 'SELECT arr_numeric FROM typed', 'zscore')->'features' AS features;
SELECT anomaly_train('typed_int', 'SELECT arr_int FROM typed', 'zscore')->'features' AS features;
SELECT anomaly_train('typed_int_f8', 'SELECT arr_int_as_float8 FROM typed', 'zscore')->'features' AS features;
SELECT name, feature_names FROM anomaly_models WHERE name LIKE 'typed%' ORDER BY name;

-- the same values through any array type give the same model
SELECT count(DISTINCT threshold) AS distinct_thresholds
FROM anomaly_models WHERE name IN ('typed_real', 'typed_float8', 'typed_numeric');
SELECT a.threshold = b.threshold AS int_equals_float8
FROM anomaly_models a, anomaly_models b WHERE a.name = 'typed_int' AND b.name = 'typed_int_f8';

-- real[] and float8[] scoring agree
SELECT bool_and(abs(anomaly_score('typed_real', arr_real) - anomaly_score('typed_real', arr_float8))
                <= 1e-6 * anomaly_score('typed_real', arr_real)) AS same
FROM typed;

-- a domain over a numeric type, and a view, are fine too
CREATE DOMAIN positive_real AS real CHECK (VALUE > 0);
CREATE VIEW typed_view AS SELECT c_float4::float8 + 2 AS shifted, c_int4::positive_real AS dom FROM typed WHERE c_int4 > 0;
SELECT anomaly_train('typed_view', 'SELECT * FROM typed_view', 'zscore')->'features' AS features;
SELECT feature_names FROM anomaly_models WHERE name = 'typed_view';

-- data-modifying statements with RETURNING are queries too
CREATE TABLE scratch_rows (x float8, y float8);
SELECT anomaly_train('returning', 'INSERT INTO scratch_rows SELECT sin(i), cos(i) FROM generate_series(1, 50) i RETURNING x, y', 'zscore')->'rows' AS rows;
SELECT count(*) FROM scratch_rows;

------------------------------------------------------------------------------
-- max_rows: a seeded uniform sample, reported in the summary
------------------------------------------------------------------------------

SELECT s->'rows' AS rows, s->'rows_read' AS rows_read, s->'sampled' AS sampled
FROM anomaly_train('sampled', 'SELECT a, b, c FROM pts', 'zscore', '{"max_rows": 50}') AS s;
SELECT metrics->'rows' AS rows, metrics->'rows_read' AS rows_read, metrics->'sampled' AS sampled, options->'max_rows' AS max_rows
FROM anomaly_models WHERE name = 'sampled';
-- the same seed gives the same sample, hence the same model
SELECT threshold AS t1 FROM anomaly_models WHERE name = 'sampled' \gset
SELECT anomaly_train('sampled', 'SELECT a, b, c FROM pts', 'zscore', '{"max_rows": 50}')->'threshold' = to_jsonb(:t1::float8) AS same_sample;
SELECT (anomaly_train('sampled', 'SELECT a, b, c FROM pts', 'zscore', '{"max_rows": 50, "seed": 1}')->>'threshold')::float8 <> :t1 AS other_seed_other_sample;
-- at max_rows exactly, nothing is sampled
SELECT s->'rows' AS rows, s->'sampled' AS sampled
FROM anomaly_train('sampled', 'SELECT a, b, c FROM pts', 'zscore', '{"max_rows": 300}') AS s;

------------------------------------------------------------------------------
-- anomaly.model names the model of anomaly_score(features)
------------------------------------------------------------------------------

SHOW anomaly.model;
SET anomaly.model = 'pts';
SELECT bool_and(anomaly_score(ARRAY[a, b, c]::float8[]) = anomaly_score('pts', ARRAY[a, b, c]::float8[])) AS same_float8,
       bool_and(anomaly_score(ARRAY[a, b, c]::real[]) = anomaly_score('pts', ARRAY[a, b, c]::real[])) AS same_real
FROM pts;
-- a setting made in a transaction that rolls back goes with it
BEGIN;
SET LOCAL anomaly.model = 'typed_real';
SELECT anomaly_score(ARRAY[0, 0, 0]::real[]) = anomaly_score('typed_real', ARRAY[0, 0, 0]::real[]) AS local_model;
ROLLBACK;
SHOW anomaly.model;
RESET anomaly.model;
SHOW anomaly.blas_threads;

------------------------------------------------------------------------------
-- Thresholds: anomaly_is_anomaly and its contamination overload
------------------------------------------------------------------------------

-- at the model's threshold about 5% of the training rows are flagged
SELECT count(*) FILTER (WHERE anomaly_is_anomaly('pts', ARRAY[a, b, c]::float8[])) AS flagged,
       count(*) FILTER (WHERE anomaly_score('pts', ARRAY[a, b, c]::float8[]) >
                        (SELECT threshold FROM anomaly_models WHERE name = 'pts')) AS above_threshold,
       count(*) AS rows
FROM pts;
-- a rate chosen at query time picks the threshold from score_quantiles
SELECT rate,
       count(*) FILTER (WHERE anomaly_is_anomaly('pts', ARRAY[a, b, c]::float8[], rate)) AS flagged_float8,
       count(*) FILTER (WHERE anomaly_is_anomaly('pts', ARRAY[a, b, c]::real[], rate)) AS flagged_real
FROM pts, (VALUES (0.01::float8), (0.05), (0.2), (0.5), (0.99)) AS r(rate)
GROUP BY rate ORDER BY rate;
-- the overload at the training contamination agrees with the stored threshold
SELECT bool_and(anomaly_is_anomaly('pts', ARRAY[a, b, c]::float8[], 0.05) = anomaly_is_anomaly('pts', ARRAY[a, b, c]::float8[])) AS agree
FROM pts;
-- a model trained with contamination 0.2 flags about a fifth
SELECT anomaly_train('pts20', 'SELECT a, b, c FROM pts', 'zscore', '{"contamination": 0.2}')->'options'->'contamination' AS contamination;
SELECT count(*) FILTER (WHERE anomaly_is_anomaly('pts20', ARRAY[a, b, c]::float8[])) AS flagged FROM pts;

-- a hand edit of the catalog takes effect at once (the cache is invalidated)
UPDATE anomaly_models SET threshold = 1e9 WHERE name = 'pts20';
SELECT count(*) FILTER (WHERE anomaly_is_anomaly('pts20', ARRAY[a, b, c]::float8[])) AS flagged FROM pts;

------------------------------------------------------------------------------
-- anomaly_explain: the JSON shape
------------------------------------------------------------------------------

SELECT key, jsonb_typeof(value) AS type
FROM jsonb_each(anomaly_explain('pts', ARRAY[0.5, -0.5, 9.9]::float8[])) ORDER BY key;
SELECT f->>'name' AS name, f->'value' AS value, jsonb_typeof(f->'contribution') AS contribution,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(f) AS k) AS keys
FROM jsonb_array_elements(anomaly_explain('pts', ARRAY[0.5, -0.5, 9.9]::float8[])->'features') AS f;
-- score and is_anomaly agree with the scalar functions, for real[] and float8[]
SELECT (e->>'score')::float8 = anomaly_score('pts', ARRAY[a, b, c]::float8[]) AS same_score,
       (e->>'is_anomaly')::boolean = anomaly_is_anomaly('pts', ARRAY[a, b, c]::float8[]) AS same_flag,
       (e->>'threshold')::float8 = (SELECT threshold FROM anomaly_models WHERE name = 'pts') AS same_threshold,
       count(*)
FROM pts, LATERAL anomaly_explain('pts', ARRAY[a, b, c]::float8[]) AS e
GROUP BY 1, 2, 3;
SELECT bool_and((anomaly_explain('pts', ARRAY[a, b, c]::real[])->>'score')::float8 = anomaly_score('pts', ARRAY[a, b, c]::real[])) AS same_real
FROM pts;
-- features are sorted by contribution, largest first; values are the raw inputs
SELECT bool_and(sorted) AS sorted, bool_and(nonneg) AS non_negative, bool_and(complete) AS all_features
FROM (
    SELECT bool_and(coalesce(prev >= contrib, true)) AS sorted,
           bool_and(contrib >= 0) AS nonneg,
           count(*) = 3 AND count(DISTINCT name) = 3 AS complete
    FROM (
        SELECT p.id, f->>'name' AS name, (f->>'contribution')::float8 AS contrib,
               lag((f->>'contribution')::float8) OVER (PARTITION BY p.id ORDER BY i) AS prev
        FROM pts p, jsonb_array_elements(anomaly_explain('pts', ARRAY[a, b, c]::float8[])->'features') WITH ORDINALITY AS x(f, i)
    ) s GROUP BY id
) t;
SELECT anomaly_explain('typed_cols', ARRAY[1, 2, 3, 0.5, -0.5, 0.25, 1]::float8[])->'features'->0->>'name' AS top,
       jsonb_array_length(anomaly_explain('typed_cols', ARRAY[1, 2, 3, 0.5, -0.5, 0.25, 1]::float8[])->'features') AS n;

------------------------------------------------------------------------------
-- Function properties
------------------------------------------------------------------------------

SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proparallel AS parallel, p.proisstrict AS strict,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'anomaly'
WHERE p.proname IN ('anomaly_train', 'anomaly_drop', 'anomaly_kinds', 'anomaly_score', 'anomaly_is_anomaly', 'anomaly_explain')
ORDER BY p.oid::regprocedure::text;

SELECT anomaly_drop(name) FROM anomaly_models ORDER BY name;
SELECT count(*) AS tensors_left FROM anomaly_weights;
