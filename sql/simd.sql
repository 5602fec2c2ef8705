-- The scoring kernels: the AVX2 and AVX-512 versions (anomaly.simd = auto
-- on a CPU that has them), the AVX2 ones alone (avx2) and the baseline ones
-- (generic) agree, every input path gives the same score, and widths that
-- are not a multiple of the vector width (the tails of every loop) are
-- scored right.
-- 13 features: two 4-wide blocks, one 8-wide block and a 5-wide tail
CREATE TABLE simd_data AS
SELECT i, ARRAY(SELECT (sin(i * 0.07 * j) + 0.1 * cos(i * 0.013 * (j + 1)) + j)::real
                FROM generate_series(1, 13) j) AS f
FROM generate_series(1, 600) i;
CREATE TABLE simd_probe AS
SELECT i, ARRAY(SELECT (sin(i * 0.31 * j) * (1 + (i % 7)) + j)::real
                FROM generate_series(1, 13) j) AS f
FROM generate_series(1, 50) i;

SELECT anomaly_train('simd_z', 'SELECT f FROM simd_data', 'zscore')->>'rows' AS rows;
SHOW anomaly.simd;
SET anomaly.simd = 'nonsense';
SELECT anomaly_train('simd_zr', 'SELECT f FROM simd_data', 'zscore', '{"robust": true}')->>'rows' AS rows;
-- layers 13-19-5-19-13 with every activation: odd widths in every kernel
SELECT anomaly_train('simd_ae_' || act, 'SELECT f FROM simd_data', 'autoencoder',
                     jsonb_build_object('hidden', '[19, 5, 19]'::jsonb, 'epochs', 3, 'activation', act))->>'rows' AS rows
FROM unnest(ARRAY['tanh', 'relu', 'leaky_relu', 'sigmoid']) act;
SELECT anomaly_train('simd_ae_wide', 'SELECT f FROM simd_data', 'autoencoder',
                     '{"hidden": [70, 33, 70], "epochs": 2}')->>'rows' AS rows;
SELECT anomaly_train('simd_knn', 'SELECT f FROM simd_data', 'knn', '{"k": 7}')->>'rows' AS rows;
SELECT anomaly_train('simd_ens', 'SELECT f FROM simd_data', 'ensemble')->>'rows' AS rows;
SELECT anomaly_train('simd_vae', 'SELECT f FROM simd_data', 'vae', '{"epochs": 3}')->>'rows' AS rows;
SELECT anomaly_train('simd_gan', 'SELECT f FROM simd_data', 'gan', '{"epochs": 3}')->>'rows' AS rows;
-- pca rows run the dense-layer kernel too: 13 -> 11 and 11 -> 13, tails of
-- 3 and 5 outputs
SELECT anomaly_train('simd_pca', 'SELECT f FROM simd_data', 'pca', '{"n_components": 11}')->>'rows' AS rows;

CREATE TABLE simd_auto AS
SELECT m.name, p.i, anomaly_score(m.name, p.f) AS s
FROM anomaly_models m, simd_probe p WHERE m.name LIKE 'simd\_%';

-- zscore: real[] (the fused fast path), float8[] and explain give the same bits
SELECT m.name,
       bool_and(anomaly_score(m.name, p.f) = anomaly_score(m.name, p.f::float8[])) AS float8_same,
       bool_and(anomaly_is_anomaly(m.name, p.f) = anomaly_is_anomaly(m.name, p.f::float8[])) AS flag_same,
       bool_and(anomaly_score(m.name, p.f) = (anomaly_explain(m.name, p.f)->>'score')::float8) AS explain_same
FROM anomaly_models m, simd_probe p WHERE m.name IN ('simd_z', 'simd_zr')
GROUP BY m.name ORDER BY m.name;

-- the baseline kernels give the same scores: bit for bit for zscore and the
-- kNN detectors, to float rounding (fused multiply-adds, sums in another
-- order) for networks
SET anomaly.simd = 'generic';
SHOW anomaly.simd;
SELECT a.name,
       count(*) AS rows,
       bool_and(CASE WHEN a.name LIKE 'simd\_z%' OR a.name IN ('simd_knn', 'simd_ens') THEN g.s = a.s
                     ELSE abs(g.s - a.s) <= 1e-4 * greatest(abs(a.s), 1e-3) END) AS agree
FROM simd_auto a
JOIN LATERAL (SELECT anomaly_score(a.name, p.f) AS s FROM simd_probe p WHERE p.i = a.i) g ON true
GROUP BY a.name ORDER BY a.name;
-- at most AVX2 (auto may use the AVX-512 dense-layer kernel): the same
SET anomaly.simd = 'avx2';
SHOW anomaly.simd;
SELECT a.name,
       bool_and(CASE WHEN a.name LIKE 'simd\_z%' OR a.name IN ('simd_knn', 'simd_ens') THEN g.s = a.s
                     ELSE abs(g.s - a.s) <= 1e-4 * greatest(abs(a.s), 1e-3) END) AS agree
FROM simd_auto a
JOIN LATERAL (SELECT anomaly_score(a.name, p.f) AS s FROM simd_probe p WHERE p.i = a.i) g ON true
GROUP BY a.name ORDER BY a.name;
RESET anomaly.simd;

-- a far-out value: finite input, every kernel path; NaN and infinity rejected
SELECT name, anomaly_score(name, array_fill(1e30::real, ARRAY[13])) > 1e6 AS far
FROM anomaly_models WHERE name IN ('simd_z', 'simd_ae_tanh') ORDER BY name;
SELECT anomaly_score('simd_z', ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 'NaN']::real[]);
SELECT anomaly_score('simd_z', ARRAY['Infinity', 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]::real[]);
SELECT anomaly_score('simd_ae_relu', ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, '-Infinity']::real[]);

SELECT anomaly_drop(name) FROM anomaly_models WHERE name LIKE 'simd\_%' ORDER BY name;
DROP TABLE simd_data, simd_probe, simd_auto;
