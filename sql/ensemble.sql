-- ensemble: several kinds trained together, their standardized scores combined
CREATE TABLE ens_train AS
SELECT i,
       sin(i * 0.37)::real AS a,
       cos(i * 0.61)::real AS b,
       (sin(i * 0.37) + 0.2 * cos(i * 1.7))::real AS c,
       (0.3 * sin(i * 0.11) + cos(i * 0.05))::real AS d
FROM generate_series(1, 300) i;

-- default members and options as used (nested per member)
SELECT s->>'kind' AS kind, s->'rows' AS rows, jsonb_pretty(s->'options') AS options,
       jsonb_path_query_array(s, '$.members[*].kind') AS members
FROM anomaly_train('e', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble') s;
SELECT tensor, shape FROM anomaly_weights WHERE model = 'e' ORDER BY tensor;

-- chosen members, member options, mean combination
SELECT s->'options' AS options
FROM anomaly_train('e2', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble',
                   '{"kinds": ["pca", "knn", "zscore"], "combine": "mean", "transform": "none", "knn": {"k": 3}}') s;
SELECT tensor FROM anomaly_weights WHERE model = 'e2' ORDER BY tensor;

-- a kind listed twice takes an array of options, one object per listing
SELECT s->'options' AS options, jsonb_path_query_array(s, '$.members[*].kind') AS members
FROM anomaly_train('e3', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble',
                   '{"kinds": ["knn", "iforest", "knn"], "knn": [{"k": 2}, {"k": 20, "method": "mean"}]}') s;
SELECT tensor FROM anomaly_weights WHERE model = 'e3' AND tensor LIKE '%params' ORDER BY tensor;
-- the default members' options can be given the same way
SELECT s->'options'->'knn' AS knn
FROM anomaly_train('e3', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble',
                   '{"knn": [{"k": 2}, {"k": 5}, {"k": 10}, {"k": 50}]}') s;
-- on fewer rows than a default member's k, that member uses k = rows - 1
SELECT jsonb_path_query_array(s, '$.members[*].k') AS k
FROM anomaly_train('e3', 'SELECT a, b, c, d FROM ens_train WHERE i <= 10', 'ensemble') s;
SELECT anomaly_score('e3', ARRAY[a, b, c, d]) IS NOT NULL AS scored FROM ens_train WHERE i = 200;

-- option errors
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "lof"]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "ensemble"]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "knn"], "knn": {"k": 3}}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "knn"], "knn": [{"k": 3}]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "knn"], "knn": [{"k": 3}, 40]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "knn"], "knn": [{"k": 3}, {"kk": 40}]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", "knn"], "knn": [{"k": 3}, {"k": 400}]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"knn": {"k": 3}}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": []}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": "knn"}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn", 3]}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn"], "knn": {"neighbours": 3}}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn"], "knn": {"k": 0}}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn"], "knn": 5}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"kinds": ["knn"], "iforest": {}}');
SELECT anomaly_train('bad', 'SELECT a, b, c, d FROM ens_train', 'ensemble', '{"combine": "median"}');

-- training rows score below the threshold, a far row above it
SELECT anomaly_score('e', ARRAY[a, b, c, d]) < (SELECT threshold FROM anomaly_models WHERE name = 'e') AS below
FROM ens_train WHERE i = 10;
SELECT anomaly_is_anomaly('e', ARRAY[a, b, c + 3, d]) AS pushed_c,
       anomaly_is_anomaly('e2', ARRAY[a, b, c + 3, d]) AS pushed_c_mean
FROM ens_train WHERE i = 10;

