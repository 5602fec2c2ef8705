# Every evaluation/threshold aggregate runs in a parallel plan (Partial
# Aggregate under a Gather) and gives exactly the serial answer, also when
# workers see no rows (NULL partial state) or only NULL scores (empty state),
# and per group.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('parallel_aggregates');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_worker_processes = 8
max_parallel_workers = 4
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION anomaly;
-- tied scores (rounded), NULL scores and labels, both classes
CREATE TABLE s AS
SELECT i, i % 3 AS g,
       CASE WHEN i % 97 = 0 THEN NULL ELSE round((sin(i * 0.37) + cos(i * 1.3) + i % 7 * 0.1)::numeric, 2)::float8 END AS score,
       CASE WHEN i % 89 = 0 THEN NULL ELSE sin(i * 0.11) + 0.3 * cos(i * 0.37) > 0.9 END AS label
FROM generate_series(1, 100000) i;
ANALYZE s;
});

my $parallel = q{
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
};
my $serial = q{SET max_parallel_workers_per_gather = 0;};

my @aggregates = (
	'anomaly_roc_auc(score, label)',
	'anomaly_pr_auc(score, label)',
	'anomaly_precision_at_k(score, label, 50)',
	'anomaly_confusion(score > 1, label)',
	'anomaly_threshold(score, 0.05)',
	'anomaly_pot_threshold(score)',
	'anomaly_pot_threshold(score, 1e-3)',
	'anomaly_pot_threshold(score, 1e-3, 0.95)',
	'anomaly_pot_fit(score, 1e-3, 0.95)',
);

foreach my $agg (@aggregates)
{
	my $query = "SELECT $agg FROM s";
	my $plan = $node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) $query");
	like($plan, qr/Partial Aggregate/, "$agg: parallel plan has a Partial Aggregate");
	like($plan, qr/Gather/, "$agg: parallel plan gathers");

	my $got = $node->safe_psql('postgres', "$parallel $query");
	my $want = $node->safe_psql('postgres', "$serial $query");
	isnt($want, '', "$agg: serial answer is not NULL");
	is($got, $want, "$agg: parallel answer equals serial");

	# grouped: Partial (Hash|Group)Aggregate with a state per group
	my $gquery = "SELECT g, $agg FROM s GROUP BY g ORDER BY g";
	$plan = $node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) $gquery");
	like($plan, qr/Partial GroupAggregate|Partial HashAggregate/, "$agg: grouped parallel plan is partial");
	is($node->safe_psql('postgres', "$parallel $gquery"),
		$node->safe_psql('postgres', "$serial $gquery"),
		"$agg: grouped parallel answer equals serial");
}

# The rank aggregates on few rows: most workers see none (NULL partial state)
foreach my $agg (@aggregates[0 .. 4])
{
	my $query = "SELECT $agg FROM s WHERE i <= 40";
	is($node->safe_psql('postgres', "$parallel $query"),
		$node->safe_psql('postgres', "$serial $query"),
		"$agg: parallel equals serial when workers see few rows");
}

# No rows at all, or only NULL scores: NULL, in parallel too
foreach my $agg (@aggregates)
{
	foreach my $where ('i < 0', 'score IS NULL')
	{
		my $query = "SELECT ($agg) IS NULL FROM s WHERE $where";
		is($node->safe_psql('postgres', "$parallel $query"), 't', "$agg: NULL in parallel WHERE $where");
	}
}

# Workers did run: EXPLAIN ANALYZE shows them launched
my $analyze = $node->safe_psql('postgres',
	"$parallel EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT anomaly_roc_auc(score, label) FROM s");
like($analyze, qr/Workers Launched: [12]/, 'parallel workers launched');

$node->stop;
done_testing();
