-- knn: k nearest neighbours detector
CREATE TABLE knn_train AS
SELECT i,
       sin(i * 0.37)::real AS a,
       cos(i * 0.61)::real AS b,
       (sin(i * 0.37) + 0.2 * cos(i * 1.7))::real AS c,
       (0.3 * sin(i * 0.11) + cos(i * 0.05))::real AS d
FROM generate_series(1, 300) i;

SELECT s->>'kind' AS kind, s->'rows' AS rows, s->'reference_rows' AS reference_rows, s->'options' AS options
FROM anomaly_train('k', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn') s;
SELECT tensor, shape FROM anomaly_weights WHERE model = 'k' ORDER BY tensor;

-- a sample of the rows as the reference set
SELECT s->'reference_rows' AS reference_rows
FROM anomaly_train('k50', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn', '{"sample_size": 50, "k": 3, "method": "mean"}') s;
SELECT shape FROM anomaly_weights WHERE model = 'k50' AND tensor = 'knn.reference';

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"k": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"k": 2.5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"method": "max"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"sample_size": 1}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"k": 10, "sample_size": 10}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train WHERE i <= 5', 'knn');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM knn_train', 'knn', '{"neighbours": 3}');

-- a training row is not its own neighbour in the training scores: the
-- threshold is positive although each training row is at distance 0 from itself
SELECT threshold > 0 AS positive_threshold FROM anomaly_models WHERE name = 'k';
SELECT anomaly_score('k', ARRAY[a, b, c, d]) < (SELECT threshold FROM anomaly_models WHERE name = 'k') AS below
FROM knn_train WHERE i = 10;
-- a far row: the distance to its 5th neighbour
SELECT anomaly_is_anomaly('k', ARRAY[a, b, c + 2, d]) AS pushed_c FROM knn_train WHERE i = 10;
SELECT round(anomaly_score('k', '{100, 0, 0, 0}'::real[])::numeric / 100, 1) AS far;
-- 'largest' >= 'mean' of the same k
SELECT anomaly_train('km', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn', '{"method": "mean"}') IS NOT NULL AS trained;
SELECT anomaly_train('kd', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn', '{"method": "median"}') IS NOT NULL AS trained;
SELECT bool_and(anomaly_score('k', ARRAY[a, b, c + 1, d]) >= anomaly_score('km', ARRAY[a, b, c + 1, d])
            AND anomaly_score('km', ARRAY[a, b, c + 1, d]) > 0
            AND anomaly_score('kd', ARRAY[a, b, c + 1, d]) > 0) AS ordered
FROM knn_train WHERE i % 20 = 0;
-- identical to direct computation: distance to the 5th nearest row
SELECT round(anomaly_score('k', ARRAY[a, b, c, d])::numeric, 4) =
       round((SELECT sqrt(dd) FROM (SELECT (((t.a - s.a) / sa)^2 + ((t.b - s.b) / sb)^2 + ((t.c - s.c) / sc)^2 + ((t.d - s.d) / sd)^2) dd
               FROM knn_train t,
                    (SELECT stddev_pop(a) sa, stddev_pop(b) sb, stddev_pop(c) sc, stddev_pop(d) sd FROM knn_train) z
               ORDER BY dd OFFSET 4 LIMIT 1) q)::numeric, 4) AS same
FROM knn_train s WHERE i = 77;

-- explain names the pushed-out feature first; contributions add up to the score
SELECT i, (SELECT f->>'name' FROM jsonb_array_elements(x->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first,
       round((SELECT sum((f->>'contribution')::float8) FROM jsonb_array_elements(x->'features') f)::numeric, 4)
         = round((x->>'score')::numeric, 4) AS adds_up,
       (SELECT bool_and((f->>'contribution')::float8 >= 0) FROM jsonb_array_elements(x->'features') f) AS non_negative
FROM (SELECT i, anomaly_explain('k', ARRAY[a, b + 2, c, d]) x FROM knn_train WHERE i IN (7, 100, 250)) s
ORDER BY i;
SELECT (SELECT f->>'name' FROM jsonb_array_elements(anomaly_explain('k50', ARRAY[a, b, c, d - 3])->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first
FROM knn_train WHERE i = 33;
SELECT bool_and(abs((anomaly_explain('k', ARRAY[a, b, c, d])->>'score')::float8 - anomaly_score('k', ARRAY[a, b, c, d])) < 1e-9) AS same
FROM knn_train WHERE i % 50 = 0;

-- deterministic: the same seed samples the same reference rows
CREATE TABLE knn_w AS SELECT tensor, data FROM anomaly_weights WHERE model = 'k50';
SELECT anomaly_train('k50', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn', '{"sample_size": 50, "k": 3, "method": "mean"}') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN knn_w o USING (tensor) WHERE w.model = 'k50' AND w.data IS DISTINCT FROM o.data;
SELECT anomaly_train('k50', 'SELECT a, b, c, d FROM knn_train ORDER BY i', 'knn', '{"sample_size": 50, "k": 3, "method": "mean", "seed": 7}') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN knn_w o USING (tensor) WHERE w.model = 'k50' AND w.data IS DISTINCT FROM o.data;

-- corrupted tensors are reported, not trusted
\set VERBOSITY sqlstate
UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'k' AND tensor = 'knn.reference';
SELECT anomaly_score('k', ARRAY[a, b, c, d]) FROM knn_train WHERE i = 1;
\set VERBOSITY terse
UPDATE anomaly_weights SET data = '{50, 0}' WHERE model = 'k50' AND tensor = 'knn.params';
SELECT anomaly_score('k50', ARRAY[a, b, c, d]) FROM knn_train WHERE i = 1;
UPDATE anomaly_weights SET data = '{3, 7}' WHERE model = 'k50' AND tensor = 'knn.params';
SELECT anomaly_score('k50', ARRAY[a, b, c, d]) FROM knn_train WHERE i = 1;
UPDATE anomaly_weights SET data = data[1:4], shape = '{1,4}' WHERE model = 'km' AND tensor = 'knn.reference';
SELECT anomaly_score('km', ARRAY[a, b, c, d]) FROM knn_train WHERE i = 1;
\set VERBOSITY default

SELECT anomaly_drop('k'), anomaly_drop('k50'), anomaly_drop('km'), anomaly_drop('kd');
DROP TABLE knn_train, knn_w;
