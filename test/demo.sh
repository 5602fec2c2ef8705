#!/bin/bash
# test/demo.sh: anomaly end to end, on a real dataset kept in the repository.
#
#   sudo bash test/demo.sh [data/breastw.csv]
#
# Installs missing Debian packages, builds and installs the extension, starts
# a scratch cluster, loads the CSV (feature columns, then "label", 1 =
# anomaly), trains every demo kind this build offers (zscore, and autoencoder
# when anomaly_kinds() lists it) WITHOUT the labels, prints the ten most
# anomalous rows with the three features that explain each, and the ROC-AUC
# each model achieves against the labels.  The cluster is stopped at the end.
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

kinds=(zscore)
if [ "$(scratch_psql -At -d "$DB" -c "SELECT count(*) FROM anomaly_kinds() WHERE kind = 'autoencoder'")" = 1 ]; then
	kinds+=(autoencoder)
fi

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
SELECT * FROM (
    WITH s AS (
        SELECT label, anomaly_score('demo_$kind', $array_expr) AS score,
               anomaly_is_anomaly('demo_$kind', $array_expr) AS flagged
        FROM demo),
    r AS (
        -- average ranks for ties: Mann-Whitney U gives the ROC-AUC
        SELECT label, flagged,
               rank() OVER (ORDER BY score) + (count(*) OVER (PARTITION BY score) - 1) / 2.0 AS rk
        FROM s)
    SELECT '$kind' AS model,
           round((sum(rk) FILTER (WHERE label = 1)
                  - count(*) FILTER (WHERE label = 1) * (count(*) FILTER (WHERE label = 1) + 1) / 2.0)
                 / (count(*) FILTER (WHERE label = 1) * count(*) FILTER (WHERE label = 0)), 4) AS roc_auc,
           count(*) FILTER (WHERE flagged) AS flagged,
           count(*) FILTER (WHERE flagged AND label = 1) AS flagged_and_labeled
    FROM r) AS "$kind"
SQL
	done
	echo ";"
} | scratch_psql -q -d "$DB"

echo
log "demo done; stopping the scratch cluster"
