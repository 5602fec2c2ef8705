-- Who may do what: scoring needs SELECT on the catalog; training needs write
-- grants, and only the owner (or a role with the owner's privileges) may
-- replace or drop a model.  Planted objects in search_path change nothing.
CREATE ROLE regress_anomaly_alice;
CREATE ROLE regress_anomaly_bob;
CREATE ROLE regress_anomaly_carol;
CREATE ROLE regress_anomaly_team;
GRANT regress_anomaly_team TO regress_anomaly_bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON anomaly_models, anomaly_weights
    TO regress_anomaly_alice, regress_anomaly_bob;
GRANT SELECT, INSERT ON anomaly_training_runs TO regress_anomaly_alice, regress_anomaly_bob;

CREATE TABLE sec_data AS SELECT i AS id, sin(i) AS a, cos(i) AS b FROM generate_series(1, 100) i;
GRANT SELECT ON sec_data TO regress_anomaly_alice, regress_anomaly_bob, regress_anomaly_carol;

SET ROLE regress_anomaly_alice;
SELECT anomaly_train('sec_alice', 'SELECT a, b FROM sec_data', 'zscore') ? 'threshold' AS trained;
SELECT owner FROM anomaly_models WHERE name = 'sec_alice';
RESET ROLE;

-- bob can score alice's model, but not replace or drop it
SET ROLE regress_anomaly_bob;
SELECT anomaly_score('sec_alice', ARRAY[0.5, 0.5]) > 0 AS scored;
SELECT anomaly_train('sec_alice', 'SELECT a, b FROM sec_data', 'zscore');
SELECT anomaly_drop('sec_alice');
-- direct writes are filtered by row-level security
DELETE FROM anomaly_models WHERE name = 'sec_alice';
UPDATE anomaly_weights SET data = '{1}' WHERE model = 'sec_alice';
-- bob's own model is his to replace and drop
SELECT anomaly_train('sec_bob', 'SELECT a, b FROM sec_data', 'zscore') ? 'threshold' AS trained;
SELECT anomaly_train('sec_bob', 'SELECT a, b FROM sec_data WHERE id > 10', 'zscore') ? 'threshold' AS retrained;
RESET ROLE;
SELECT count(*) AS alice_weights_intact FROM anomaly_weights WHERE model = 'sec_alice' AND cardinality(data) > 1;

-- a model owned by a team role can be replaced by the team's members
UPDATE anomaly_models SET owner = 'regress_anomaly_team' WHERE name = 'sec_alice';
SET ROLE regress_anomaly_bob;
SELECT anomaly_train('sec_alice', 'SELECT a, b FROM sec_data', 'zscore') ? 'threshold' AS team_member_retrained;
SELECT anomaly_drop('sec_alice') AS team_member_dropped;
RESET ROLE;

-- carol has no grant on the catalog: no scoring, not even from a cached model
SELECT anomaly_score('sec_bob', ARRAY[0.5, 0.5]) > 0 AS cached_by_superuser;
SET ROLE regress_anomaly_carol;
SELECT anomaly_score('sec_bob', ARRAY[0.5, 0.5]);
SELECT anomaly_train('sec_carol', 'SELECT a, b FROM sec_data', 'zscore');
RESET ROLE;

-- the training query runs with the caller's rights
REVOKE SELECT ON sec_data FROM regress_anomaly_bob;
SET ROLE regress_anomaly_bob;
SELECT anomaly_train('sec_bob', 'SELECT a, b FROM sec_data', 'zscore');
RESET ROLE;

-- objects planted earlier in search_path change nothing
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.anomaly_models (name text, kind text);
CREATE TABLE regress_evil.anomaly_weights (model text);
CREATE FUNCTION regress_evil.texteq_evil(text, text) RETURNS boolean
    AS 'SELECT true' LANGUAGE sql;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.texteq_evil);
SET search_path = regress_evil, public;
SELECT anomaly_train('sec_path', 'SELECT a, b FROM public.sec_data', 'zscore') ? 'threshold' AS trained;
SELECT anomaly_score('sec_path', ARRAY[0.5, 0.5]) = anomaly_score('sec_bob', ARRAY[0.5, 0.5]) AS same_as_unrelated_model;
SELECT count(*) AS planted_rows FROM regress_evil.anomaly_models;
SELECT anomaly_drop('sec_path');
RESET search_path;
DROP SCHEMA regress_evil CASCADE;

SELECT anomaly_drop('sec_bob');
DROP TABLE sec_data;
REVOKE ALL ON anomaly_models, anomaly_weights, anomaly_training_runs FROM regress_anomaly_alice, regress_anomaly_bob;
DROP ROLE regress_anomaly_alice, regress_anomaly_bob, regress_anomaly_carol, regress_anomaly_team;
