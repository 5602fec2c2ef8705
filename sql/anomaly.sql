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
