-- OpenBLAS is opened on the first matrix product, not when anomaly.so is
-- loaded (src/blas.h): scoring a z-score or autoencoder row never needs it,
-- and every parallel worker of the session would pay for loading it.
CREATE FUNCTION blas_mapped() RETURNS bool LANGUAGE sql AS $$
  SELECT pg_read_file('/proc/' || pg_backend_pid() || '/maps') ~ 'libopenblas|libblas'
$$;
CREATE TABLE blas_data AS
SELECT i, ARRAY[sin(i * 0.1), cos(i * 0.37), (i % 17)::float8, sqrt(i)]::real[] AS f
FROM generate_series(1, 400) i;

SELECT anomaly_train('blas_z', 'SELECT f FROM blas_data', 'zscore')->>'rows' AS rows;
SELECT count(*) FILTER (WHERE anomaly_score('blas_z', f) > 0) AS scored FROM blas_data;
SELECT blas_mapped() AS after_zscore;

-- training a network multiplies matrices: the library is opened then, with
-- anomaly.blas_threads applied
SET anomaly.blas_threads = 1;
SELECT anomaly_train('blas_ae', 'SELECT f FROM blas_data', 'autoencoder', '{"epochs": 2}')->>'rows' AS rows;
SELECT blas_mapped() AS after_training;
-- a new session scores the network row by row without it
\c -
SELECT count(*) FILTER (WHERE anomaly_score('blas_ae', f) >= 0) AS scored FROM blas_data;
SELECT anomaly_explain('blas_ae', ARRAY[0, 1, 2, 3]::real[]) ? 'score' AS explained;
SELECT blas_mapped() AS after_network_scoring;
SET anomaly.blas_threads = 2;
RESET anomaly.blas_threads;
SELECT anomaly_train('blas_pca', 'SELECT f FROM blas_data', 'pca')->>'rows' AS rows;
SELECT count(*) FILTER (WHERE anomaly_score('blas_pca', f) >= 0) AS scored FROM blas_data;

-- anomaly.blas_library names another library (superusers only); one that
-- cannot be opened, or lacks the routines, fails the statement that needs
-- it with a hint, and the session can go on
\c -
LOAD 'anomaly';
CREATE ROLE blas_user;
SET ROLE blas_user;
SET anomaly.blas_library = 'libopenblas.so.0';
RESET ROLE;
DROP ROLE blas_user;
SET anomaly.blas_library = 'libanomaly_no_such_blas.so';
SELECT anomaly_train('blas_ae2', 'SELECT f FROM blas_data', 'autoencoder', '{"epochs": 2}');
SET anomaly.blas_library = 'libm.so.6';
SELECT anomaly_train('blas_ae2', 'SELECT f FROM blas_data', 'autoencoder', '{"epochs": 2}');
SELECT blas_mapped() AS after_failures;
-- models that score without BLAS still score
SELECT count(*) FILTER (WHERE anomaly_score('blas_ae', f) >= 0) AS scored FROM blas_data;
SET anomaly.blas_library = 'libopenblas.so.0';
SELECT anomaly_train('blas_ae2', 'SELECT f FROM blas_data', 'autoencoder', '{"epochs": 2}')->>'rows' AS rows;
SELECT blas_mapped() AS named_library;
RESET anomaly.blas_library;

SELECT anomaly_drop('blas_z'), anomaly_drop('blas_ae'), anomaly_drop('blas_pca'), anomaly_drop('blas_ae2');
DROP TABLE blas_data;
DROP FUNCTION blas_mapped();
