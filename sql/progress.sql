-- Progress of training runs.  The option verbose prints one NOTICE per phase
-- (kinds add one per epoch); without it the same lines are DEBUG1 messages.
CREATE TABLE prog (a float8, b float8);
INSERT INTO prog SELECT sin(i), cos(i * 0.7) FROM generate_series(1, 2500) i;

SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore', '{"verbose": true}')->>'rows' AS rows;
-- quiet by default
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore')->>'rows' AS rows;
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore', '{"verbose": false}')->>'rows' AS rows;
-- client_min_messages = debug1 shows them without the option
SET client_min_messages = debug1;
SELECT anomaly_train('prog', 'SELECT a, b FROM prog LIMIT 10', 'zscore')->>'rows' AS rows;
RESET client_min_messages;
-- sampling: the phases after reading report the rows kept
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore', '{"verbose": true, "max_rows": 1000}')->>'rows_read' AS rows_read;

-- a failed run ends its report: the next run is quiet again
SELECT anomaly_train('prog', 'SELECT a, b FROM prog WHERE a > 2', 'zscore', '{"verbose": true}');
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore')->>'rows' AS rows;

-- errors
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore', '{"verbose": 1}');
SELECT anomaly_train('prog', 'SELECT a, b FROM prog', 'zscore', '{"verbos": true}');

-- Without shared_preload_libraries = 'anomaly' the view of running
-- trainings has nothing to read; it says so and is empty.  (With the library
-- preloaded see test/t/033_progress.pl.)
SELECT * FROM anomaly_progress;
SELECT count(*) FROM anomaly_progress();

SELECT anomaly_drop('prog');
DELETE FROM anomaly_training_runs WHERE model = 'prog';
DROP TABLE prog;
