-- Row input: the model's feature names pick the fields of a composite value,
-- and arrays of numeric, integer or bigint resolve without casts.
CREATE TABLE payments (id int, amount numeric, n_items int, hour smallint, note text);
INSERT INTO payments
SELECT i, round((20 + 10 * sin(i))::numeric, 2), 1 + (i % 5), (i * 7) % 24, 'p' || i
FROM generate_series(1, 200) i;

SELECT (anomaly_train('payments', 'SELECT amount, n_items, hour FROM payments', 'zscore')->>'features')::int AS features;
SELECT feature_names FROM anomaly_models WHERE name = 'payments';

-- a row scores like the array of its features
SELECT count(*) AS same
FROM payments p
WHERE anomaly_score('payments', p) = anomaly_score('payments', ARRAY[amount, n_items, hour]);

-- extra fields are ignored, order does not matter
SELECT anomaly_score('payments', (SELECT x FROM (SELECT 3 AS hour, 'x' AS note, 2 AS n_items, 20.5 AS amount) x))
     = anomaly_score('payments', ARRAY[20.5, 2, 3]) AS same;

-- a far-out amount is flagged and explained
SELECT anomaly_is_anomaly('payments', x) AS flagged,
       anomaly_explain('payments', x)->'features'->0->>'name' AS top_feature
FROM (SELECT 1 AS id, 5000.0 AS amount, 3 AS n_items, 12 AS hour) x;

-- the same through the integer and bigint overloads
SELECT anomaly_score('payments', ARRAY[20, 2, 3]) = anomaly_score('payments', ARRAY[20, 2, 3]::bigint[]) AS same;
SELECT anomaly_score('payments', ARRAY[20, 2, 3]) = anomaly_score('payments', ARRAY[20, 2, 3]::numeric[]) AS same;

-- errors
SELECT anomaly_score('payments', (SELECT x FROM (SELECT 1 AS amount, 2 AS n_items) x));
SELECT anomaly_score('payments', (SELECT x FROM (SELECT 1 AS amount, 2 AS n_items, 'x'::text AS hour) x));
SELECT anomaly_score('payments', (SELECT x FROM (SELECT 1 AS amount, NULL::int AS n_items, 3 AS hour) x));
SELECT anomaly_score('payments', (SELECT x FROM (SELECT 'NaN'::numeric AS amount, 1 AS n_items, 3 AS hour) x));
SELECT anomaly_score('payments', ARRAY['1', '2', '3']::text[]);

SELECT anomaly_drop('payments');
DROP TABLE payments;
