-- anomaly: unsupervised anomaly detection inside PostgreSQL
\echo Use "CREATE EXTENSION anomaly" to load this file. \quit

--------------------------------------------------------------------------------
-- Catalog: models and their tensors live in ordinary tables, so they are
-- transactional, replicated and carried by pg_dump.
--------------------------------------------------------------------------------

CREATE TABLE @extschema@.anomaly_models (
    name            text PRIMARY KEY CHECK (name <> ''),
    kind            text NOT NULL,
    n_features      int NOT NULL CHECK (n_features > 0),
    feature_names   text[] NOT NULL,
    options         jsonb NOT NULL DEFAULT '{}',
    threshold       float8 NOT NULL,
    score_quantiles float8[] NOT NULL,
    metrics         jsonb NOT NULL DEFAULT '{}',
    trained_at      timestamptz NOT NULL DEFAULT now(),
    owner           name NOT NULL DEFAULT current_user
);

CREATE TABLE @extschema@.anomaly_weights (
    model   text NOT NULL REFERENCES @extschema@.anomaly_models (name)
                ON DELETE CASCADE ON UPDATE CASCADE,
    tensor  text NOT NULL,
    shape   int[] NOT NULL,
    data    real[] NOT NULL,
    PRIMARY KEY (model, tensor)
);

COMMENT ON TABLE @extschema@.anomaly_models IS 'anomaly detection models: one row per model';
COMMENT ON TABLE @extschema@.anomaly_weights IS 'tensors (weights and scaler statistics) of anomaly detection models';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.anomaly_models', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.anomaly_weights', '');

-- Who may do what (see README "Security"): reading the tables (GRANT SELECT)
-- is what scoring needs; writing them (GRANT INSERT, UPDATE, DELETE) is what
-- training needs, and row-level security lets a role replace or drop only
-- the models it owns (or whose owner role it has the privileges of).
-- Superusers and the extension's owner bypass these policies.
ALTER TABLE @extschema@.anomaly_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.anomaly_weights ENABLE ROW LEVEL SECURITY;
CREATE POLICY anomaly_models_read ON @extschema@.anomaly_models FOR SELECT USING (true);
CREATE POLICY anomaly_models_insert ON @extschema@.anomaly_models FOR INSERT
    WITH CHECK (owner OPERATOR(pg_catalog.=) CURRENT_USER);
CREATE POLICY anomaly_models_update ON @extschema@.anomaly_models FOR UPDATE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY anomaly_models_delete ON @extschema@.anomaly_models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY anomaly_weights_read ON @extschema@.anomaly_weights FOR SELECT USING (true);
CREATE POLICY anomaly_weights_write ON @extschema@.anomaly_weights FOR ALL
    USING (EXISTS (SELECT 1 FROM @extschema@.anomaly_models m
                   WHERE m.name OPERATOR(pg_catalog.=) model AND pg_catalog.pg_has_role(m.owner, 'USAGE')))
    WITH CHECK (EXISTS (SELECT 1 FROM @extschema@.anomaly_models m
                        WHERE m.name OPERATOR(pg_catalog.=) model AND pg_catalog.pg_has_role(m.owner, 'USAGE')));

-- Any change to the catalog, made by the extension's functions or by hand,
-- invalidates the decoded models cached in every backend at commit.
CREATE FUNCTION @extschema@.anomaly_invalidate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'anomaly_invalidate' LANGUAGE C;
COMMENT ON FUNCTION @extschema@.anomaly_invalidate() IS 'trigger: drop cached models in every backend at commit';

CREATE TRIGGER anomaly_models_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.anomaly_models
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.anomaly_invalidate();
CREATE TRIGGER anomaly_weights_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.anomaly_weights
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.anomaly_invalidate();

--------------------------------------------------------------------------------
-- Training and model management
--------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.anomaly_train(model text, query text, kind text DEFAULT 'autoencoder', options jsonb DEFAULT '{}')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_train' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.anomaly_train(text, text, text, jsonb) IS
    'train a model of the given kind on the rows of query (run as the caller) and store it, replacing one of the same name';

