-- pca: probabilistic PCA detector
CREATE TABLE pca_train AS
SELECT i,
       sin(i * 0.37)::real AS a,
       cos(i * 0.61)::real AS b,
       (sin(i * 0.37) + 0.2 * cos(i * 1.7))::real AS c,
       (cos(i * 0.61) - 0.5 * sin(i * 0.37) + 0.1 * sin(i * 2.3))::real AS d,
       (0.3 * sin(i * 0.11) + cos(i * 0.05))::real AS e
FROM generate_series(1, 400) i;

-- default options: 90% of the variance
SELECT s->>'kind' AS kind, s->'rows' AS rows, s->'components' AS components,
       (s->>'variance_kept')::float8 >= 0.9 AS kept_enough, s->'options'->'n_components' AS n_components
FROM anomaly_train('p', 'SELECT a, b, c, d, e FROM pca_train ORDER BY i', 'pca') s;
SELECT tensor, shape FROM anomaly_weights WHERE model = 'p' ORDER BY tensor;

-- a count of components
SELECT s->'components' AS components
FROM anomaly_train('p2', 'SELECT a, b, c, d, e FROM pca_train ORDER BY i', 'pca', '{"n_components": 2}') s;
-- every component: the full Mahalanobis distance, no residual
SELECT s->'components' AS components
FROM anomaly_train('p5', 'SELECT a, b, c, d, e FROM pca_train ORDER BY i', 'pca', '{"n_components": 5}') s;
SELECT data AS noise FROM anomaly_weights WHERE model = 'p5' AND tensor = 'pca.noise';

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"n_components": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"n_components": -1}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"n_components": 2.5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"n_components": 6}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"n_components": "all"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM pca_train', 'pca', '{"components": 2}');

-- normal rows score low, a row with one feature pushed out scores high
SELECT anomaly_score('p', ARRAY[a, b, c, d, e]) < (SELECT threshold FROM anomaly_models WHERE name = 'p') * 3 AS normal_ok
FROM pca_train WHERE i = 100;
SELECT anomaly_is_anomaly('p', ARRAY[a, b, c + 3, d, e]) AS pushed_c
FROM pca_train WHERE i = 100;

-- the score recomputed in SQL from the stored tensors (standardize, center,
-- project on the components, residual) agrees with the row kernel's
CREATE FUNCTION pca_sql_score(m text, x float8[]) RETURNS float8 LANGUAGE sql AS $$
  WITH t AS (SELECT tensor, shape, data FROM anomaly_weights WHERE model = m),
  c AS (SELECT j, ((x[j] - (SELECT data[j] FROM t WHERE tensor = 'scaler.center'))
                   / (SELECT data[j] FROM t WHERE tensor = 'scaler.scale'))
                  - (SELECT data[j] FROM t WHERE tensor = 'pca.mean') AS v
        FROM generate_subscripts(x, 1) j),
  dims AS (SELECT shape[1] AS k, shape[2] AS d, data FROM t WHERE tensor = 'pca.components'),
  z AS (SELECT i, sum(dims.data[(i - 1) * dims.d + c.j] * c.v) AS v
        FROM dims, generate_series(1, dims.k) i, c GROUP BY i),
  r AS (SELECT c.j, c.v - sum(dims.data[(z.i - 1) * dims.d + c.j] * z.v) AS v
        FROM dims, c, z GROUP BY c.j, c.v)
  SELECT (SELECT sum(z.v * z.v / (SELECT data[z.i] FROM t WHERE tensor = 'pca.variance')) FROM z)
       + (SELECT sum(r.v * r.v) FROM r) / (SELECT data[1] FROM t WHERE tensor = 'pca.noise')
$$;
SELECT count(*) AS rows,
       bool_and(abs(anomaly_score('p', ARRAY[a, b, c, d, e]) - pca_sql_score('p', ARRAY[a, b, c, d, e]))
                <= 1e-4 * greatest(1, pca_sql_score('p', ARRAY[a, b, c, d, e]))) AS same
FROM (SELECT a, b, c + (i % 3) AS c, d, e - (i % 5) * 0.5 AS e FROM pca_train WHERE i % 20 = 0) q;
DROP FUNCTION pca_sql_score(text, float8[]);

-- explain names the pushed-out feature first; contributions add up to the score
SELECT i, (SELECT f->>'name' FROM jsonb_array_elements(x->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first,
       round((SELECT sum((f->>'contribution')::float8) FROM jsonb_array_elements(x->'features') f)::numeric, 3)
         = round((x->>'score')::numeric, 3) AS adds_up,
       (SELECT bool_and((f->>'contribution')::float8 >= 0) FROM jsonb_array_elements(x->'features') f) AS non_negative
FROM (SELECT i, anomaly_explain('p', ARRAY[a, b, c, d + 2.5, e]) x FROM pca_train WHERE i IN (7, 100, 250)) s
ORDER BY i;
SELECT (SELECT f->>'name' FROM jsonb_array_elements(anomaly_explain('p', ARRAY[a, b + 4, c, d, e])->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first
FROM pca_train WHERE i = 33;
SELECT (SELECT f->>'name' FROM jsonb_array_elements(anomaly_explain('p5', ARRAY[a - 3, b, c, d, e])->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first
FROM pca_train WHERE i = 33;

-- explain and score agree
SELECT bool_and(abs((anomaly_explain('p', ARRAY[a, b, c, d, e])->>'score')::float8 - anomaly_score('p', ARRAY[a, b, c, d, e])) < 1e-9) AS same
FROM pca_train WHERE i % 50 = 0;

-- deterministic: training again gives the same weights
CREATE TABLE pca_w AS SELECT tensor, data FROM anomaly_weights WHERE model = 'p';
SELECT anomaly_train('p', 'SELECT a, b, c, d, e FROM pca_train ORDER BY i', 'pca') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN pca_w o USING (tensor) WHERE w.model = 'p' AND w.data IS DISTINCT FROM o.data;

-- corrupted tensors are reported, not trusted
\set VERBOSITY sqlstate
UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'p' AND tensor = 'pca.components';
SELECT anomaly_score('p', ARRAY[a, b, c, d, e]) FROM pca_train WHERE i = 1;
UPDATE anomaly_weights SET data = array_fill(-1::real, ARRAY[2]), shape = '{2}' WHERE model = 'p2' AND tensor = 'pca.variance';
\set VERBOSITY terse
SELECT anomaly_score('p2', ARRAY[a, b, c, d, e]) FROM pca_train WHERE i = 1;
UPDATE anomaly_weights SET data = '{0}' WHERE model = 'p2' AND tensor = 'pca.noise';
UPDATE anomaly_weights SET data = '{9,9,9,9,9,9,9}', shape = '{7}' WHERE model = 'p2' AND tensor = 'pca.variance';
SELECT anomaly_score('p2', ARRAY[a, b, c, d, e]) FROM pca_train WHERE i = 1;
\set VERBOSITY default

SELECT anomaly_drop('p'), anomaly_drop('p2'), anomaly_drop('p5');
DROP TABLE pca_train, pca_w;
