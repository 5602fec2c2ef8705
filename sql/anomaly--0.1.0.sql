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
