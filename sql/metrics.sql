-- Evaluation and threshold aggregates, checked against scikit-learn.
--
-- Scores are fixed expressions of the rows of data/*.csv (no model): "total"
-- is the sum of the features left to right, "first" the first feature (many
-- ties).  The expected values come from test/metrics_reference.py
-- (scikit-learn roc_auc_score, average_precision_score, confusion_matrix,
-- precision/recall/f1/accuracy_score; numpy quantile; scipy MLE for POT).
\getenv abs_srcdir PG_ABS_SRCDIR
SET extra_float_digits = 0;

CREATE TABLE metrics_line (line text);
CREATE TABLE metrics_rows (dataset text, line text);
\set f :abs_srcdir '/data/breastw.csv'
COPY metrics_line FROM :'f' WITH (FORMAT text, HEADER true);
INSERT INTO metrics_rows SELECT 'breastw', line FROM metrics_line;
TRUNCATE metrics_line;
\set f :abs_srcdir '/data/glass.csv'
COPY metrics_line FROM :'f' WITH (FORMAT text, HEADER true);
INSERT INTO metrics_rows SELECT 'glass', line FROM metrics_line;
TRUNCATE metrics_line;
\set f :abs_srcdir '/data/ionosphere.csv'
COPY metrics_line FROM :'f' WITH (FORMAT text, HEADER true);
INSERT INTO metrics_rows SELECT 'ionosphere', line FROM metrics_line;
TRUNCATE metrics_line;
\set f :abs_srcdir '/data/pima.csv'
COPY metrics_line FROM :'f' WITH (FORMAT text, HEADER true);
INSERT INTO metrics_rows SELECT 'pima', line FROM metrics_line;
TRUNCATE metrics_line;
\set f :abs_srcdir '/data/wbc.csv'
COPY metrics_line FROM :'f' WITH (FORMAT text, HEADER true);
INSERT INTO metrics_rows SELECT 'wbc', line FROM metrics_line;

CREATE TABLE metrics_scores AS
SELECT dataset,
       (SELECT sum(v::float8 ORDER BY o) FROM unnest(a[1:cardinality(a) - 1]) WITH ORDINALITY u(v, o)) AS total,
       a[1]::float8 AS first,
       a[cardinality(a)] = '1' AS label
FROM (SELECT dataset, string_to_array(line, ',') AS a FROM metrics_rows) r;
SELECT dataset, count(*), count(*) FILTER (WHERE label) AS anomalies
FROM metrics_scores GROUP BY dataset ORDER BY dataset;

-- small cases with ties and infinities (scored against scikit-learn too)
INSERT INTO metrics_scores (dataset, total, label) VALUES
    ('edge_same', 1, true), ('edge_same', 1, false), ('edge_same', 1, false),
    ('edge_same', 1, true), ('edge_same', 1, false),
    ('edge_ties', 0.1, false), ('edge_ties', 0.1, true), ('edge_ties', 0.2, false),
    ('edge_ties', 0.2, true), ('edge_ties', 0.2, true), ('edge_ties', 0.3, false),
    ('edge_ties', 0.5, true), ('edge_ties', 0.5, false),
    ('edge_inf', '-Infinity', false), ('edge_inf', 0, true), ('edge_inf', 1, false),
    ('edge_inf', 'Infinity', true), ('edge_inf', 'Infinity', false),
    ('edge_inverted', 1, true), ('edge_inverted', 2, true), ('edge_inverted', 3, false),
    ('edge_inverted', 4, false);

CREATE TABLE metrics_expected (dataset text, metric text, value float8);
INSERT INTO metrics_expected VALUES
    ('edge_same', 'roc', 0.5),
    ('edge_same', 'pr', 0.4),
    ('edge_ties', 'roc', 0.4375),
    ('edge_ties', 'pr', 0.5),
    ('edge_inf', 'roc', 0.5833333333333334),
    ('edge_inf', 'pr', 0.5),
    ('edge_inverted', 'roc', 0.0),
    ('edge_inverted', 'pr', 0.41666666666666663),
    ('breastw', 'roc_sum', 0.9954153944739719),
    ('breastw', 'pr_sum', 0.9903859350235611),
    ('breastw', 'roc_neg', 0.00458460552602811),
    ('breastw', 'pr_neg', 0.20471678114597036),
    ('breastw', 'roc_first', 0.9088780202796939),
    ('breastw', 'pr_first', 0.8549205307642311),
    ('breastw', 'p_at_10', 1.0),
    ('breastw', 'p_at_pos', 0.9560669456066946),
    ('breastw', 'p_at_10_first', 1.0),
    ('breastw', 'thr_05', 67.0),
    ('breastw', 'thr_pos', 33.0),
    ('breastw', 'tp', 33.0),
    ('breastw', 'fp', 0.0),
    ('breastw', 'tn', 444.0),
    ('breastw', 'fn', 206.0),
    ('breastw', 'precision', 1.0),
    ('breastw', 'recall', 0.13807531380753138),
    ('breastw', 'f1', 0.24264705882352938),
    ('breastw', 'accuracy', 0.698389458272328),
    ('breastw', 'pot_98', 91.54410105474773),
    ('breastw', 'pot_90', 84.95243957511903),
    ('glass', 'roc_sum', 0.4915989159891599),
    ('glass', 'pr_sum', 0.04292901389184691),
    ('glass', 'roc_neg', 0.5084010840108402),
    ('glass', 'pr_neg', 0.04435509479948784),
    ('glass', 'roc_first', 0.5661246612466124),
    ('glass', 'pr_first', 0.057721481891703647),
    ('glass', 'p_at_10', 0.0),
    ('glass', 'p_at_pos', 0.0),
    ('glass', 'p_at_10_first', 0.0),
    ('glass', 'thr_05', 101.53977400000001),
    ('glass', 'thr_pos', 101.54303911214954),
    ('glass', 'tp', 0.0),
    ('glass', 'fp', 11.0),
    ('glass', 'tn', 194.0),
    ('glass', 'fn', 9.0),
    ('glass', 'precision', 0.0),
    ('glass', 'recall', 0.0),
    ('glass', 'f1', 0.0),
    ('glass', 'accuracy', 0.9065420560747663),
    ('glass', 'pot_98', 101.62014656036708),
    ('glass', 'pot_90', 101.6109817358096),
    ('ionosphere', 'roc_sum', 0.2571075837742504),
    ('ionosphere', 'pr_sum', 0.2634342043535016),
    ('ionosphere', 'roc_neg', 0.7428924162257495),
    ('ionosphere', 'pr_neg', 0.66758014714086),
    ('ionosphere', 'roc_first', 0.3492063492063492),
    ('ionosphere', 'pr_first', 0.3046209499883621),
    ('ionosphere', 'p_at_10', 0.3),
    ('ionosphere', 'p_at_pos', 0.1349206349206349),
    ('ionosphere', 'p_at_10_first', 0.28115015974440893),
    ('ionosphere', 'thr_05', 18.52127),
    ('ionosphere', 'thr_pos', 12.170136923076925),
    ('ionosphere', 'tp', 5.0),
    ('ionosphere', 'fp', 13.0),
    ('ionosphere', 'tn', 212.0),
    ('ionosphere', 'fn', 121.0),
    ('ionosphere', 'precision', 0.2777777777777778),
    ('ionosphere', 'recall', 0.03968253968253968),
    ('ionosphere', 'f1', 0.06944444444444445),
    ('ionosphere', 'accuracy', 0.6182336182336182),
    ('ionosphere', 'pot_98', 28.027163950004226),
    ('ionosphere', 'pot_90', 27.999471568196505),
    ('pima', 'roc_sum', 0.6607313432835821),
    ('pima', 'pr_sum', 0.513208243938645),
    ('pima', 'roc_neg', 0.3392686567164179),
    ('pima', 'pr_neg', 0.266814070671457),
    ('pima', 'roc_first', 0.6195149253731344),
    ('pima', 'pr_first', 0.4711097600029924),
    ('pima', 'p_at_10', 0.7),
    ('pima', 'p_at_pos', 0.5),
    ('pima', 'p_at_10_first', 0.7),
    ('pima', 'thr_05', 639.43905),
    ('pima', 'thr_pos', 368.6768020833333),
    ('pima', 'tp', 26.0),
    ('pima', 'fp', 13.0),
    ('pima', 'tn', 487.0),
    ('pima', 'fn', 242.0),
    ('pima', 'precision', 0.6666666666666666),
    ('pima', 'recall', 0.09701492537313433),
    ('pima', 'f1', 0.16938110749185667),
    ('pima', 'accuracy', 0.66796875),
    ('pima', 'pot_98', 1143.4714093347968),
    ('pima', 'pot_90', 1154.7117013677566),
    ('wbc', 'roc_sum', 0.9201013738828865),
    ('wbc', 'pr_sum', 0.6676803678155585),
    ('wbc', 'roc_neg', 0.0798986261171135),
    ('wbc', 'pr_neg', 0.03056778605623344),
    ('wbc', 'roc_first', 0.8927571028411363),
    ('wbc', 'pr_first', 0.6138068541897055),
    ('wbc', 'p_at_10', 0.9),
    ('wbc', 'p_at_pos', 0.6190476190476191),
    ('wbc', 'p_at_10_first', 0.9),
    ('wbc', 'thr_05', 1962.377438299999),
    ('wbc', 'thr_pos', 1898.085114555555),
    ('wbc', 'tp', 13.0),
    ('wbc', 'fp', 6.0),
    ('wbc', 'tn', 351.0),
    ('wbc', 'fn', 8.0),
    ('wbc', 'precision', 0.6842105263157895),
    ('wbc', 'recall', 0.6190476190476191),
    ('wbc', 'f1', 0.6500000000000001),
    ('wbc', 'accuracy', 0.9629629629629629),
    ('wbc', 'pot_98', 5150.251586984984),
    ('wbc', 'pot_90', 26237.792056090988);

-- what the aggregates say
CREATE TABLE metrics_actual AS
WITH thr AS (
    SELECT dataset, anomaly_threshold(total, 0.05) AS t FROM metrics_scores GROUP BY dataset
), conf AS (
    SELECT dataset, anomaly_confusion(total > t, label) AS c
    FROM metrics_scores JOIN thr USING (dataset) GROUP BY dataset
), agg AS (
    SELECT dataset,
           anomaly_roc_auc(total, label) AS roc_sum,
           anomaly_pr_auc(total, label) AS pr_sum,
           anomaly_roc_auc(-total, label) AS roc_neg,
           anomaly_pr_auc(-total, label) AS pr_neg,
           anomaly_roc_auc(first, label) AS roc_first,
           anomaly_pr_auc(first, label) AS pr_first,
           anomaly_precision_at_k(total, label, 10) AS p_at_10,
           anomaly_precision_at_k(first, label, 10) AS p_at_10_first,
           anomaly_threshold(total, 0.05) AS thr_05,
           count(*) FILTER (WHERE label) AS npos,
           count(*) AS n
    FROM metrics_scores GROUP BY dataset
), more AS (
    SELECT dataset,
           anomaly_precision_at_k(total, label, npos::int) AS p_at_pos,
           anomaly_threshold(total, npos::float8 / n) AS thr_pos,
           anomaly_pot_threshold(total, 1e-3, 0.98) AS pot_98,
           anomaly_pot_threshold(total, 1e-3, 0.90) AS pot_90
    FROM metrics_scores JOIN agg USING (dataset)
    WHERE dataset NOT LIKE 'edge%'
    GROUP BY dataset
)
SELECT dataset, m.metric, m.value
FROM agg JOIN more USING (dataset) JOIN conf USING (dataset),
LATERAL (VALUES ('roc_sum', roc_sum), ('pr_sum', pr_sum), ('roc_neg', roc_neg), ('pr_neg', pr_neg),
                ('roc_first', roc_first), ('pr_first', pr_first),
                ('p_at_10', p_at_10), ('p_at_pos', p_at_pos), ('p_at_10_first', p_at_10_first),
                ('thr_05', thr_05), ('thr_pos', thr_pos),
                ('tp', (c->>'tp')::float8), ('fp', (c->>'fp')::float8),
                ('tn', (c->>'tn')::float8), ('fn', (c->>'fn')::float8),
                ('precision', (c->>'precision')::float8), ('recall', (c->>'recall')::float8),
                ('f1', (c->>'f1')::float8), ('accuracy', (c->>'accuracy')::float8),
                ('pot_98', pot_98), ('pot_90', pot_90)) m(metric, value)
UNION ALL
SELECT dataset, m.metric, m.value
FROM (SELECT dataset, anomaly_roc_auc(total, label) AS roc, anomaly_pr_auc(total, label) AS pr
      FROM metrics_scores WHERE dataset LIKE 'edge%' GROUP BY dataset) e,
LATERAL (VALUES ('roc', roc), ('pr', pr)) m(metric, value);

-- every expected value is matched: to 1e-9 absolute, POT to 1e-9 relative
SELECT dataset, metric,
       CASE WHEN metric LIKE 'pot%' THEN abs(a.value - e.value) < 1e-9 * abs(e.value)
            ELSE abs(a.value - e.value) < 1e-9 END AS ok
FROM metrics_expected e LEFT JOIN metrics_actual a USING (dataset, metric)
ORDER BY dataset, metric;

-- one class: ROC-AUC and average precision are undefined (NULL); the rest work
SELECT anomaly_roc_auc(s, l) AS roc, anomaly_pr_auc(s, l) AS pr,
       anomaly_precision_at_k(s, l, 2) AS p_at_2, anomaly_confusion(s > 1, l) AS confusion
FROM (VALUES (1.0, true), (2.0, true), (3.0, true)) v(s, l);
SELECT anomaly_roc_auc(s, l) AS roc, anomaly_pr_auc(s, l) AS pr, anomaly_precision_at_k(s, l, 2) AS p_at_2
FROM (VALUES (1.0, false), (2.0, false)) v(s, l);

-- no rows (or only NULLs): NULL from every aggregate
SELECT anomaly_roc_auc(s, l) IS NULL AS roc, anomaly_pr_auc(s, l) IS NULL AS pr,
       anomaly_precision_at_k(s, l, 3) IS NULL AS p_at_k, anomaly_confusion(s > 0, l) IS NULL AS confusion,
       anomaly_threshold(s, 0.1) IS NULL AS threshold, anomaly_pot_threshold(s) IS NULL AS pot,
       anomaly_pot_fit(s, 1e-4, 0.98) IS NULL AS pot_fit
FROM (VALUES (1.0::float8, true)) v(s, l) WHERE false;
SELECT anomaly_roc_auc(s, l) IS NULL AS roc, anomaly_pr_auc(s, l) IS NULL AS pr,
       anomaly_precision_at_k(s, l, 3) IS NULL AS p_at_k, anomaly_confusion(s > 0, l) IS NULL AS confusion,
       anomaly_threshold(s, 0.1) IS NULL AS threshold, anomaly_pot_threshold(s, 1e-3) IS NULL AS pot
FROM (VALUES (NULL::float8, true), (NULL, false), (NULL, NULL)) v(s, l);
SELECT anomaly_roc_auc(s, l) IS NULL AS roc, anomaly_confusion(s > 0, l) IS NULL AS confusion
FROM (VALUES (1.0::float8, NULL::boolean), (2.0, NULL)) v(s, l);

-- NULL scores and labels are skipped: same answers as without those rows
SELECT anomaly_roc_auc(s, l) = anomaly_roc_auc(s, l) FILTER (WHERE s IS NOT NULL AND l IS NOT NULL) AS roc, anomaly_pr_auc(s, l) = anomaly_pr_auc(s, l) FILTER (WHERE s IS NOT NULL AND l IS NOT NULL) AS pr,
       anomaly_confusion(s > 1.5, l) AS confusion
FROM (VALUES (1.0, false), (2.0, true), (NULL, true), (3.0, NULL), (1.5, true), (0.5, false), (1.7, false), (NULL, NULL)) v(s, l);

-- all scores equal: chance level, and precision at k is the base rate
SELECT anomaly_roc_auc(1.0, l) AS roc, anomaly_pr_auc(1.0, l) AS pr, anomaly_precision_at_k(1.0, l, 2) AS p_at_2,
       anomaly_threshold(1.0, 0.3) AS threshold
FROM (VALUES (true), (false), (false), (false)) v(l);

-- precision at k: a tied group straddling place k counts in proportion; k > rows uses all rows
SELECT round(anomaly_precision_at_k(s, l, 2)::numeric, 6) AS p_at_2,
       round(anomaly_precision_at_k(s, l, 1)::numeric, 6) AS p_at_1,
       round(anomaly_precision_at_k(s, l, 100)::numeric, 6) AS p_at_100
FROM (VALUES (3.0, true), (2.0, true), (2.0, false), (2.0, false), (1.0, true)) v(s, l);

-- confusion: a rate with a zero denominator is 0 (scikit-learn's zero_division)
SELECT anomaly_confusion(f, l) FROM (VALUES (false, true), (false, false)) v(f, l);
SELECT anomaly_confusion(f, l) FROM (VALUES (true, false), (false, false)) v(f, l);

-- threshold: contamination 0 is the largest score, 1 the smallest; infinities win the interpolation
SELECT anomaly_threshold(s, 0) AS c0, anomaly_threshold(s, 1) AS c1, anomaly_threshold(s, 0.5) AS c50,
       anomaly_threshold(s, 0.25) AS c25
FROM (VALUES (1.0), (2.0), (4.0), (8.0), (16.0)) v(s);
SELECT anomaly_threshold(s, 0.1) AS high, anomaly_threshold(s, 0.9) AS low
FROM (VALUES ('-Infinity'::float8), (0), (1), ('Infinity')) v(s);

-- errors
SELECT anomaly_roc_auc(s, true) FROM (VALUES (1.0::float8), ('NaN')) v(s);
SELECT anomaly_threshold(s, 0.1) FROM (VALUES ('NaN'::float8)) v(s);
SELECT anomaly_precision_at_k(1.0, true, 0);
SELECT anomaly_precision_at_k(1.0, true, NULL);
SELECT anomaly_precision_at_k(1.0, true, k) FROM generate_series(1, 2) k;
SELECT anomaly_threshold(1.0, 1.5);
SELECT anomaly_threshold(1.0, c) FROM (VALUES (0.1), (0.2)) v(c);
SELECT anomaly_pot_threshold(1.0, 0.05, 0.98);
SELECT anomaly_pot_threshold(1.0, 1e-4, 1);
SELECT anomaly_pot_threshold(s) FROM (VALUES (1.0::float8), ('Infinity')) v(s);
SELECT anomaly_pot_threshold(i) FROM generate_series(1, 100) i;
SELECT anomaly_pot_threshold(1.0) FROM generate_series(1, 1000) i;

-- POT on exact quantiles of known distributions: the threshold at risk 1e-6
-- is close to the true quantile (exponential: -ln(1e-6) = 13.8155; Pareto
-- with shape 1/2: 1000; bounded tail 1 - sqrt(1 - u): 0.999)
SELECT d, f->>'method' AS method, round((f->>'gamma')::numeric, 2) AS gamma, (f->>'peaks')::int AS peaks,
       abs((f->>'threshold')::float8 / truth - 1) < 0.01 AS within_1pct
FROM (SELECT 'exponential' AS d, anomaly_pot_fit(-ln(1 - (i - 0.5) / 100000), 1e-6, 0.98) AS f, -ln(1e-6) AS truth
      FROM generate_series(1, 100000) i
      UNION ALL
      SELECT 'pareto', anomaly_pot_fit(power(1 - (i - 0.5) / 100000, -0.5), 1e-6, 0.98), 1000
      FROM generate_series(1, 100000) i
      UNION ALL
      SELECT 'bounded', anomaly_pot_fit(1 - power(1 - (i - 0.5) / 100000, 0.5), 1e-6, 0.98), 1 - sqrt(1e-6)
      FROM generate_series(1, 100000) i) t
ORDER BY d;
-- few peaks: the method of moments; the defaults are risk 1e-4 and level 0.98
SELECT anomaly_pot_fit(i, 1e-3, 0.9)->>'method' AS method FROM generate_series(1, 50) i;
SELECT anomaly_pot_threshold(s) = anomaly_pot_threshold(s, 1e-4, 0.98) AS defaults,
       anomaly_pot_threshold(s, 1e-3) = anomaly_pot_threshold(s, 1e-3, 0.98) AS default_level
FROM (SELECT -ln(1 - (i - 0.5) / 5000) AS s FROM generate_series(1, 5000) i) t;

-- the training option threshold: 'pot' uses the same fit on the training scores
CREATE TABLE metrics_train AS
SELECT sin(i * 1.1) + cos(i * 0.37) AS a, sin(i * 0.71) * cos(i * 1.9) AS b, cos(i * 2.3) + sin(i * 0.13) AS c
FROM generate_series(1, 3000) i;
SELECT s->>'threshold' IS NOT NULL AS has_threshold, s->'pot'->>'method' AS method, (s->'pot'->>'peaks')::int AS peaks,
       s->'options'->>'threshold' AS threshold_option, s->'options'->>'risk' AS risk
FROM anomaly_train('metrics_pot', 'SELECT a, b, c FROM metrics_train', 'zscore',
                   '{"threshold": "pot", "risk": 0.001}') s;
SELECT abs(m.threshold / t.pot - 1) < 1e-5 AS matches_aggregate, m.threshold > t.q999 AS above_q999
FROM anomaly_models m,
     (SELECT anomaly_pot_threshold(anomaly_score('metrics_pot', ARRAY[a, b, c]), 0.001) AS pot,
             anomaly_threshold(anomaly_score('metrics_pot', ARRAY[a, b, c]), 0.001) AS q999
      FROM metrics_train) t
WHERE m.name = 'metrics_pot';
-- the default is unchanged (and not recorded), and a wrong value or a stray risk is rejected
SELECT s->'options' ? 'threshold' AS recorded, s->'pot' IS NULL AS no_pot
FROM anomaly_train('metrics_default', 'SELECT a, b, c FROM metrics_train', 'zscore') s;
SELECT (anomaly_train('metrics_c', 'SELECT a, b, c FROM metrics_train', 'zscore',
                      '{"threshold": "contamination", "contamination": 0.1}'))->'options'->>'threshold' AS threshold;
SELECT anomaly_train('metrics_bad', 'SELECT a, b, c FROM metrics_train', 'zscore', '{"threshold": "evt"}');
SELECT anomaly_train('metrics_bad', 'SELECT a, b, c FROM metrics_train', 'zscore', '{"risk": 0.001}');
SELECT anomaly_train('metrics_bad', 'SELECT a, b, c FROM metrics_train', 'zscore', '{"threshold": "pot", "risk": 0.5}');
SELECT anomaly_train('metrics_bad', 'SELECT a, b, c FROM metrics_train LIMIT 100', 'zscore', '{"threshold": "pot"}');
