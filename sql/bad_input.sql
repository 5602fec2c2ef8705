-- Bad input, part two (errors.sql has the first part): huge and empty
-- arrays, every common option with a wrong type or range, names with quotes,
-- backslashes, unicode and format directives, very long names, NULL names,
-- query-time contamination.  The second half runs the same cases against a
-- model of EVERY kind that anomaly_kinds() lists, so a kind added later is
-- covered without editing this file: each case prints the SQLSTATEs its
-- statement gave over all kinds (one value when every kind agrees).
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT pg_backend_pid() AS start_pid \gset

-- 'ok' when the statement ran, else its SQLSTATE
CREATE FUNCTION bad_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

CREATE TABLE bad_data AS
SELECT i AS id, sin(i) AS a, cos(i * 1.7) AS b, sin(i * 0.3) + (i % 7) / 7.0 AS c
FROM generate_series(1, 200) AS i;
SELECT anomaly_train('bad', 'SELECT a, b, c FROM bad_data', 'zscore')->'features' AS features;

------------------------------------------------------------------------------
-- Huge and empty arrays
------------------------------------------------------------------------------

-- 100,000 features for a 3-feature model, in every array type
SELECT anomaly_score('bad', array_fill(1::real, ARRAY[100000]));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('bad', array_fill(1::float8, ARRAY[100000]));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('bad', array_fill(1::numeric, ARRAY[100000]));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('bad', array_fill(1::int, ARRAY[100000]));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('bad', array_fill(1::bigint, ARRAY[100000]), 0.1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- empty arrays
SELECT anomaly_score('bad', '{}'::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('bad', '{}'::numeric[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('bad', '{}'::int[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('bad', '{}'::bigint[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a NULL inside a numeric array, a 2-D integer array, numeric NaN
SELECT anomaly_score('bad', ARRAY[1, NULL, 3]::numeric[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('bad', ARRAY[[1, 2, 3]]::int[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('bad', ARRAY['NaN', 2, 3]::numeric[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('bad', ARRAY[1, '-Infinity', 3]::numeric[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a finite numeric beyond double precision is out of range, not "Infinity"
SELECT anomaly_score('bad', ARRAY[1e400, 2, 3]::numeric[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a finite real whose standardized square overflows scores Infinity
SELECT anomaly_score('bad', ARRAY[1, 2, 3e38]::float8[]) AS overflowing_score;
-- a tiny numeric underflows to 0 and scores
SELECT anomaly_score('bad', ARRAY[1e-400, 0, 0]::numeric[]) = anomaly_score('bad', ARRAY[0, 0, 0]::float8[]) AS underflow_is_zero;
-- training: features beyond ANOMALY_MAX_FEATURES (16384) in an array, and
-- more columns than PostgreSQL allows in a query
SELECT anomaly_train('t', 'SELECT array_fill(a::real, ARRAY[16385]) FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT array_fill(id, ARRAY[20000]) FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', (SELECT 'SELECT ' || string_agg('a AS c' || i, ', ') || ' FROM bad_data' FROM generate_series(1, 20000) i), 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ''{}''::numeric[] FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 5 THEN 1e400 ELSE b::numeric END AS b FROM bad_data ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an array column that is not a features array
SELECT anomaly_train('t', 'SELECT ''1 2 3''::oidvector FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- Common options: wrong type or range, each of them
------------------------------------------------------------------------------

SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"contamination": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"contamination": -1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"contamination": 1e400}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"contamination": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"contamination": [0.1]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"seed": 1.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"seed": 1e30}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- 2^63 used to pass a double comparison and wrap to -2^63
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"seed": 9223372036854775808}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"seed": {"value": 1}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"max_rows": "big"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"max_rows": -5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"max_rows": 1e1000}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"max_rows": 1e-1000}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"standardize": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"standardize": "true"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"verbose": "yes"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"threshold": "median"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"threshold": "pot", "risk": 0.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- risk only means something with threshold "pot"
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"risk": 0.001}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '{"": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- options that are not an object
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '"x"');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', '42');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore', 'true');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- boundaries that are valid: the largest seed, an integral 1.0, JSON null = default
SELECT o->'seed' AS seed, o->'max_rows' AS max_rows, o->'contamination' AS contamination
FROM (SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', 'zscore',
      '{"seed": 9223372036854775807, "max_rows": 2.0e1, "contamination": null}')->'options' AS o) x;
SELECT anomaly_drop('t');
-- an empty kind, a kind given in another case
SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- Names: NULL, very long, and odd ones that must work
------------------------------------------------------------------------------

SELECT anomaly_drop(NULL) IS NULL AS null_drop,
       anomaly_explain(NULL, ARRAY[1, 2, 3]::real[]) IS NULL AS null_explain,
       anomaly_is_anomaly(NULL, ARRAY[1, 2, 3]::real[], 0.1) IS NULL AS null_flag;
SELECT anomaly_drop('') AS empty_drop, anomaly_drop('no such model') AS missing_drop;
SELECT anomaly_train(repeat('x', 1025), 'SELECT a, b, c FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train(repeat('é', 600), 'SELECT a, b, c FROM bad_data', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- (the message would print the name: show the SQLSTATE only)
SELECT bad_try($$SELECT anomaly_score(repeat('x', 100000), ARRAY[1, 2, 3]::real[])$$) AS sqlstate;
-- the longest name works
SELECT anomaly_train(repeat('n', 1024), 'SELECT a, b, c FROM bad_data', 'zscore')->'features' AS features;
SELECT anomaly_score(repeat('n', 1024), ARRAY[1, 2, 3]::real[]) = anomaly_score('bad', ARRAY[1, 2, 3]::real[]) AS same_score;
SELECT anomaly_drop(repeat('n', 1024)) AS dropped;
-- format directives and quotes in an unknown name are printed, not interpreted
SELECT anomaly_score('%s%n%d '' " \ ;--', ARRAY[1, 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET anomaly.model = '%s%n"''';
SELECT anomaly_score(ARRAY[1, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET anomaly.model;

-- odd model and feature names round-trip through the catalog, scoring,
-- explain, row input, anomaly.model, and drop
CREATE TABLE odd_names (name text);
INSERT INTO odd_names VALUES
    ('it''s "quoted"'), ('back\slash\\'), ('naïve Größe ☃ 模型 🚀'), (' padded '),
    (E'tab\there\nnewline'), ('%s %n %d %%'), ('x''); DROP TABLE bad_data; --'),
    ('anomaly_models'), ('UPPER lower'), ('a.b.c'), ('$1 $$ $q$'), ('{"json": [1]}');
CREATE TABLE odd_features AS
SELECT a AS "it's ""q""", b AS "back\slash", c AS "☃ é" FROM bad_data;
SELECT count(*) AS trained
FROM odd_names, LATERAL (SELECT anomaly_train(name, 'SELECT * FROM odd_features', 'zscore')) t;
SELECT count(*) AS listed FROM anomaly_models m JOIN odd_names o ON o.name = m.name;
SELECT DISTINCT feature_names FROM anomaly_models m JOIN odd_names o ON o.name = m.name;
SELECT count(*) FILTER (WHERE anomaly_score(name, ARRAY[1, 2, 3]::real[]) = anomaly_score('bad', ARRAY[1, 2, 3]::real[])) AS same_scores,
       count(*) FILTER (WHERE anomaly_explain(name, ARRAY[1, 2, 3]::real[])->'features'
                              @> '[{"name": "it''s \"q\""}, {"name": "back\\slash"}, {"name": "☃ é"}]') AS explained,
       count(*) FILTER (WHERE anomaly_score(name, f) = anomaly_score('bad', ARRAY[1, 2, 3]::real[])) AS row_input
FROM odd_names, (SELECT 1 AS "it's ""q""", 2 AS "back\slash", 3 AS "☃ é") f;
SELECT set_config('anomaly.model', name, false) IS NOT NULL AS set,
       anomaly_score(ARRAY[1, 2, 3]::real[]) = anomaly_score('bad', ARRAY[1, 2, 3]::real[]) AS default_model
FROM odd_names WHERE name LIKE 'naïve%';
RESET anomaly.model;
SELECT count(*) FILTER (WHERE anomaly_drop(name)) AS dropped FROM odd_names;
SELECT count(*) AS models_left FROM anomaly_models m JOIN odd_names o ON o.name = m.name;
SELECT count(*) AS weights_left FROM anomaly_weights w JOIN odd_names o ON o.name = w.model;
SELECT to_regclass('bad_data') IS NOT NULL AS bad_data_still_there;

------------------------------------------------------------------------------
-- Query-time contamination
------------------------------------------------------------------------------

SELECT anomaly_is_anomaly('bad', ARRAY[1, 2, 3]::real[], 'Infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('bad', ARRAY[1, 2, 3]::numeric[], '-Infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('bad', ARRAY[1, 2, 3]::int[], 1.5);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the extremes that are valid: any rate strictly between 0 and 1
SELECT anomaly_is_anomaly('bad', ARRAY[0, 0, 0]::real[], 1e-300) AS tiny_rate,
       anomaly_is_anomaly('bad', ARRAY[0, 0, 0]::real[], 0.999999) AS huge_rate;

------------------------------------------------------------------------------
-- The same cases against every kind
------------------------------------------------------------------------------

-- %1$L is the kind's model, %2$L the kind
CREATE TABLE bad_cases (id int PRIMARY KEY, label text, stmt text);
INSERT INTO bad_cases VALUES
    (1, 'score: 2 of 3 features', $$SELECT anomaly_score(%1$L, ARRAY[1, 2]::real[])$$),
    (2, 'score: 100000 features', $$SELECT anomaly_score(%1$L, array_fill(1::float8, ARRAY[100000]))$$),
    (3, 'score: empty array', $$SELECT anomaly_score(%1$L, '{}'::real[])$$),
    (4, 'score: 2-D array', $$SELECT anomaly_score(%1$L, ARRAY[[1, 2, 3]]::float8[])$$),
    (5, 'score: NULL element', $$SELECT anomaly_score(%1$L, ARRAY[1, NULL, 3]::real[])$$),
    (6, 'score: NaN', $$SELECT anomaly_score(%1$L, ARRAY['NaN', 2, 3]::float8[])$$),
    (7, 'score: Infinity', $$SELECT anomaly_score(%1$L, ARRAY[1, 'Infinity', 3]::real[])$$),
    (8, 'score: -Infinity (numeric)', $$SELECT anomaly_score(%1$L, ARRAY[1, 2, '-Infinity']::numeric[])$$),
    (9, 'score: 1e300', $$SELECT anomaly_score(%1$L, ARRAY[1e300, 2, 3]::float8[])$$),
    (10, 'score: 1e400 (numeric)', $$SELECT anomaly_score(%1$L, ARRAY[1, 1e400, 3]::numeric[])$$),
    (11, 'explain: NaN', $$SELECT anomaly_explain(%1$L, ARRAY[1, 2, 'NaN']::real[])$$),
    (12, 'explain: 4 features', $$SELECT anomaly_explain(%1$L, ARRAY[1, 2, 3, 4]::int[])$$),
    (13, 'flag: contamination 0', $$SELECT anomaly_is_anomaly(%1$L, ARRAY[1, 2, 3]::real[], 0)$$),
    (14, 'flag: contamination 1', $$SELECT anomaly_is_anomaly(%1$L, ARRAY[1, 2, 3]::real[], 1)$$),
    (15, 'flag: contamination NaN', $$SELECT anomaly_is_anomaly(%1$L, ARRAY[1, 2, 3]::real[], 'NaN')$$),
    (16, 'flag: contamination -1', $$SELECT anomaly_is_anomaly(%1$L, ARRAY[1, 2, 3]::float8[], -1)$$),
    (17, 'row: missing field', $$SELECT anomaly_score(%1$L, x) FROM (SELECT 1 AS a, 2 AS b) x$$),
    (18, 'row: text field', $$SELECT anomaly_score(%1$L, x) FROM (SELECT 1 AS a, 2 AS b, 'x'::text AS c) x$$),
    (19, 'row: NULL field', $$SELECT anomaly_is_anomaly(%1$L, x) FROM (SELECT 1 AS a, NULL::int AS b, 3 AS c) x$$),
    (20, 'row: NaN field', $$SELECT anomaly_explain(%1$L, x) FROM (SELECT 1 AS a, 2 AS b, 'NaN'::float8 AS c) x$$),
    (21, 'score: extreme finite row', $$SELECT 1 / (s = s)::int FROM (SELECT anomaly_score(%1$L, ARRAY[3e38, -3e38, 3e38]::real[]) AS s) x$$),
    (22, 'explain: extreme finite row', $$SELECT 1 / (jsonb_typeof(e->'features') = 'array')::int FROM (SELECT anomaly_explain(%1$L, ARRAY[-3e38, 3e38, -3e38]::real[]) AS e) x$$),
    (23, 'flag: extreme finite row', $$SELECT anomaly_is_anomaly(%1$L, ARRAY[3e38, 3e38, 3e38]::real[], 0.01)$$),
    (24, 'train: no rows', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data WHERE false', %2$L)$$),
    (25, 'train: one row', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data WHERE id = 1', %2$L)$$),
    (26, 'train: constant rows', $$SELECT anomaly_train('t', 'SELECT 1 AS a, 2 AS b FROM bad_data', %2$L)$$),
    (27, 'train: NULL value', $$SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 9 THEN NULL ELSE b END FROM bad_data', %2$L)$$),
    (28, 'train: NaN value', $$SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 9 THEN ''NaN'' ELSE b END FROM bad_data', %2$L)$$),
    (29, 'train: Infinity in array', $$SELECT anomaly_train('t', 'SELECT ARRAY[a, CASE WHEN id = 9 THEN ''Infinity'' ELSE b END] FROM bad_data', %2$L)$$),
    (30, 'train: 1e300', $$SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 9 THEN 1e300 ELSE b END FROM bad_data', %2$L)$$),
    (31, 'train: text column', $$SELECT anomaly_train('t', 'SELECT a, id::text AS b FROM bad_data', %2$L)$$),
    (32, 'train: ragged arrays', $$SELECT anomaly_train('t', 'SELECT CASE WHEN id = 9 THEN ARRAY[a] ELSE ARRAY[a, b] END FROM bad_data', %2$L)$$),
    (33, 'train: 16385 features', $$SELECT anomaly_train('t', 'SELECT array_fill(a::real, ARRAY[16385]) FROM bad_data', %2$L)$$),
    (34, 'train: unknown option', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"no_such_option": 1}')$$),
    (35, 'train: contamination "x"', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"contamination": "x"}')$$),
    (36, 'train: contamination 0', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"contamination": 0}')$$),
    (37, 'train: contamination 1', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"contamination": 1}')$$),
    (38, 'train: contamination -1', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"contamination": -1}')$$),
    (39, 'train: seed -1', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"seed": -1}')$$),
    (40, 'train: seed 1.5', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"seed": 1.5}')$$),
    (41, 'train: max_rows 1', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"max_rows": 1}')$$),
    (42, 'train: max_rows "big"', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"max_rows": "big"}')$$),
    (43, 'train: standardize "yes"', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '{"standardize": "yes"}')$$),
    (44, 'train: options an array', $$SELECT anomaly_train('t', 'SELECT a, b, c FROM bad_data', %2$L, '[1, 2]')$$),
    (45, 'train: name too long', $$SELECT anomaly_train(repeat('y', 2000), 'SELECT a, b, c FROM bad_data', %2$L)$$),
    (46, 'train: query fails midway', $$SELECT anomaly_train('t', 'SELECT a, 1 / (id - 150) AS b FROM bad_data ORDER BY id', %2$L)$$),
    (47, 'train: not a query', $$SELECT anomaly_train('t', 'VACUUM bad_data', %2$L)$$);

CREATE TABLE bad_results (kind text, id int, sqlstate text);
DO $$
DECLARE
    k text;
    c record;
BEGIN
    FOR k IN SELECT kind FROM anomaly_kinds() LOOP
        PERFORM anomaly_train('bk_' || k, 'SELECT a, b, c FROM bad_data', k);
        FOR c IN SELECT * FROM bad_cases ORDER BY id LOOP
            INSERT INTO bad_results VALUES (k, c.id, bad_try(format(c.stmt, 'bk_' || k, k)));
        END LOOP;
    END LOOP;
END $$;

SELECT c.id, c.label, string_agg(DISTINCT r.sqlstate, ', ') AS sqlstates
FROM bad_cases c JOIN bad_results r USING (id)
GROUP BY c.id, c.label ORDER BY c.id;
-- every kind ran every case, and no bad case created a model
SELECT count(DISTINCT kind) = (SELECT count(*) FROM anomaly_kinds()) AS every_kind,
       count(*) = (SELECT count(*) FROM anomaly_kinds()) * (SELECT count(*) FROM bad_cases) AS every_case
FROM bad_results;
SELECT count(*) AS stray_models FROM anomaly_models WHERE name = 't' OR name LIKE 'yyy%';

-- odd names work with every kind: train, list, score (array and row input),
-- explain, drop
CREATE TABLE odd_kinds AS
SELECT kind, kind || ' it''s "odd" \ é ☃ %s;--' AS name FROM anomaly_kinds();
SELECT bool_and(anomaly_train(name, 'SELECT * FROM odd_features', kind) ? 'threshold') AS trained FROM odd_kinds;
SELECT count(*) = (SELECT count(*) FROM anomaly_kinds()) AS round_trip
FROM odd_kinds o
JOIN anomaly_models m ON m.name = o.name AND m.kind = o.kind,
     (SELECT 1 AS "it's ""q""", 2 AS "back\slash", 3 AS "☃ é") f
WHERE anomaly_score(o.name, f) = anomaly_score(o.name, ARRAY[1, 2, 3]::float8[])
  AND jsonb_array_length(anomaly_explain(o.name, ARRAY[1, 2, 3]::real[])->'features') = 3;
SELECT bool_and(anomaly_drop(name)) AS dropped FROM odd_kinds;
SELECT count(*) AS left_behind
FROM odd_kinds o
WHERE EXISTS (SELECT 1 FROM anomaly_models m WHERE m.name = o.name)
   OR EXISTS (SELECT 1 FROM anomaly_weights w WHERE w.model = o.name);

SELECT pg_backend_pid() = :start_pid AS same_backend;
SELECT count(*) FILTER (WHERE NOT anomaly_drop(name)) AS not_dropped FROM anomaly_models;
DROP FUNCTION bad_try(text);
DROP TABLE bad_cases, bad_results, bad_data, odd_names, odd_features, odd_kinds;
