-- A damaged catalog row is reported as data corruption (XX001) with a hint
-- to retrain, never trusted and never a crash.  Each case damages a fresh
-- copy of a good model inside a transaction that is rolled back.
\set VERBOSITY terse
CREATE TABLE cor_data AS SELECT i AS id, sin(i) AS a, cos(i) AS b, sin(2 * i) AS c FROM generate_series(1, 100) i;
SELECT anomaly_train('cor', 'SELECT a, b, c FROM cor_data', 'zscore') ? 'threshold' AS trained;
SELECT tensor, shape FROM anomaly_weights WHERE model = 'cor' ORDER BY tensor;

CREATE FUNCTION cor_try(damage text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE damage;
    PERFORM anomaly_score('cor', ARRAY[0.1, 0.2, 0.3]);
    RAISE EXCEPTION 'damage not detected';
EXCEPTION WHEN data_corrupted OR foreign_key_violation OR check_violation OR not_null_violation THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT cor_try($$UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET shape = '{2}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET shape = '{3,1}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET shape = '{-3}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET shape = '{1,1,1,1,3}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET shape = '{2147483647,2147483647}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{NaN,0,0}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{Infinity,0,0}' WHERE model = 'cor' AND tensor = 'zscore.scale'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{0,1,1}' WHERE model = 'cor' AND tensor = 'zscore.scale'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{-1,1,1}' WHERE model = 'cor' AND tensor = 'scaler.scale'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{{1,2},{3,4}}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$UPDATE anomaly_weights SET data = '{1,NULL,3}' WHERE model = 'cor' AND tensor = 'zscore.loc'$$);
SELECT cor_try($$DELETE FROM anomaly_weights WHERE model = 'cor' AND tensor = 'zscore.scale'$$);
SELECT cor_try($$DELETE FROM anomaly_weights WHERE model = 'cor' AND tensor = 'scaler.center'$$);
SELECT cor_try($$DELETE FROM anomaly_weights WHERE model = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET kind = 'nonesuch' WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET n_features = 4 WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET feature_names = '{a,b}' WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET feature_names = '{a,NULL,c}' WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET score_quantiles = '{1,2,3}' WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET threshold = 'NaN' WHERE name = 'cor'$$);
SELECT cor_try($$UPDATE anomaly_models SET n_features = 0 WHERE name = 'cor'$$);

-- the good model is untouched: every damage above was rolled back
SELECT anomaly_score('cor', ARRAY[0.1, 0.2, 0.3]) > 0 AS still_scores;
-- a damaged model is reported, and a retrain repairs it
UPDATE anomaly_weights SET data = data[1:1] WHERE model = 'cor' AND tensor = 'zscore.loc';
SELECT anomaly_score('cor', ARRAY[0.1, 0.2, 0.3]);
SELECT anomaly_train('cor', 'SELECT a, b, c FROM cor_data', 'zscore') ? 'threshold' AS retrained;
SELECT anomaly_score('cor', ARRAY[0.1, 0.2, 0.3]) > 0 AS scores_again;

DROP FUNCTION cor_try(text);
SELECT anomaly_drop('cor');
DROP TABLE cor_data;
