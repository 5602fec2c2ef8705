-- The zscore kind: score = sum over features of ((x - location) / scale)^2,
-- checked against the same arithmetic done by hand in SQL.

CREATE TABLE zs AS
SELECT i AS id,
       sin(i * 0.7) * 3 + 10 AS u,
       cos(i * 1.3) * 0.5 - 2 AS v,
       ((i * 37) % 101)::float8 AS w
FROM generate_series(1, 400) AS i;
-- a few far-out rows that inflate the standard deviation of u
INSERT INTO zs SELECT 1000 + i, 60 + i, -2, 50 FROM generate_series(1, 8) AS i;

SELECT anomaly_train('zs', 'SELECT u, v, w FROM zs', 'zscore')->'features' AS features;
SELECT anomaly_train('zs_robust', 'SELECT u, v, w FROM zs', 'zscore', '{"robust": true}')->'options'->'robust' AS robust;

------------------------------------------------------------------------------
-- Score = sum of squared z-scores with the training mean and population
-- standard deviation
------------------------------------------------------------------------------

CREATE TABLE zs_stats AS
SELECT avg(u) AS mu, stddev_pop(u) AS su,
       avg(v) AS mv, stddev_pop(v) AS sv,
       avg(w) AS mw, stddev_pop(w) AS sw
FROM zs;

CREATE TABLE zs_hand AS
SELECT id, u, v, w,
       ((u - mu) / su) ^ 2 AS zu, ((v - mv) / sv) ^ 2 AS zv, ((w - mw) / sw) ^ 2 AS zw,
       ((u - mu) / su) ^ 2 + ((v - mv) / sv) ^ 2 + ((w - mw) / sw) ^ 2 AS score
FROM zs, zs_stats;

-- on the training rows and on new rows (a grid around the data)
SELECT count(*) AS rows,
       max(abs(anomaly_score('zs', ARRAY[u, v, w]) - score) / greatest(score, 1)) < 1e-5 AS matches_by_hand
FROM zs_hand;
SELECT count(*) AS rows,
       max(abs(anomaly_score('zs', ARRAY[u, v, w]::real[]) - hand) / greatest(hand, 1)) < 1e-5 AS matches_by_hand
FROM (SELECT u, v, w, ((u - mu) / su) ^ 2 + ((v - mv) / sv) ^ 2 + ((w - mw) / sw) ^ 2 AS hand
      FROM zs_stats, generate_series(-10, 80, 10) AS u, generate_series(-4, 0, 1) AS v, generate_series(0, 120, 40) AS w) g;

-- the mean row scores (almost) zero; a row k standard deviations out in one feature scores k^2
SELECT round(anomaly_score('zs', ARRAY[mu, mv, mw])::numeric, 4) AS at_mean,
       round(anomaly_score('zs', ARRAY[mu + 3 * su, mv, mw])::numeric, 4) AS three_sd_u,
       round(anomaly_score('zs', ARRAY[mu, mv - 2 * sv, mw + 2 * sw])::numeric, 4) AS two_sd_v_and_w
FROM zs_stats;

-- the threshold is the 0.95 quantile of the hand-computed training scores
SELECT abs(threshold - (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY score) FROM zs_hand)) < 1e-5 * threshold AS threshold_by_hand
FROM anomaly_models WHERE name = 'zs';

-- per-feature contributions are the squared z-scores
SELECT bool_and(abs((e->'features'->0->>'contribution')::float8 - greatest(zu, zv, zw)) <= 1e-5 * greatest(score, 1)) AS top_contribution_by_hand,
       bool_and(abs((SELECT (f->>'contribution')::float8 FROM jsonb_array_elements(e->'features') f WHERE f->>'name' = 'v') - zv)
                <= 1e-5 * greatest(score, 1)) AS v_contribution_by_hand
FROM zs_hand, LATERAL anomaly_explain('zs', ARRAY[u, v, w]) AS e;

------------------------------------------------------------------------------
-- Contributions add up to the score
------------------------------------------------------------------------------

SELECT count(*) AS rows,
       bool_and(abs(total - score) <= 1e-12 * greatest(score, 1)) AS sums_to_score,
       bool_and(score = anomaly_score('zs', ARRAY[u, v, w])) AS same_as_anomaly_score
FROM (SELECT u, v, w, (e->>'score')::float8 AS score,
             (SELECT sum((f->>'contribution')::float8) FROM jsonb_array_elements(e->'features') f) AS total
      FROM zs, LATERAL anomaly_explain('zs', ARRAY[u, v, w]) AS e) s;
SELECT count(*) AS rows,
       bool_and(abs(total - score) <= 1e-12 * greatest(score, 1)) AS robust_sums_to_score
FROM (SELECT (e->>'score')::float8 AS score,
             (SELECT sum((f->>'contribution')::float8) FROM jsonb_array_elements(e->'features') f) AS total
      FROM zs, LATERAL anomaly_explain('zs_robust', ARRAY[u, v, w]) AS e) s;

