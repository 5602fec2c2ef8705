-- iforest: isolation forest detector
CREATE TABLE if_train AS
SELECT i,
       sin(i * 0.37)::real AS a,
       cos(i * 0.61)::real AS b,
       (sin(i * 0.37) + 0.2 * cos(i * 1.7))::real AS c,
       (0.3 * sin(i * 0.11) + cos(i * 0.05))::real AS d,
       (i % 7)::real AS e
FROM generate_series(1, 600) i;

SELECT s->>'kind' AS kind, s->'rows' AS rows, s->'trees' AS trees, s->'sample_size' AS sample_size,
       s->'max_depth' AS max_depth, s->'options' AS options
FROM anomaly_train('f', 'SELECT a, b, c, d, e FROM if_train ORDER BY i', 'iforest') s;
SELECT tensor, shape[2] AS fields, array_length(data, 1) > 0 AS stored FROM anomaly_weights WHERE model = 'f' ORDER BY tensor;
SELECT shape FROM anomaly_weights WHERE model = 'f' AND tensor IN ('iforest.trees', 'iforest.params') ORDER BY tensor;

-- fewer rows than sample_size: every tree sees all rows; options
SELECT s->'trees' AS trees, s->'sample_size' AS sample_size, s->'max_depth' AS max_depth
FROM anomaly_train('f2', 'SELECT a, b, c, d, e FROM if_train WHERE i <= 100 ORDER BY i', 'iforest',
                   '{"n_trees": 20, "sample_size": 500, "max_features": 0.5}') s;

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"n_trees": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"n_trees": 10.5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"sample_size": 1}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"max_features": 0}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"max_features": 1.5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d, e FROM if_train', 'iforest', '{"max_depth": 5}');

-- scores lie in (0, 1]; a far row scores above every training row
SELECT min(anomaly_score('f', ARRAY[a, b, c, d, e])) > 0 AS positive,
       max(anomaly_score('f', ARRAY[a, b, c, d, e])) <= 1 AS at_most_1,
       max(anomaly_score('f', ARRAY[a, b, c, d, e])) < anomaly_score('f', '{50, 50, 50, 50, 50}'::real[]) AS far
FROM if_train;
SELECT anomaly_is_anomaly('f', '{50, 50, 50, 50, 50}'::real[]) AS flagged;

-- explain names the pushed-out feature first; contributions add up to the score
SELECT j, count(*) FILTER (WHERE first = name) AS named_first, count(*) AS rows,
       bool_and(adds_up) AS adds_up, bool_and(non_negative) AS non_negative
FROM (
  SELECT j, (ARRAY['a', 'b', 'c', 'd', 'e'])[j] AS name,
         (SELECT f->>'name' FROM jsonb_array_elements(x->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first,
         round((SELECT sum((f->>'contribution')::float8) FROM jsonb_array_elements(x->'features') f)::numeric, 6)
           = round((x->>'score')::numeric, 6) AS adds_up,
         (SELECT bool_and((f->>'contribution')::float8 >= 0) FROM jsonb_array_elements(x->'features') f) AS non_negative
  FROM (SELECT i, j, anomaly_explain('f', (SELECT array_agg(CASE WHEN k = j THEN v + 6 ELSE v END ORDER BY k)
                                           FROM unnest(ARRAY[a, b, c, d, e]) WITH ORDINALITY AS u(v, k))) AS x
        FROM if_train, generate_series(1, 5) j WHERE i IN (10, 150, 333)) s
) q GROUP BY j ORDER BY j;
SELECT bool_and(abs((anomaly_explain('f', ARRAY[a, b, c, d, e])->>'score')::float8 - anomaly_score('f', ARRAY[a, b, c, d, e])) < 1e-12) AS same
FROM if_train WHERE i % 50 = 0;

-- deterministic: the same seed grows the same forest, another seed another
CREATE TABLE if_w AS SELECT tensor, data FROM anomaly_weights WHERE model = 'f';
SELECT anomaly_train('f', 'SELECT a, b, c, d, e FROM if_train ORDER BY i', 'iforest') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN if_w o USING (tensor) WHERE w.model = 'f' AND w.data IS DISTINCT FROM o.data;
SELECT anomaly_train('f3', 'SELECT a, b, c, d, e FROM if_train ORDER BY i', 'iforest', '{"seed": 7}') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN if_w o USING (tensor) WHERE w.model = 'f3' AND w.data IS DISTINCT FROM o.data;

-- corrupted tensors are reported, not followed
\set VERBOSITY sqlstate
UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'f' AND tensor = 'iforest.nodes';
SELECT anomaly_score('f', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
\set VERBOSITY terse
-- a child pointing back at the root
UPDATE anomaly_weights SET data[3] = 0 WHERE model = 'f2' AND tensor = 'iforest.nodes';
SELECT anomaly_score('f2', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
-- a feature out of range
UPDATE anomaly_weights SET data[3] = 1, data[1] = 5 WHERE model = 'f2' AND tensor = 'iforest.nodes';
SELECT anomaly_score('f2', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
-- a threshold outside the node's range
UPDATE anomaly_weights SET data[1] = 0, data[2] = 1e6 WHERE model = 'f2' AND tensor = 'iforest.nodes';
SELECT anomaly_score('f2', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
-- node counts that do not match the nodes
\set VERBOSITY sqlstate
UPDATE anomaly_weights SET data[1] = data[1] + 2 WHERE model = 'f3' AND tensor = 'iforest.trees';
SELECT anomaly_score('f3', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
\set VERBOSITY terse
UPDATE anomaly_weights SET data = '{1}' WHERE model = 'f3' AND tensor = 'iforest.params';
SELECT anomaly_score('f3', ARRAY[a, b, c, d, e]) FROM if_train WHERE i = 1;
\set VERBOSITY default

SELECT anomaly_drop('f'), anomaly_drop('f2'), anomaly_drop('f3');
DROP TABLE if_train, if_w;
