-- The vae kind: training, determinism, deterministic scores, explanations,
-- and its option errors.
CREATE TABLE vae_data AS
SELECT i,
       sin(i * 0.1) AS a,
       cos(i * 0.1) AS b,
       sin(i * 0.1) + 0.5 * cos(i * 0.1) + 0.05 * sin(i * 1.7) AS c,
       2 * sin(i * 0.037) AS d,
       sin(i * 0.037) * cos(i * 0.1) + 0.05 * cos(i * 2.3) AS e
FROM generate_series(1, 400) i;

SELECT s->>'kind' AS kind, s->>'rows' AS rows,
       (s->>'epochs_run')::int BETWEEN 1 AND (s->>'epochs')::int AS ran,
       jsonb_array_length(s->'loss_history') BETWEEN 1 AND 10 AS history
FROM anomaly_train('vae1', 'SELECT a, b, c, d, e FROM vae_data', 'vae') s;

-- the options as used, and the tensors of encoder and decoder
SELECT options FROM anomaly_models WHERE name = 'vae1';
SELECT tensor, shape FROM anomaly_weights WHERE model = 'vae1' ORDER BY tensor;

-- the same data and seed give bit-identical weights
SELECT anomaly_train('vae2', 'SELECT a, b, c, d, e FROM vae_data', 'vae')->>'rows' AS rows;
SELECT count(*) AS tensors, count(*) FILTER (WHERE w1.data = w2.data) AS identical
FROM anomaly_weights w1 JOIN anomaly_weights w2 ON w2.model = 'vae2' AND w2.tensor = w1.tensor
WHERE w1.model = 'vae1';

-- scores are deterministic (no sampling) and agree with the training quantiles
SELECT count(DISTINCT anomaly_score('vae1', ARRAY[0.5, 0.5, 0.7, 1, 0.2]::real[])) AS distinct_scores
FROM generate_series(1, 5);
SELECT abs(max(anomaly_score('vae1', ARRAY[a, b, c, d, e]::real[])) / m.score_quantiles[1001] - 1) < 1e-4 AS max_agrees,
       bool_and(anomaly_score('vae1', ARRAY[a, b, c, d, e]::real[]) > 0) AS positive
FROM vae_data, anomaly_models m
WHERE m.name = 'vae1'
GROUP BY m.score_quantiles;

-- the most normal training row (lowest score), and the same row with
-- feature d pushed far out
CREATE TABLE vae_probe AS
WITH normal AS (
    SELECT ARRAY[a, b, c, d, e]::real[] AS f, d AS v FROM vae_data
    ORDER BY anomaly_score('vae1', ARRAY[a, b, c, d, e]::real[]) LIMIT 1
)
SELECT 'normal' AS what, f FROM normal
UNION ALL
SELECT 'd far out', f[1:3] || (v + 12)::real || f[5:] FROM normal;

SELECT what, anomaly_is_anomaly('vae1', f) AS is_anomaly,
       CASE WHEN what = 'd far out' THEN anomaly_explain('vae1', f)->'features'->0->>'name' END AS first_feature
FROM vae_probe ORDER BY what DESC;

-- contributions are non-negative and add up to the score
SELECT what,
       bool_and((x->>'contribution')::float8 >= 0) AS non_negative,
       abs(sum((x->>'contribution')::float8) - anomaly_score('vae1', f)) <= 1e-9 * anomaly_score('vae1', f) AS adds_up
FROM vae_probe, jsonb_array_elements(anomaly_explain('vae1', f)->'features') x
GROUP BY what, f ORDER BY what DESC;

-- explicit layers, latent size and beta
SELECT (anomaly_train('vae3', 'SELECT a, b, c, d, e FROM vae_data', 'vae',
        '{"hidden": [12, 6], "latent_dim": 3, "beta": 0.5, "epochs": 20, "activation": "relu"}')->>'epochs_run')::int > 0 AS trained;
SELECT tensor, shape FROM anomaly_weights WHERE model = 'vae3' AND tensor LIKE '%.w%' ORDER BY tensor;

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM vae_data', 'vae', '{"latent_dim": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM vae_data', 'vae', '{"beta": -1}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM vae_data', 'vae', '{"epochs": -3}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM vae_data', 'vae', '{"hidden": "x"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM vae_data', 'vae', '{"activation": "softplus"}');

SELECT anomaly_drop(name) FROM anomaly_models WHERE name LIKE 'vae%' ORDER BY name;
DROP TABLE vae_data, vae_probe;