CREATE FUNCTION @extschema@.anomaly_drop(model text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_drop' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.anomaly_drop(text) IS 'remove a model and its weights; false if it did not exist';

CREATE FUNCTION @extschema@.anomaly_kinds(OUT kind text, OUT description text) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'anomaly_kinds' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_kinds() IS 'the detector kinds this build offers';

--------------------------------------------------------------------------------
-- Import and export (safetensors, the weight format of PyTorch and Hugging Face)
--------------------------------------------------------------------------------

-- Import writes the catalog and may run the option query as the caller, as
-- training does: VOLATILE, PARALLEL UNSAFE.  kind may be NULL when the file
-- names it (an exported model).  The naming convention is in src/io.c and the
-- README.
CREATE FUNCTION @extschema@.anomaly_import(model text, kind text, weights bytea, options jsonb DEFAULT '{}')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_import' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.anomaly_import(text, text, bytea, jsonb) IS
    'store a model from a safetensors file (PyTorch state_dict names encoder.0.weight, ... or an anomaly_export() file), replacing one of the same name';

-- Export only reads the catalog, with the statement's snapshot.
CREATE FUNCTION @extschema@.anomaly_export(model text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'anomaly_export' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_export(text) IS
    'the model as a safetensors file: float32 tensors, with kind, options, scaler, threshold, score quantiles and feature names in __metadata__';

--------------------------------------------------------------------------------
-- Scoring
--------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.anomaly_score(model text, features real[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(model text, features float8[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(features real[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_default' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(features float8[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_default' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_score(text, real[]) IS 'anomaly score of a row under a model; higher is more anomalous';
COMMENT ON FUNCTION @extschema@.anomaly_score(text, float8[]) IS 'anomaly score of a row under a model; higher is more anomalous';
COMMENT ON FUNCTION @extschema@.anomaly_score(real[]) IS 'anomaly score under the model named by the setting anomaly.model';
COMMENT ON FUNCTION @extschema@.anomaly_score(float8[]) IS 'anomaly score under the model named by the setting anomaly.model';

CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features real[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features float8[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features real[], contamination float8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_rate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features float8[], contamination float8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_rate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, real[]) IS 'true when the score is above the model''s threshold';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, float8[]) IS 'true when the score is above the model''s threshold';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, real[], float8) IS 'true when the score is above the training-score quantile 1 - contamination';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, float8[], float8) IS 'true when the score is above the training-score quantile 1 - contamination';

CREATE FUNCTION @extschema@.anomaly_explain(model text, features real[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_explain(model text, features float8[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, real[]) IS 'score, threshold, verdict and per-feature contributions, largest first';
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, float8[]) IS 'score, threshold, verdict and per-feature contributions, largest first';

-- Exact-match overloads so that ARRAY[...] of numeric, integer or bigint
-- columns resolves without a cast (real[] and float8[] would be ambiguous).
CREATE FUNCTION @extschema@.anomaly_score(model text, features numeric[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(features numeric[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_default' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features numeric[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features numeric[], contamination float8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_rate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_explain(model text, features numeric[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_score(text, numeric[]) IS 'anomaly score of a row under a model; higher is more anomalous';
COMMENT ON FUNCTION @extschema@.anomaly_score(numeric[]) IS 'anomaly score under the model named by the setting anomaly.model';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, numeric[]) IS 'true when the score is above the model''s threshold';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, numeric[], float8) IS 'true when the score is above the training-score quantile 1 - contamination';
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, numeric[]) IS 'score, threshold, verdict and per-feature contributions, largest first';
CREATE FUNCTION @extschema@.anomaly_score(model text, features int[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(features int[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_default' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features int[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features int[], contamination float8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_rate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_explain(model text, features int[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_score(text, int[]) IS 'anomaly score of a row under a model; higher is more anomalous';
COMMENT ON FUNCTION @extschema@.anomaly_score(int[]) IS 'anomaly score under the model named by the setting anomaly.model';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, int[]) IS 'true when the score is above the model''s threshold';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, int[], float8) IS 'true when the score is above the training-score quantile 1 - contamination';
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, int[]) IS 'score, threshold, verdict and per-feature contributions, largest first';
CREATE FUNCTION @extschema@.anomaly_score(model text, features bigint[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_score(features bigint[]) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_default' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features bigint[]) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, features bigint[], contamination float8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_rate' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_explain(model text, features bigint[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_score(text, bigint[]) IS 'anomaly score of a row under a model; higher is more anomalous';
COMMENT ON FUNCTION @extschema@.anomaly_score(bigint[]) IS 'anomaly score under the model named by the setting anomaly.model';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, bigint[]) IS 'true when the score is above the model''s threshold';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, bigint[], float8) IS 'true when the score is above the training-score quantile 1 - contamination';
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, bigint[]) IS 'score, threshold, verdict and per-feature contributions, largest first';

--------------------------------------------------------------------------------
-- Row input: the model's feature_names pick the fields of any composite value
-- (SELECT anomaly_score('payments', p) FROM payments p)
--------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.anomaly_score(model text, "row" record) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_score_row' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_is_anomaly(model text, "row" record) RETURNS boolean
    AS 'MODULE_PATHNAME', 'anomaly_is_anomaly_row' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_explain(model text, "row" record) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_explain_row' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_score(text, record) IS 'anomaly score of a row whose fields are named like the model''s features';
COMMENT ON FUNCTION @extschema@.anomaly_is_anomaly(text, record) IS 'true when the score of a row (fields named like the features) is above the threshold';
COMMENT ON FUNCTION @extschema@.anomaly_explain(text, record) IS 'explanation of a row whose fields are named like the model''s features';

--------------------------------------------------------------------------------
-- Training history: one row per anomaly_train() run, written in the run's
-- transaction.  Kept when the model is dropped (it is the record of what was
-- deployed); a model created again under the same name continues the version
-- numbers.  Delete old rows by hand if they are not wanted.
--------------------------------------------------------------------------------

CREATE TABLE @extschema@.anomaly_training_runs (
    model             text NOT NULL,
    version           int NOT NULL CHECK (version > 0),
    kind              text NOT NULL,
    trained_at        timestamptz NOT NULL DEFAULT now(),
    trained_by        name NOT NULL DEFAULT current_user,
    n_features        int NOT NULL,
    feature_names     text[] NOT NULL,
    rows              bigint NOT NULL,
    seconds           float8 NOT NULL,
    threshold         float8 NOT NULL,
    options           jsonb NOT NULL DEFAULT '{}',
    metrics           jsonb NOT NULL DEFAULT '{}',
    score_percentiles float8[] NOT NULL CHECK (cardinality(score_percentiles) = 101),
    PRIMARY KEY (model, version)
);
CREATE INDEX anomaly_training_runs_trained_at ON @extschema@.anomaly_training_runs (trained_at);

COMMENT ON TABLE @extschema@.anomaly_training_runs IS
    'one row per anomaly_train() run: version, threshold, metrics and training-score percentiles (score_percentiles[p + 1] is the p-th percentile)';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.anomaly_training_runs', '');

--------------------------------------------------------------------------------
-- Progress of running trainings (needs shared_preload_libraries = 'anomaly';
-- otherwise empty, with a NOTICE)
--------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.anomaly_progress(
    OUT pid int, OUT model text, OUT kind text, OUT phase text, OUT epoch int, OUT epochs int,
    OUT rows bigint, OUT loss float8, OUT started_at timestamptz, OUT updated_at timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'anomaly_progress' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.anomaly_progress() IS 'running anomaly_train() calls, from shared memory (library preloaded)';

CREATE VIEW @extschema@.anomaly_progress AS
    SELECT p.pid, p.model, p.kind, p.phase, p.epoch, p.epochs, p.rows, p.loss, p.started_at,
           pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) p.started_at AS elapsed,
           p.updated_at
    FROM @extschema@.anomaly_progress() p;
COMMENT ON VIEW @extschema@.anomaly_progress IS
    'running trainings: model, kind, phase, epoch, rows and elapsed time (needs shared_preload_libraries = ''anomaly'')';

--------------------------------------------------------------------------------
-- Scheduled detection: anomaly_detect() scores the rows added to a table
-- since its last run and records the anomalous ones as alerts.
--------------------------------------------------------------------------------

-- How far anomaly_detect() got, per model and source table.  last_key is the
-- largest key scored, as jsonb (to_jsonb of the key column's value).
CREATE TABLE @extschema@.anomaly_watermarks (
    model        text NOT NULL,
    source       regclass NOT NULL,
    key_column   name NOT NULL,
    last_key     jsonb,
    last_run_at  timestamptz,
    runs         bigint NOT NULL DEFAULT 0,
    rows_scored  bigint NOT NULL DEFAULT 0,
    alerts       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (model, source)
);
COMMENT ON TABLE @extschema@.anomaly_watermarks IS
    'anomaly_detect() progress per (model, source): the largest key scored and running totals';

-- Alerts written by anomaly_detect() when no alerts table is named.  A table
-- of your own works too if it has these columns (others need defaults).
CREATE TABLE @extschema@.anomaly_alerts (
    model        text NOT NULL,
    source       regclass NOT NULL,
    key          text NOT NULL,
    score        float8 NOT NULL,
    threshold    float8 NOT NULL,
    explanation  jsonb NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, source, key)
);
CREATE INDEX anomaly_alerts_detected_at ON @extschema@.anomaly_alerts (detected_at);
COMMENT ON TABLE @extschema@.anomaly_alerts IS
    'anomalous rows found by anomaly_detect(): key, score, threshold, explanation (anomaly_explain) and time';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.anomaly_watermarks', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.anomaly_alerts', '');

CREATE FUNCTION @extschema@.anomaly_wait_for_writers(source regclass) RETURNS int
    AS 'MODULE_PATHNAME', 'anomaly_wait_for_writers' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.anomaly_wait_for_writers(regclass) IS
    'wait for the transactions writing to a table now (RowExclusiveLock holders) to end; returns how many there were';

-- anomaly_detect(model, source, key_column, ...): one detection run.
--
-- Which rows: those with key_column > the watermark of (model, source), up to
-- an upper key M chosen from the committed rows (the max_rows-th key if
-- max_rows is given, and no later than clock_timestamp() - lag for a time key
-- if lag is given).  The run then waits for the transactions writing to the
-- source at that moment (anomaly_wait_for_writers) and reads the rows up to M
-- with a new snapshot, so a row whose key was drawn before M's row (identity
-- or serial key with CACHE 1, or a clock_timestamp() default) is not missed
-- even if its transaction commits late.  A key drawn long before the INSERT
-- (now() as default is the transaction's start time; an id taken by an
-- earlier statement) can be passed by the watermark before it commits; such
-- rows are never scored: use a clock_timestamp() default or the lag argument.
--
-- Features: the model's feature names pick the source's columns (row input),
-- or features is an SQL expression over the source's columns (alias s), such
-- as 'ARRAY[amount, n_items]', evaluated as the caller.
--
-- Concurrency: the watermark row is locked FOR UPDATE for the whole run, so
-- runs for the same (model, source) take turns and never score a row twice;
-- the model row is locked FOR SHARE, so the model cannot be replaced during a
-- run.  Must run at READ COMMITTED (each statement needs a new snapshot).
CREATE FUNCTION @extschema@.anomaly_detect(
    model text,
    source regclass,
    key_column name,
    alerts regclass DEFAULT NULL,
    features text DEFAULT NULL,
    threshold float8 DEFAULT NULL,
    max_rows bigint DEFAULT NULL,
    lag interval DEFAULT NULL,
    wait_for_writers boolean DEFAULT true,
    OUT rows_scored bigint,
    OUT alerts_written bigint,
    OUT watermark jsonb)
    RETURNS record
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $anomaly_detect$
DECLARE
    v_alerts    regclass := COALESCE(alerts, '@extschema@.anomaly_alerts'::regclass);
    v_keytype   text;
    v_keycat    "char";
    v_keycol    name;
    v_wm        jsonb;
    v_upper     jsonb;
    v_threshold float8;
    v_feat      text;
    v_range     text;
BEGIN
    IF model IS NULL OR source IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'model, source and key_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF max_rows IS NOT NULL AND max_rows OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1, got %', max_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'anomaly_detect must run at isolation level READ COMMITTED'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Rows committed during the run would be passed by the watermark without being scored.',
                  HINT = 'Call it outside an explicit REPEATABLE READ or SERIALIZABLE transaction.';
    END IF;

    -- the key column and its type
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory
      INTO v_keytype, v_keycat
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
     WHERE a.attrelid OPERATOR(pg_catalog.=) anomaly_detect.source
       AND a.attname OPERATOR(pg_catalog.=) anomaly_detect.key_column
       AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
    IF v_keytype IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', key_column, source
            USING ERRCODE = 'undefined_column';
    END IF;
    IF lag IS NOT NULL AND v_keycat OPERATOR(pg_catalog.<>) 'D' THEN
        RAISE EXCEPTION 'lag needs a date or timestamp key column, but "%" has type %', key_column, v_keytype
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Pass lag => NULL for a numeric key.';
    END IF;

    -- the model's threshold; FOR SHARE keeps the model as it is until commit
    SELECT m.threshold INTO v_threshold
      FROM @extschema@.anomaly_models m
     WHERE m.name OPERATOR(pg_catalog.=) anomaly_detect.model
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'anomaly model "%" does not exist', model
            USING ERRCODE = 'undefined_object',
                  HINT = 'Train it first with anomaly_train().';
    END IF;
    v_threshold := COALESCE(threshold, v_threshold);

    -- the watermark row, created on the first run, locked until commit: a
    -- concurrent run for the same (model, source) waits here, then reads the
    -- watermark this run leaves
    INSERT INTO @extschema@.anomaly_watermarks AS w (model, source, key_column)
    VALUES (anomaly_detect.model, anomaly_detect.source, anomaly_detect.key_column)
    ON CONFLICT DO NOTHING;
    SELECT w.last_key, w.key_column INTO v_wm, v_keycol
      FROM @extschema@.anomaly_watermarks w
     WHERE w.model OPERATOR(pg_catalog.=) anomaly_detect.model
       AND w.source OPERATOR(pg_catalog.=) anomaly_detect.source
       FOR UPDATE;
    IF v_keycol OPERATOR(pg_catalog.<>) key_column THEN
        RAISE EXCEPTION 'anomaly_detect for model "%" on % uses key column "%", not "%"', model, source, v_keycol, key_column
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Delete the row of anomaly_watermarks to start over with another key column.';
    END IF;

    -- the rows of this run: key > watermark (and <= now - lag)
    v_range := pg_catalog.format('s.%I IS NOT NULL', key_column);
    IF v_wm IS NOT NULL THEN
        v_range := v_range OPERATOR(pg_catalog.||) pg_catalog.format(
            ' AND s.%I OPERATOR(pg_catalog.>) ($1 OPERATOR(pg_catalog.#>>) ''{}''::text[])::%s',
            key_column, v_keytype);
    END IF;
    IF lag IS NOT NULL THEN
        v_range := v_range OPERATOR(pg_catalog.||) pg_catalog.format(
            ' AND s.%I OPERATOR(pg_catalog.<=) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2)', key_column);
    END IF;

    -- the upper key M, from committed rows
    IF max_rows IS NULL THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.to_jsonb(s.%1$I) FROM %2$s s WHERE %3$s ORDER BY s.%1$I DESC LIMIT 1',
            key_column, source, v_range)
            INTO v_upper USING v_wm, lag;
    ELSE
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.to_jsonb(x.k) FROM (SELECT s.%1$I AS k FROM %2$s s WHERE %3$s ORDER BY s.%1$I LIMIT $3) x ORDER BY x.k DESC LIMIT 1',
            key_column, source, v_range)
            INTO v_upper USING v_wm, lag, max_rows;
    END IF;

    rows_scored := 0;
    alerts_written := 0;
    IF v_upper IS NOT NULL THEN
        -- rows with a key <= M still being written are committed after this
        IF wait_for_writers THEN
            PERFORM @extschema@.anomaly_wait_for_writers(source);
        END IF;

        IF features IS NULL THEN
            v_feat := 's';
        ELSE
            v_feat := '(' OPERATOR(pg_catalog.||) features OPERATOR(pg_catalog.||) ')';
        END IF;
        -- score every row once (OFFSET 0 keeps the subquery from being
        -- flattened, which would evaluate the score twice); explain only the
        -- anomalous ones; count both in the same statement
        EXECUTE pg_catalog.format(
            'WITH scored AS MATERIALIZED ('
            '  SELECT x.k, x.score, x.score OPERATOR(pg_catalog.>) $4 AS hit,'
            '         CASE WHEN x.score OPERATOR(pg_catalog.>) $4 THEN @extschema@.anomaly_explain($5, x.f) END AS explanation'
            '  FROM (SELECT s.%1$I AS k, %4$s AS f, @extschema@.anomaly_score($5, %4$s) AS score'
            '        FROM %2$s s WHERE %3$s AND s.%1$I OPERATOR(pg_catalog.<=) ($6 OPERATOR(pg_catalog.#>>) ''{}''::text[])::%5$s'
            '        OFFSET 0) x),'
            ' ins AS ('
            '  INSERT INTO %6$s (model, source, key, score, threshold, explanation, detected_at)'
            '  SELECT $5, $7, c.k, c.score, $4, c.explanation, pg_catalog.now() FROM scored c WHERE c.hit'
            '  ON CONFLICT DO NOTHING RETURNING 1)'
            ' SELECT (SELECT pg_catalog.count(*) FROM scored), (SELECT pg_catalog.count(*) FROM ins)',
            key_column, source, v_range, v_feat, v_keytype, v_alerts)
            INTO rows_scored, alerts_written
            USING v_wm, lag, max_rows, v_threshold, model, v_upper, source;
        v_wm := v_upper;
    END IF;

    UPDATE @extschema@.anomaly_watermarks w
       SET last_key = v_wm,
           last_run_at = pg_catalog.now(),
           runs = w.runs OPERATOR(pg_catalog.+) 1,
           rows_scored = w.rows_scored OPERATOR(pg_catalog.+) anomaly_detect.rows_scored,
           alerts = w.alerts OPERATOR(pg_catalog.+) anomaly_detect.alerts_written
     WHERE w.model OPERATOR(pg_catalog.=) anomaly_detect.model
       AND w.source OPERATOR(pg_catalog.=) anomaly_detect.source;
    watermark := v_wm;
END
$anomaly_detect$;
COMMENT ON FUNCTION @extschema@.anomaly_detect(text, regclass, name, regclass, text, float8, bigint, interval, boolean) IS
    'score the rows of source added since the last run (key_column above the watermark) and write the anomalous ones to alerts';

--------------------------------------------------------------------------------
-- Evaluation and thresholds
--
-- Aggregates over scores (and labels, true = anomaly) that agree with
-- scikit-learn, and thresholds picked from a score distribution.  All are
-- parallel safe (combine, serialize and deserialize functions).  Rows with a
-- NULL score, flag or label are skipped; the result is NULL when no row is
-- left, and for ROC-AUC and average precision also when only one class is
-- present (the measure is undefined; scikit-learn raises an error).  A NaN
-- score is an error (SQLSTATE 22000); infinite scores rank as the largest or
-- smallest, except in the POT fit, which rejects them.  The rank-based
-- aggregates keep every score (8 bytes a row) and sort once at the end.
--------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.anomaly_metrics_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_metrics_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_metrics_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'anomaly_metrics_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_metrics_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_metrics_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_metrics_combine(internal, internal) IS 'support: merge two states of the score-collecting aggregates';
COMMENT ON FUNCTION @extschema@.anomaly_metrics_serialize(internal) IS 'support: serialize a state of the score-collecting aggregates';
COMMENT ON FUNCTION @extschema@.anomaly_metrics_deserialize(bytea, internal) IS 'support: deserialize a state of the score-collecting aggregates';

CREATE FUNCTION @extschema@.anomaly_rank_accum(internal, float8, boolean) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_rank_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_roc_auc_final(internal) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_roc_auc_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_pr_auc_final(internal) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_pr_auc_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_rank_accum(internal, float8, boolean) IS 'support: collect a (score, label) pair';
COMMENT ON FUNCTION @extschema@.anomaly_roc_auc_final(internal) IS 'support: ROC-AUC of the collected pairs';
COMMENT ON FUNCTION @extschema@.anomaly_pr_auc_final(internal) IS 'support: average precision of the collected pairs';

CREATE AGGREGATE @extschema@.anomaly_roc_auc(score float8, label boolean) (
    SFUNC = @extschema@.anomaly_rank_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_roc_auc_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_roc_auc(float8, boolean) IS
    'area under the ROC curve of score against label (true = anomaly), ties counted half as scikit-learn''s roc_auc_score; NULL unless both classes occur';

CREATE AGGREGATE @extschema@.anomaly_pr_auc(score float8, label boolean) (
    SFUNC = @extschema@.anomaly_rank_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_pr_auc_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_pr_auc(float8, boolean) IS
    'average precision (area under the precision-recall curve) of score against label, as scikit-learn''s average_precision_score; NULL unless both classes occur';

CREATE FUNCTION @extschema@.anomaly_precision_at_k_accum(internal, float8, boolean, int) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_precision_at_k_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_precision_at_k_final(internal) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_precision_at_k_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_precision_at_k_accum(internal, float8, boolean, int) IS 'support: collect a (score, label) pair and k';
COMMENT ON FUNCTION @extschema@.anomaly_precision_at_k_final(internal) IS 'support: precision among the k highest collected scores';

CREATE AGGREGATE @extschema@.anomaly_precision_at_k(score float8, label boolean, k int) (
    SFUNC = @extschema@.anomaly_precision_at_k_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_precision_at_k_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_precision_at_k(float8, boolean, int) IS
    'fraction of anomalies among the k highest scores (all rows when fewer); a tied group at place k counts in proportion; k constant, at least 1';

CREATE FUNCTION @extschema@.anomaly_confusion_accum(bigint[], boolean, boolean) RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'anomaly_confusion_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_confusion_combine(bigint[], bigint[]) RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'anomaly_confusion_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_confusion_final(bigint[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_confusion_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_confusion_accum(bigint[], boolean, boolean) IS 'support: count a (flag, label) pair into {tp, fp, tn, fn}';
COMMENT ON FUNCTION @extschema@.anomaly_confusion_combine(bigint[], bigint[]) IS 'support: add two confusion count states';
COMMENT ON FUNCTION @extschema@.anomaly_confusion_final(bigint[]) IS 'support: confusion counts and rates as jsonb';

CREATE AGGREGATE @extschema@.anomaly_confusion(flag boolean, label boolean) (
    SFUNC = @extschema@.anomaly_confusion_accum,
    STYPE = bigint[],
    INITCOND = '{0,0,0,0}',
    FINALFUNC = @extschema@.anomaly_confusion_final,
    COMBINEFUNC = @extschema@.anomaly_confusion_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_confusion(boolean, boolean) IS
    'confusion counts of flag against label: {"tp","fp","tn","fn","precision","recall","f1","accuracy"}; a rate with a zero denominator is 0 as in scikit-learn';

CREATE FUNCTION @extschema@.anomaly_threshold_accum(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_threshold_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_threshold_final(internal) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_threshold_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_threshold_accum(internal, float8, float8) IS 'support: collect a score and the contamination';
COMMENT ON FUNCTION @extschema@.anomaly_threshold_final(internal) IS 'support: the 1 - contamination quantile of the collected scores';

CREATE AGGREGATE @extschema@.anomaly_threshold(score float8, contamination float8) (
    SFUNC = @extschema@.anomaly_threshold_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_threshold_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_threshold(float8, float8) IS
    'the score above which the fraction contamination (constant, 0 to 1) of the scores lies: their 1 - contamination quantile, interpolated linearly as in training';

-- Peaks over threshold (SPOT, Siffer et al. 2017): a generalized Pareto tail
-- fitted above the level quantile gives the score exceeded with probability
-- risk.  It needs at least 3 scores above the level quantile (an error
-- otherwise), uses maximum likelihood from 10 on and the method of moments
-- below.  Aggregates take no defaults, hence three arities.
CREATE FUNCTION @extschema@.anomaly_pot_accum(internal, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_pot_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_pot_accum(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_pot_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_pot_accum(internal, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'anomaly_pot_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_pot_threshold_final(internal) RETURNS float8
    AS 'MODULE_PATHNAME', 'anomaly_pot_threshold_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.anomaly_pot_fit_final(internal) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'anomaly_pot_fit_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_pot_accum(internal, float8) IS 'support: collect a score (risk 1e-4, level 0.98)';
COMMENT ON FUNCTION @extschema@.anomaly_pot_accum(internal, float8, float8) IS 'support: collect a score and the risk (level 0.98)';
COMMENT ON FUNCTION @extschema@.anomaly_pot_accum(internal, float8, float8, float8) IS 'support: collect a score, the risk and the level';
COMMENT ON FUNCTION @extschema@.anomaly_pot_threshold_final(internal) IS 'support: POT threshold of the collected scores';
COMMENT ON FUNCTION @extschema@.anomaly_pot_fit_final(internal) IS 'support: POT threshold and tail fit of the collected scores';

CREATE AGGREGATE @extschema@.anomaly_pot_threshold(score float8) (
    SFUNC = @extschema@.anomaly_pot_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_pot_threshold_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.anomaly_pot_threshold(score float8, risk float8) (
    SFUNC = @extschema@.anomaly_pot_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_pot_threshold_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.anomaly_pot_threshold(score float8, risk float8, level float8) (
    SFUNC = @extschema@.anomaly_pot_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_pot_threshold_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_pot_threshold(float8) IS
    'automatic threshold by peaks over threshold (SPOT): the score exceeded with probability 1e-4, from a generalized Pareto tail fitted above the 0.98 quantile';
COMMENT ON AGGREGATE @extschema@.anomaly_pot_threshold(float8, float8) IS
    'automatic threshold by peaks over threshold (SPOT): the score exceeded with probability risk, tail fitted above the 0.98 quantile';
COMMENT ON AGGREGATE @extschema@.anomaly_pot_threshold(float8, float8, float8) IS
    'automatic threshold by peaks over threshold (SPOT): the score exceeded with probability risk (0 < risk < 1 - level), tail fitted above the level quantile';

CREATE AGGREGATE @extschema@.anomaly_pot_fit(score float8, risk float8, level float8) (
    SFUNC = @extschema@.anomaly_pot_accum,
    STYPE = internal,
    FINALFUNC = @extschema@.anomaly_pot_fit_final,
    COMBINEFUNC = @extschema@.anomaly_metrics_combine,
    SERIALFUNC = @extschema@.anomaly_metrics_serialize,
    DESERIALFUNC = @extschema@.anomaly_metrics_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.anomaly_pot_fit(float8, float8, float8) IS
    'anomaly_pot_threshold with its fit as jsonb: threshold, initial_threshold, rows, peaks, gamma (tail shape: > 0 heavy, < 0 bounded), sigma, method (mle, exponential or moments)';
