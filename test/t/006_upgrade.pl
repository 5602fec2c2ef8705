# ALTER EXTENSION anomaly UPDATE from the previous release keeps every model
# working: install 0.1.0, train, update, score the same, train again; and the
# updated extension has exactly the objects of a fresh install.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', q{
CREATE EXTENSION anomaly VERSION '0.1.0';
CREATE TABLE d AS SELECT i AS id, sin(i) AS a, cos(i) AS b, sin(3 * i) AS c FROM generate_series(1, 300) i;
});
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'anomaly'"),
	'0.1.0', 'installed the previous release');

my @kinds = split /\n/, $node->safe_psql('postgres', 'SELECT kind FROM anomaly_kinds() ORDER BY 1');
my $probe = "SELECT string_agg(anomaly_score('u_%s', ARRAY[a, b, c])::text, ',' ORDER BY id) FROM d WHERE id % 17 = 0";
my %before;
for my $kind (@kinds)
{
	$node->safe_psql('postgres',
		"SELECT anomaly_train('u_$kind', 'SELECT a, b, c FROM d', '$kind', '{\"max_rows\": 300}')");
	$before{$kind} = $node->safe_psql('postgres', sprintf($probe, $kind));
}

$node->safe_psql('postgres', 'ALTER EXTENSION anomaly UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'anomaly'"),
	'0.2.0', 'updated to 0.2.0');

for my $kind (@kinds)
{
	is($node->safe_psql('postgres', sprintf($probe, $kind)), $before{$kind},
		"$kind: scores after the update equal those before");
}

# features of the new version work on models trained before it
is($node->safe_psql('postgres',
	"SELECT count(*) FROM d WHERE anomaly_score('u_zscore', d) = anomaly_score('u_zscore', ARRAY[a, b, c])"),
	'300', 'row input scores an old model');
like($node->safe_psql('postgres', "SELECT anomaly_train('u_zscore', 'SELECT a, b, c FROM d', 'zscore')"),
	qr/"version": 1/, 'retraining after the update records history');
is($node->safe_psql('postgres',
	"SELECT round(anomaly_roc_auc(anomaly_score('u_zscore', ARRAY[a, b, c]), id % 10 = 0)::numeric, 6) IS NOT NULL FROM d"),
	't', 'evaluation aggregates exist after the update');

# the updated extension and a fresh install have the same objects and definitions
$node->safe_psql('fresh', 'CREATE EXTENSION anomaly');
my $objects = q{
SELECT pg_describe_object(d.classid, d.objid, 0)
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'anomaly'
ORDER BY 1};
is($node->safe_psql('postgres', $objects), $node->safe_psql('fresh', $objects), 'same member objects');
my $functions = q{
SELECT p.oid::regprocedure::text, p.provolatile, p.proparallel, p.proisstrict, p.prosecdef,
       md5(p.prosrc), pg_get_function_result(p.oid), pg_catalog.array_to_string(p.proconfig, ',')
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'anomaly'
ORDER BY 1};
is($node->safe_psql('postgres', $functions), $node->safe_psql('fresh', $functions),
	'same function definitions and markings');
my $tables = q{
SELECT c.relname, c.relrowsecurity, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(ad.adbin, ad.adrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
WHERE c.relname LIKE 'anomaly%'
ORDER BY 1, a.attnum};
is($node->safe_psql('postgres', $tables), $node->safe_psql('fresh', $tables), 'same tables and columns');
my $policies = q{SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies ORDER BY 1, 2};
is($node->safe_psql('postgres', $policies), $node->safe_psql('fresh', $policies), 'same row-level security policies');
my $config = q{
SELECT array_agg(c::regclass::text ORDER BY c::regclass::text)
FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'anomaly'};
is($node->safe_psql('postgres', $config), $node->safe_psql('fresh', $config), 'same tables carried by pg_dump');

$node->stop;
done_testing();
