#!/bin/bash
# test/demo.sh: anomaly end to end, on a real dataset kept in the repository.
#
#   sudo bash test/demo.sh [data/breastw.csv]
#
# Installs missing Debian packages, builds and installs the extension, starts
# a scratch cluster, loads the CSV (feature columns, then "label", 1 =
# anomaly), trains zscore, knn, autoencoder and ensemble (those that
# anomaly_kinds() lists) WITHOUT the labels, prints the ten most anomalous rows
# with the three features that explain each, the ROC-AUC and PR-AUC each model
# achieves against the labels, and a scheduled detection run (anomaly_detect:
# only new rows scored, alerts recorded).  The cluster is stopped at the end.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap cleanup EXIT

DATA=${1:-data/breastw.csv}
case "$DATA" in
	/*) ;;
	*) DATA="$ROOT_DIR/$DATA" ;;
esac
[ -r "$DATA" ] || { echo "demo.sh: cannot read $DATA" >&2; exit 1; }

install_deps
make_scratch demo
copy_tree
build_install
start_cluster

# Column names from the CSV header: lower case, anything else than a letter,
# digit or underscore becomes "_" (Cl.thickness -> cl_thickness).
IFS=',' read -r -a header < <(head -n 1 "$DATA" | tr -d '\r')
cols=()
for h in "${header[@]}"; do
	c=$(echo "$h" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9_]/_/g; s/^\([0-9]\)/f_\1/')
	cols+=("$c")
done
last=$((${#cols[@]} - 1))
if [ "${cols[$last]}" != "label" ]; then
	echo "demo.sh: the last column of $DATA must be \"label\"" >&2
	exit 1
fi
features=("${cols[@]:0:$last}")
feature_list=$(IFS=','; echo "${features[*]}")
column_defs=$(printf '%s float8, ' "${features[@]}")
array_expr="ARRAY[$(IFS=','; echo "${features[*]}")]::float8[]"
name=$(basename "$DATA" .csv)

DB=anomaly_demo
as_user "$PG_BINDIR/createdb" -h "$SCRATCH/sock" -p "$PGPORT_CHOSEN" "$DB"

log "loading $DATA (${#features[@]} features)"
scratch_psql -q -d "$DB" -c "CREATE EXTENSION anomaly" \
	-c "CREATE TABLE demo (id serial PRIMARY KEY, ${column_defs} label int NOT NULL)"
# the file is read by this script, so the postgres user need not be able to read it
scratch_psql -q -d "$DB" -c "COPY demo ($feature_list, label) FROM STDIN WITH (FORMAT csv, HEADER true)" < "$DATA"

kinds=()
for k in zscore knn autoencoder ensemble; do
	if [ "$(scratch_psql -At -d "$DB" -c "SELECT count(*) FROM anomaly_kinds() WHERE kind = '$k'")" = 1 ]; then
		kinds+=("$k")
	fi
done

scratch_psql -d "$DB" -v name="$name" <<SQL
\pset footer off
\echo
\echo 'Dataset' :'name'
SELECT count(*) AS rows, ${#features[@]} AS features,
       count(*) FILTER (WHERE label = 1) AS labeled_anomalies
FROM demo;
SQL

for kind in "${kinds[@]}"; do
	log "training $kind on all rows, without the labels"
	scratch_psql -q -d "$DB" -v kind="$kind" <<SQL
\pset footer off
SELECT s->>'kind' AS kind, s->>'rows' AS rows, s->>'features' AS features,
       round((s->>'threshold')::numeric, 3) AS threshold,
       round((s->>'seconds')::numeric, 2) AS seconds
FROM anomaly_train('demo_' || :'kind', 'SELECT $feature_list FROM demo', :'kind') AS s;
SQL
done

for kind in "${kinds[@]}"; do
	scratch_psql -q -d "$DB" -v model="demo_$kind" <<SQL
\pset footer off
\echo
\echo 'Top 10 anomalies of model' :'model' '(label 1 = a real anomaly), with the three features that explain each'
SELECT rank() OVER (ORDER BY (e->>'score')::float8 DESC) AS rank,
       id, label,
       round((e->>'score')::numeric, 2) AS score,
       (e->>'is_anomaly')::boolean AS flagged,
       (SELECT string_agg(format('%s=%s (%s%%)', f->>'name', f->>'value',
                                 round(100 * (f->>'contribution')::numeric / nullif((e->>'score')::numeric, 0))),
                          ', ' ORDER BY i)
        FROM jsonb_array_elements(e->'features') WITH ORDINALITY AS x(f, i) WHERE i <= 3) AS top_features
FROM demo, LATERAL anomaly_explain(:'model', $array_expr) AS e
ORDER BY (e->>'score')::float8 DESC, id
LIMIT 10;
SQL
done

echo
echo "How well each model separates the labeled anomalies (trained without labels on all rows):"
{
	echo '\pset footer off'
	first=1
	for kind in "${kinds[@]}"; do
		[ $first = 1 ] || echo "UNION ALL"
		first=0
		cat <<SQL
SELECT '$kind' AS model,
       round(anomaly_roc_auc(anomaly_score('demo_$kind', d), label = 1)::numeric, 4) AS roc_auc,
       round(anomaly_pr_auc(anomaly_score('demo_$kind', d), label = 1)::numeric, 4) AS pr_auc,
       (anomaly_confusion(anomaly_is_anomaly('demo_$kind', d), label = 1))->>'tp' AS flagged_and_labeled,
       count(*) FILTER (WHERE anomaly_is_anomaly('demo_$kind', d)) AS flagged
FROM demo d
SQL
	done
	echo ";"
} | scratch_psql -q -d "$DB"

# A scheduled detection run, as pg_cron would start it every minute: score only
# the rows added since the last run and record the anomalous ones as alerts.
model="demo_${kinds[-1]}"
log "scheduled detection with $model: anomaly_detect() scores only new rows"
scratch_psql -q -d "$DB" -v model="$model" <<SQL
\pset footer off
-- pretend the last 50 rows arrived since the previous run
INSERT INTO anomaly_watermarks (model, source, key_column, last_key)
SELECT :'model', 'demo', 'id', to_jsonb(max(id) - 50) FROM demo;
\echo
\echo 'Run 1: the 50 newest rows'
SELECT rows_scored, alerts_written FROM anomaly_detect(:'model', 'demo', 'id');
-- two new rows arrive: a copy of an ordinary row, and one with every feature five times larger
INSERT INTO demo ($feature_list, label) SELECT $feature_list, label FROM demo WHERE id = 2;
INSERT INTO demo ($feature_list, label) SELECT $(printf '%s * 5, ' "${features[@]}") 1 FROM demo WHERE id = 2;
\echo 'Run 2: only the 2 rows added since run 1'
SELECT rows_scored, alerts_written FROM anomaly_detect(:'model', 'demo', 'id');
\echo 'Newest alerts (anomaly_alerts), with the feature that explains each most'
SELECT key AS id, round(score::numeric, 2) AS score, round(threshold::numeric, 2) AS threshold,
       explanation->'features'->0->>'name' AS top_feature, detected_at::time(0) AS detected_at
FROM anomaly_alerts WHERE model = :'model'
ORDER BY key::bigint DESC LIMIT 5;
SQL

echo
log "demo done; stopping the scratch cluster"