-- explain names the pushed-out feature first; non-negative; same score as anomaly_score
SELECT i, (SELECT f->>'name' FROM jsonb_array_elements(x->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first,
       (SELECT bool_and((f->>'contribution')::float8 >= 0) FROM jsonb_array_elements(x->'features') f) AS non_negative
FROM (SELECT i, anomaly_explain('e', ARRAY[a, b + 3, c, d]) x FROM ens_train WHERE i IN (7, 100, 250)) s
ORDER BY i;
SELECT (SELECT f->>'name' FROM jsonb_array_elements(anomaly_explain('e2', ARRAY[a, b, c, d - 3])->'features') WITH ORDINALITY AS t(f, o) WHERE o = 1) AS first
FROM ens_train WHERE i = 33;
SELECT bool_and(abs((anomaly_explain('e', ARRAY[a, b, c, d])->>'score')::float8 - anomaly_score('e', ARRAY[a, b, c, d])) < 1e-9) AS same
FROM ens_train WHERE i % 50 = 0;

-- deterministic: the same seed gives the same weights, another seed others
CREATE TABLE ens_w AS SELECT tensor, data FROM anomaly_weights WHERE model = 'e';
SELECT anomaly_train('e', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble') IS NOT NULL AS trained;
SELECT count(*) AS differing FROM anomaly_weights w JOIN ens_w o USING (tensor) WHERE w.model = 'e' AND w.data IS DISTINCT FROM o.data;
-- (the default knn members keep every one of these 300 rows: no seed involved; the isolation forest samples)
SELECT anomaly_train('e3', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble', '{"kinds": ["knn", "iforest"]}') IS NOT NULL AS trained;
CREATE TABLE ens_w3 AS SELECT tensor, data FROM anomaly_weights WHERE model = 'e3';
SELECT anomaly_train('e3', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble', '{"kinds": ["knn", "iforest"], "seed": 7}') IS NOT NULL AS trained;
SELECT count(*) > 0 AS some_differ FROM anomaly_weights w JOIN ens_w3 o USING (tensor) WHERE w.model = 'e3' AND w.data IS DISTINCT FROM o.data;

-- corrupted tensors are reported, not trusted
\set VERBOSITY sqlstate
UPDATE anomaly_weights SET data = data[1:2] WHERE model = 'e' AND tensor = 'e0.knn/knn.reference';
SELECT anomaly_score('e', ARRAY[a, b, c, d]) FROM ens_train WHERE i = 1;
\set VERBOSITY terse
SELECT anomaly_train('e', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble') IS NOT NULL AS trained;
UPDATE anomaly_weights SET tensor = 'e1.lof/knn.params' WHERE model = 'e' AND tensor = 'e1.knn/knn.params';
SELECT anomaly_score('e', ARRAY[a, b, c, d]) FROM ens_train WHERE i = 1;
UPDATE anomaly_weights SET tensor = 'e2.knn/knn.params' WHERE model = 'e2' AND tensor = 'e1.knn/knn.params';
SELECT anomaly_score('e2', ARRAY[a, b, c, d]) FROM ens_train WHERE i = 1;
SELECT anomaly_train('e2', 'SELECT a, b, c, d FROM ens_train ORDER BY i', 'ensemble', '{"kinds": ["pca", "knn"]}') IS NOT NULL AS trained;
UPDATE anomaly_weights SET data = '{0, 0, -1, 0, 0, 1}' WHERE model = 'e2' AND tensor = 'ensemble.norm';
SELECT anomaly_score('e2', ARRAY[a, b, c, d]) FROM ens_train WHERE i = 1;
UPDATE anomaly_weights SET data = '{0, 0, 1}', shape = '{1,3}' WHERE model = 'e2' AND tensor = 'ensemble.norm';
SELECT anomaly_score('e2', ARRAY[a, b, c, d]) FROM ens_train WHERE i = 1;
\set VERBOSITY default

-- kNN members with equal reference sets share one neighbour search: two
-- identical members give exactly the single member's score
SELECT anomaly_train('e_one', 'SELECT a, b, c, d FROM ens_train', 'ensemble',
                     '{"kinds": ["knn"], "knn": {"k": 4}}')->>'rows' AS rows;
SELECT anomaly_train('e_two', 'SELECT a, b, c, d FROM ens_train', 'ensemble',
                     '{"kinds": ["knn", "knn"], "knn": [{"k": 4}, {"k": 4}]}')->>'rows' AS rows;
SELECT bool_and(anomaly_score('e_one', ARRAY[a, b, c, d]) = anomaly_score('e_two', ARRAY[a, b, c, d])) AS same,
       count(*)
FROM ens_train;
-- and members at several k agree with the training scores: the default
-- flags about its contamination (5 %) of the training rows
SELECT anomaly_train('e_def', 'SELECT a, b, c, d FROM ens_train', 'ensemble')->>'rows' AS rows;
SELECT abs(avg(anomaly_is_anomaly('e_def', ARRAY[a, b, c, d])::int) - 0.05) < 0.02 AS rate_ok FROM ens_train;
SELECT anomaly_drop('e'), anomaly_drop('e2'), anomaly_drop('e3'), anomaly_drop('e_one'), anomaly_drop('e_two'),
       anomaly_drop('e_def');
DROP TABLE ens_train, ens_w, ens_w3;
