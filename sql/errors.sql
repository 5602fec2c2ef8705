-- Bad input: every case gets an error with a specific SQLSTATE (echoed after
-- the error), never a crash.  Every statement after an error runs in the same
-- backend, which the last query checks.

SELECT pg_backend_pid() AS start_pid \gset

CREATE TABLE e AS
SELECT i AS id, sin(i) AS a, cos(i * 1.7) AS b, (i % 10)::float8 AS c
FROM generate_series(1, 100) AS i;
SELECT anomaly_train('e', 'SELECT a, b, c FROM e', 'zscore')->'features' AS features;
SELECT round(anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[])::numeric, 6) AS score_before \gset

------------------------------------------------------------------------------
-- Scoring: unknown model, anomaly.model unset, empty name
------------------------------------------------------------------------------

SELECT anomaly_score('nope', ARRAY[1, 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('nope', ARRAY[1, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('nope', ARRAY[1, 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('nope', ARRAY[1, 2, 3]::real[], 0.1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('nope', ARRAY[1, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('', ARRAY[1, 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score(ARRAY[1, 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET anomaly.model = '';
SELECT anomaly_score(ARRAY[1, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET anomaly.model = 'nope';
SELECT anomaly_score(ARRAY[1, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET anomaly.model;
-- the setting's prefix is reserved
SET anomaly.no_such_setting = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- Scoring: NULLs, shapes, non-finite values
------------------------------------------------------------------------------

-- the functions are STRICT: a NULL array or model name gives NULL
SELECT anomaly_score('e', NULL::real[]) IS NULL AS null_score,
       anomaly_score(NULL, ARRAY[1, 2, 3]::real[]) IS NULL AS null_model,
       anomaly_is_anomaly('e', NULL::float8[]) IS NULL AS null_flag,
       anomaly_is_anomaly('e', ARRAY[1, 2, 3]::float8[], NULL) IS NULL AS null_rate,
       anomaly_explain('e', NULL::float8[]) IS NULL AS null_explain;

SELECT anomaly_score('e', ARRAY[1, NULL, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('e', ARRAY[NULL, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('e', ARRAY[[1, 2, 3], [4, 5, 6]]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('e', ARRAY[[1, 2, 3]]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('e', ARRAY[1, 2]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('e', ARRAY[1, 2, 3, 4]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('e', '{}'::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('e', ARRAY[1, 'NaN', 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_score('e', ARRAY[1, 2, 'Infinity']::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('e', ARRAY['-Infinity', 2, 3]::real[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_explain('e', ARRAY[1, 'NaN', 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- finite in double precision, but out of range for the model's real arithmetic
SELECT anomaly_score('e', ARRAY[1e300, 2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an integer array matches both overloads: cast it
SELECT anomaly_score('e', ARRAY[1, 2, 3]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT round(anomaly_score('e', ARRAY[1, 2, 3]::float8[])::numeric, 4) AS with_cast;
-- arrays with another lower bound are fine
SELECT anomaly_score('e', '[0:2]={0.1,0.2,3}'::float8[]) = anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]) AS lower_bound_ignored;

------------------------------------------------------------------------------
-- Scoring: contamination given at query time
------------------------------------------------------------------------------

SELECT anomaly_is_anomaly('e', ARRAY[1, 2, 3]::real[], 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('e', ARRAY[1, 2, 3]::real[], 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('e', ARRAY[1, 2, 3]::float8[], -0.1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_is_anomaly('e', ARRAY[1, 2, 3]::float8[], 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- Training: names, kind, options
------------------------------------------------------------------------------

SELECT anomaly_train('', 'SELECT a, b, c FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train(NULL, 'SELECT a, b, c FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', NULL, 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- (terse: the hint lists the kinds of this build)
\set VERBOSITY terse
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'no_such_kind');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'ZSCORE');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"robsut": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"epochs": 10}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"contamination": "x"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"contamination": 0.7}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"contamination": 0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"seed": -1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"seed": "42"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"max_rows": 1.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"max_rows": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"standardize": "yes"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '{"robust": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', '[{"robust": true}]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b, c FROM e', 'zscore', 'null');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- SQL NULL options mean no options
SELECT anomaly_train('null_options', 'SELECT a, b, c FROM e', 'zscore', NULL)->'options'->'contamination' AS contamination;
SELECT anomaly_drop('null_options');

------------------------------------------------------------------------------
-- Training: queries that fail or are not queries
------------------------------------------------------------------------------

SELECT anomaly_train('t', 'SELEC a FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a FROM no_such_table', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT no_such_column FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an error in the middle of the result
SELECT anomaly_train('t', 'SELECT a, 1 / (id - 50) AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'CREATE TABLE should_not_exist (x int)', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'INSERT INTO e VALUES (0, 1, 2, 3)', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a FROM e; SELECT b FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', '', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- none of these ran
SELECT to_regclass('should_not_exist') IS NULL AS no_table, count(*) AS rows_in_e FROM e;

------------------------------------------------------------------------------
-- Training: too little data, unusable columns, NULLs, non-finite values
------------------------------------------------------------------------------

SELECT anomaly_train('t', 'SELECT a, b FROM e WHERE false', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a, b] FROM e WHERE false', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, b FROM e WHERE id = 1', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT 1 AS x, 2.5 AS y FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[1, 2, 3] FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, id::text AS label FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT now() AS ts, a FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a::text, b::text] FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a > 0, b > 0] FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a, b] AS arr, c FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 7 THEN NULL ELSE b END AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT CASE WHEN id = 8 THEN NULL ELSE ARRAY[a, b] END FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a, CASE WHEN id = 9 THEN NULL ELSE b END] FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 10 THEN ''NaN'' ELSE b END AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 11 THEN ''Infinity'' ELSE b END AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a::real, CASE WHEN id = 12 THEN ''-Infinity'' ELSE b END::real AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 13 THEN ''NaN''::numeric ELSE b::numeric END AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[a, CASE WHEN id = 14 THEN ''Infinity'' ELSE b END] FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- finite, but out of range for the single precision models compute in
SELECT anomaly_train('t', 'SELECT a, CASE WHEN id = 15 THEN 1e300 ELSE b END AS b FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ARRAY[[a, b], [c, a]] FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT CASE WHEN id = 16 THEN ARRAY[a] ELSE ARRAY[a, b] END FROM e ORDER BY id', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT anomaly_train('t', 'SELECT ''{}''::real[] FROM e', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- nothing above created a model, and the model "e" is untouched
SELECT name FROM anomaly_models ORDER BY name;
SELECT round(anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[])::numeric, 6) = :score_before AS unchanged;

-- a failed retraining leaves the model as it was
SELECT anomaly_train('e', 'SELECT a, b, c FROM e WHERE false', 'zscore');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT round(anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[])::numeric, 6) = :score_before AS unchanged;

------------------------------------------------------------------------------
-- A damaged catalog is reported as corruption, not a crash
------------------------------------------------------------------------------

BEGIN;
UPDATE anomaly_weights SET shape = '{2}' WHERE model = 'e' AND tensor = 'zscore.loc';
SELECT anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'e' AND tensor = 'zscore.scale';
SELECT anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
UPDATE anomaly_weights SET data = '{1,0,1}' WHERE model = 'e' AND tensor = 'scaler.scale';
SELECT anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
DELETE FROM anomaly_weights WHERE model = 'e' AND tensor = 'zscore.loc';
SELECT anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
UPDATE anomaly_models SET kind = 'gone' WHERE name = 'e';
SELECT anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT round(anomaly_score('e', ARRAY[0.1, 0.2, 3]::float8[])::numeric, 6) = :score_before AS unchanged;

------------------------------------------------------------------------------
-- Errors caught in PL/pgSQL (subtransactions) leave the session usable
------------------------------------------------------------------------------

DO $$
DECLARE
    stmt text;
    caught text[] := '{}';
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        $q$SELECT anomaly_score('nope', ARRAY[1, 2, 3]::real[])$q$,
        $q$SELECT anomaly_score('e', ARRAY[1, NULL, 3]::real[])$q$,
        $q$SELECT anomaly_train('t', 'SELECT a FROM no_such_table', 'zscore')$q$,
        $q$SELECT anomaly_train('t', 'SELECT a, 1 / (id - 50) AS b FROM e', 'zscore')$q$,
        $q$SELECT anomaly_train('t', 'SELECT a, b FROM e', 'zscore', '{"bad": 1}')$q$]
    LOOP
        BEGIN
            EXECUTE stmt;
        EXCEPTION WHEN OTHERS THEN
            caught := caught || SQLSTATE;
        END;
    END LOOP;
    RAISE NOTICE 'caught %', caught;
END
$$;
SELECT anomaly_train('t', 'SELECT a, b FROM e', 'zscore')->'rows' AS rows_after_caught_errors;

SELECT pg_backend_pid() = :start_pid AS same_backend;
SELECT anomaly_drop(name) FROM anomaly_models ORDER BY name;