------------------------------------------------------------------------------
-- A normal row with one feature pushed far out names that feature first
------------------------------------------------------------------------------

SELECT feature, count(*) AS rows,
       count(*) FILTER (WHERE plain->'features'->0->>'name' = feature) AS named_first,
       count(*) FILTER (WHERE robust->'features'->0->>'name' = feature) AS named_first_robust,
       count(*) FILTER (WHERE (plain->>'is_anomaly')::boolean) AS flagged
FROM (
    SELECT f.feature,
           anomaly_explain('zs', x) AS plain,
           anomaly_explain('zs_robust', x) AS robust
    FROM zs_stats,
         (SELECT * FROM zs WHERE id <= 400 AND id % 20 = 0) r,
         (VALUES ('u'), ('v'), ('w')) AS f(feature),
         LATERAL (SELECT CASE f.feature
                             WHEN 'u' THEN ARRAY[r.u + 8 * su, r.v, r.w]
                             WHEN 'v' THEN ARRAY[r.u, r.v - 8 * sv, r.w]
                             ELSE ARRAY[r.u, r.v, r.w + 8 * sw] END AS x) p
) s
GROUP BY feature ORDER BY feature;

------------------------------------------------------------------------------
-- robust: median and MAD (times 1.4826), which the far-out rows cannot inflate
------------------------------------------------------------------------------

CREATE TABLE zs_med AS
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u) AS mu,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS mv,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS mw
FROM zs;
CREATE TABLE zs_mad AS
SELECT mu, mv, mw,
       1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(u - mu)) AS su,
       1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v - mv)) AS sv,
       1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(w - mw)) AS sw
FROM zs, zs_med GROUP BY mu, mv, mw;

SELECT count(*) AS rows,
       max(abs(anomaly_score('zs_robust', ARRAY[u, v, w]) - hand) / greatest(hand, 1)) < 1e-4 AS robust_matches_by_hand
FROM (SELECT u, v, w, ((u - mu) / su) ^ 2 + ((v - mv) / sv) ^ 2 + ((w - mw) / sw) ^ 2 AS hand
      FROM zs, zs_mad) s;

-- the far-out rows inflate the plain standard deviation of u, not the MAD:
-- a row 4 robust scales out in u is flagged by the robust model only
SELECT anomaly_is_anomaly('zs', ARRAY[mu + 4 * su, mv, mw]) AS plain_flags,
       anomaly_is_anomaly('zs_robust', ARRAY[mu + 4 * su, mv, mw]) AS robust_flags
FROM zs_mad;
-- both flag the far-out training rows
SELECT count(*) FILTER (WHERE anomaly_is_anomaly('zs', ARRAY[u, v, w])) AS plain_flagged,
       count(*) FILTER (WHERE anomaly_is_anomaly('zs_robust', ARRAY[u, v, w])) AS robust_flagged
FROM zs WHERE id > 1000;

------------------------------------------------------------------------------
-- standardize off gives the same scores (the kind has its own location and
-- scale); the same data gives bit-identical tensors
------------------------------------------------------------------------------

SELECT anomaly_train('zs_raw', 'SELECT u, v, w FROM zs', 'zscore', '{"standardize": false}')->'options'->'standardize' AS standardize;
SELECT tensor, data = array_fill(0::real, ARRAY[3]) AS zero, data = array_fill(1::real, ARRAY[3]) AS one
FROM anomaly_weights WHERE model = 'zs_raw' AND tensor LIKE 'scaler.%' ORDER BY tensor COLLATE "C";
SELECT max(abs(anomaly_score('zs_raw', ARRAY[u, v, w]) - anomaly_score('zs', ARRAY[u, v, w]))
           / greatest(anomaly_score('zs', ARRAY[u, v, w]), 1)) < 1e-5 AS same_scores
FROM zs;

SELECT anomaly_train('zs_again', 'SELECT u, v, w FROM zs', 'zscore')->'rows' AS rows;
SELECT bool_and(a.shape = b.shape AND a.data = b.data) AS identical_tensors, count(*) AS tensors
FROM anomaly_weights a JOIN anomaly_weights b USING (tensor)
WHERE a.model = 'zs' AND b.model = 'zs_again';
SELECT a.threshold = b.threshold AND a.score_quantiles = b.score_quantiles AS identical_thresholds
FROM anomaly_models a, anomaly_models b WHERE a.name = 'zs' AND b.name = 'zs_again';

------------------------------------------------------------------------------
-- A constant column: a warning, then the column is left unscaled
------------------------------------------------------------------------------

SELECT anomaly_train('zs_const', 'SELECT u, 5 AS k FROM zs', 'zscore')->'features' AS features;
SELECT round(anomaly_score('zs_const', ARRAY[10, 5]::float8[])::numeric, 2) AS at_constant,
       anomaly_score('zs_const', ARRAY[10, 6]::float8[]) > anomaly_score('zs_const', ARRAY[10, 5]::float8[]) AS off_constant_scores_higher;

SELECT anomaly_drop(name) FROM anomaly_models ORDER BY name;
