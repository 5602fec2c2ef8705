-- The gan kind (GANomaly-style): training, determinism, stability,
-- explanations, and its option errors.
CREATE TABLE gan_data AS
SELECT i,
       sin(i * 0.1) AS a,
       cos(i * 0.1) AS b,
       sin(i * 0.1) + 0.5 * cos(i * 0.1) + 0.05 * sin(i * 1.7) AS c,
       2 * sin(i * 0.037) AS d,
       sin(i * 0.037) * cos(i * 0.1) + 0.05 * cos(i * 2.3) AS e,
       (i % 3 = 0) AS flag
FROM generate_series(1, 400) i;

SELECT s->>'kind' AS kind, s->>'rows' AS rows,
       (s->>'epochs_run')::int BETWEEN 1 AND (s->>'epochs')::int AS ran,
       (s->>'discriminator_loss')::float8 > 0 AS discriminator_trained,
       (s->>'lambda')::float8 >= 0 AS lambda_set
FROM anomaly_train('gan1', 'SELECT a, b, c, d, e, flag FROM gan_data', 'gan') s;

-- the options as used, and the stored networks (generator and discriminator features)
SELECT options FROM anomaly_models WHERE name = 'gan1';
SELECT tensor, shape FROM anomaly_weights WHERE model = 'gan1' ORDER BY tensor;

-- the same data and seed give bit-identical weights
SELECT anomaly_train('gan2', 'SELECT a, b, c, d, e, flag FROM gan_data', 'gan')->>'rows' AS rows;
SELECT count(*) AS tensors, count(*) FILTER (WHERE w1.data = w2.data) AS identical
FROM anomaly_weights w1 JOIN anomaly_weights w2 ON w2.model = 'gan2' AND w2.tensor = w1.tensor
WHERE w1.model = 'gan1';

-- stable: finite, not constant, and one-row scores agree with the training quantiles
SELECT bool_and(s >= 0 AND s < 'Infinity') AS finite,
       count(DISTINCT round(s::numeric, 6)) > 100 AS varied,
       abs(max(s) / (SELECT score_quantiles[1001] FROM anomaly_models WHERE name = 'gan1') - 1) < 1e-4 AS max_agrees
FROM (SELECT anomaly_score('gan1', ARRAY[a, b, c, d, e, flag::int]::real[]) AS s FROM gan_data) t;

-- the most normal training row (lowest score), and the same row with
-- feature b pushed far out
CREATE TABLE gan_probe AS
WITH normal AS (
    SELECT ARRAY[a, b, c, d, e, flag::int]::real[] AS f, b AS v FROM gan_data
    ORDER BY anomaly_score('gan1', ARRAY[a, b, c, d, e, flag::int]::real[]) LIMIT 1
)
SELECT 'normal' AS what, f FROM normal
UNION ALL
SELECT 'b far out', f[1:1] || (v - 6)::real || f[3:] FROM normal;

SELECT what, anomaly_is_anomaly('gan1', f) AS is_anomaly,
       CASE WHEN what = 'b far out' THEN anomaly_explain('gan1', f)->'features'->0->>'name' END AS first_feature
FROM gan_probe ORDER BY what DESC;

-- contributions are non-negative and add up to the score
SELECT what,
       bool_and((x->>'contribution')::float8 >= 0) AS non_negative,
       abs(sum((x->>'contribution')::float8) - anomaly_score('gan1', f)) <= 1e-9 * anomaly_score('gan1', f) AS adds_up
FROM gan_probe, jsonb_array_elements(anomaly_explain('gan1', f)->'features') x
GROUP BY what, f ORDER BY what DESC;

-- a strongly adversarial setting still trains to finite, varied scores
SELECT (s->>'epochs_run')::int > 0 AS trained
FROM anomaly_train('gan3', 'SELECT a, b, c, d, e, flag FROM gan_data', 'gan',
     '{"adversarial_weight": 10, "reconstruction_weight": 1, "hidden": [16, 8], "latent_dim": 2, "epochs": 30}') s;
SELECT bool_and(s >= 0 AND s < 'Infinity') AS finite, count(DISTINCT round(s::numeric, 6)) > 100 AS varied
FROM (SELECT anomaly_score('gan3', ARRAY[a, b, c, d, e, flag::int]::real[]) AS s FROM gan_data) t;

-- the code term (code_weight, default 1): training is the same without it, so
-- code_weight 0 gives the same networks, stores none of the code tensors,
-- and scores every row lower
SELECT (anomaly_train('gan4', 'SELECT a, b, c, d, e, flag FROM gan_data', 'gan',
        '{"code_weight": 0}')->>'code_lambda')::float8 AS code_lambda;
SELECT count(*) FILTER (WHERE tensor LIKE 'gan.code%') AS code_tensors,
       count(*) FILTER (WHERE tensor NOT LIKE 'gan.code%' AND tensor <> 'gan.lambda'
                        AND data = (SELECT data FROM anomaly_weights w WHERE w.model = 'gan1' AND w.tensor = v.tensor)) AS same_networks
FROM anomaly_weights v WHERE model = 'gan4';
SELECT bool_and(anomaly_score('gan1', f) > anomaly_score('gan4', f)) AS code_term_added
FROM (SELECT ARRAY[a, b, c, d, e, flag::int]::real[] AS f FROM gan_data) t;
-- a row beyond the training rows along the data (row 50 with its real
-- features doubled) ranks higher among the training rows' scores with the
-- code term than without
SELECT (SELECT count(*) FROM gan_data WHERE anomaly_score('gan1', ARRAY[a, b, c, d, e, flag::int]::real[]) < anomaly_score('gan1', p.f))
       > (SELECT count(*) FROM gan_data WHERE anomaly_score('gan4', ARRAY[a, b, c, d, e, flag::int]::real[]) < anomaly_score('gan4', p.f)) AS ranks_higher
FROM (SELECT ARRAY[2 * a, 2 * b, 2 * c, 2 * d, 2 * e, flag::int]::real[] AS f FROM gan_data WHERE i = 50) p;

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"reconstruction_weight": 0, "adversarial_weight": 0, "latent_weight": 0}');
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"feature_weight": -1}');
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"latent_dim": 0}');
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"epochs": -3}');
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"hidden": "x"}');
SELECT anomaly_train('bad', 'SELECT a, b FROM gan_data', 'gan', '{"activation": "gelu"}');

SELECT anomaly_drop(name) FROM anomaly_models WHERE name LIKE 'gan%' ORDER BY name;
DROP TABLE gan_data, gan_probe;
