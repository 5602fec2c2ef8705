-- The autoencoder kind: training, determinism, scoring and explanations,
-- and its option errors.
CREATE TABLE ae_data AS
SELECT i,
       sin(i * 0.1) AS a,
       cos(i * 0.1) AS b,
       sin(i * 0.1) + 0.5 * cos(i * 0.1) + 0.05 * sin(i * 1.7) AS c,
       2 * sin(i * 0.037) AS d,
       sin(i * 0.037) * cos(i * 0.1) + 0.05 * cos(i * 2.3) AS e
FROM generate_series(1, 400) i;

-- train with the default options
SELECT s->>'kind' AS kind, s->>'rows' AS rows, s->>'features' AS features,
       (s->>'epochs_run')::int BETWEEN 1 AND (s->>'epochs')::int AS ran,
       (s->>'train_loss')::float8 < 5 AS learned,
       jsonb_array_length(s->'loss_history') BETWEEN 1 AND 10 AS history
FROM anomaly_train('ae1', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder') s;

-- the options as used, with the default layers chosen from 5 features
SELECT options FROM anomaly_models WHERE name = 'ae1';

-- the network's tensors
SELECT tensor, shape FROM anomaly_weights WHERE model = 'ae1' ORDER BY tensor;

-- the same data and seed give bit-identical weights; another seed does not
SELECT anomaly_train('ae2', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder')->>'rows' AS rows;
SELECT anomaly_train('ae3', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"seed": 7}')->>'rows' AS rows;
SELECT count(*) AS tensors,
       count(*) FILTER (WHERE w1.shape = w2.shape AND w1.data = w2.data) AS same_as_ae2,
       count(*) FILTER (WHERE w1.data = w3.data) AS same_as_ae3
FROM anomaly_weights w1
JOIN anomaly_weights w2 ON w2.model = 'ae2' AND w2.tensor = w1.tensor
JOIN anomaly_weights w3 ON w3.model = 'ae3' AND w3.tensor = w1.tensor
WHERE w1.model = 'ae1' AND w1.tensor LIKE 'ae.w%';

-- one-row scoring agrees with the batch scoring behind the training quantiles
SELECT abs(max(anomaly_score('ae1', ARRAY[a, b, c, d, e]::real[])) / m.score_quantiles[1001] - 1) < 1e-4 AS max_agrees,
       count(*) FILTER (WHERE anomaly_is_anomaly('ae1', ARRAY[a, b, c, d, e]::real[])) BETWEEN 15 AND 25 AS about_5_percent
FROM ae_data, anomaly_models m
WHERE m.name = 'ae1'
GROUP BY m.score_quantiles;

-- the most normal training row (lowest score), and the same row with
-- feature c pushed far out
CREATE TABLE ae_probe AS
WITH normal AS (
    SELECT ARRAY[a, b, c, d, e]::real[] AS f, c AS v FROM ae_data
    ORDER BY anomaly_score('ae1', ARRAY[a, b, c, d, e]::real[]) LIMIT 1
)
SELECT 'normal' AS what, f FROM normal
UNION ALL
SELECT 'c far out', f[1:2] || (v + 6)::real || f[4:] FROM normal;

SELECT what, anomaly_is_anomaly('ae1', f) AS is_anomaly,
       CASE WHEN what = 'c far out' THEN anomaly_explain('ae1', f)->'features'->0->>'name' END AS first_feature
FROM ae_probe ORDER BY what DESC;

-- contributions are non-negative and add up to the score
SELECT what,
       bool_and((x->>'contribution')::float8 >= 0) AS non_negative,
       abs(sum((x->>'contribution')::float8) - anomaly_score('ae1', f)) <= 1e-9 * anomaly_score('ae1', f) AS adds_up,
       abs((anomaly_explain('ae1', f)->>'score')::float8 - anomaly_score('ae1', f)) <= 1e-9 * anomaly_score('ae1', f) AS same_score
FROM ae_probe, jsonb_array_elements(anomaly_explain('ae1', f)->'features') x
GROUP BY what, f ORDER BY what DESC;

-- other activations, explicit layers and the other robust losses train too
SELECT o->>'activation' AS activation,
       (anomaly_train('ae_' || (o->>'activation'), 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', o)->>'epochs_run')::int > 0 AS trained
FROM (VALUES ('{"activation": "relu", "hidden": [8, 3, 8], "epochs": 20}'::jsonb),
             ('{"activation": "leaky_relu", "hidden": [4], "epochs": 20, "validation_fraction": 0}'),
             ('{"activation": "sigmoid", "epochs": 20, "batch_size": 400, "robust_loss": "huber"}'),
             ('{"activation": "identity", "hidden": [2], "epochs": 20, "weight_decay": 0.01, "robust_loss": "none"}')) v(o);

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"epochs": -3}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"hidden": "x"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"hidden": []}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"hidden": [8, 0, 8]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"activation": "swish"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"learning_rate": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"validation_fraction": 0.9}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"batch_size": 1.5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"robust_loss": "l1"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"trim": 0.6}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM ae_data', 'autoencoder', '{"epoch": 10}');
SELECT count(*) AS bad_models FROM anomaly_models WHERE name = 'bad';

SELECT anomaly_drop(name) FROM anomaly_models WHERE name LIKE 'ae%' ORDER BY name;
DROP TABLE ae_data, ae_probe;
