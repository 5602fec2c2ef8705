# Models survive pg_dump and restore: anomaly_models and anomaly_weights are
# extension configuration tables, so a dump carries their rows, and the
# restored models give the same scores, to the last bit, as the originals.
# Every kind this build offers is checked.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION anomaly;
	CREATE TABLE pts AS
	SELECT i AS id, sin(i) AS a, cos(i * 1.7) AS b, (i % 13)::float8 AS c, (i % 4 = 0) AS d
	FROM generate_series(1, 300) AS i;
});

my @kinds = split /\n/, $node->safe_psql('src', 'SELECT kind FROM anomaly_kinds() ORDER BY kind');
ok(scalar(grep { $_ eq 'zscore' } @kinds), 'zscore is among the kinds: ' . join(', ', @kinds));

foreach my $kind (@kinds)
{
	$node->safe_psql('src',
		"SELECT anomaly_train('m_$kind', 'SELECT a, b, c, d FROM pts', '$kind')");
}
# an array-input model with non-default options, too
$node->safe_psql('src', q{
	SELECT anomaly_train('m_array', 'SELECT ARRAY[a, b, c] FROM pts WHERE id % 3 <> 0', 'zscore',
	                     '{"robust": true, "contamination": 0.1}')
});

# Everything a model is made of, and what it computes: float8 output in
# PostgreSQL 15 is the shortest exact representation, so equal text means
# equal bits.
my %queries = (
	models => q{
		SELECT name, kind, n_features, feature_names, options, threshold, score_quantiles, metrics, owner
		FROM anomaly_models ORDER BY name},
	weights => q{
		SELECT model, tensor, shape, md5(data::text), cardinality(data)
		FROM anomaly_weights ORDER BY model, tensor COLLATE "C"},
	scores => q{
		SELECT m.name,
		       string_agg(anomaly_score(m.name, CASE WHEN m.name = 'm_array'
		                                             THEN ARRAY[a, b, c] ELSE ARRAY[a, b, c, d::int] END)::text,
		                  ',' ORDER BY id)
		FROM anomaly_models m, pts GROUP BY m.name ORDER BY m.name},
	scores_real => q{
		SELECT m.name,
		       string_agg(anomaly_score(m.name, ARRAY[a, b, c, d::int]::real[])::text, ',' ORDER BY id)
		FROM anomaly_models m, pts WHERE m.name <> 'm_array' GROUP BY m.name ORDER BY m.name},
	flags => q{
		SELECT m.name, string_agg(anomaly_is_anomaly(m.name, ARRAY[a, b, c, d::int], 0.2)::text, ',' ORDER BY id)
		FROM anomaly_models m, pts WHERE m.name <> 'm_array' GROUP BY m.name ORDER BY m.name},
	explain => q{
		SELECT m.name, anomaly_explain(m.name, ARRAY[a, b, c, d::int])
		FROM anomaly_models m, pts WHERE m.name <> 'm_array' AND id IN (1, 17, 250) ORDER BY m.name, id},
);

my %before;
foreach my $q (sort keys %queries)
{
	$before{$q} = $node->safe_psql('src', $queries{$q});
}
my $n_models = $node->safe_psql('src', 'SELECT count(*) FROM anomaly_models');
is($n_models, scalar(@kinds) + 1, 'one model per kind plus the array model');
isnt($before{scores}, '', 'scores computed');

my $tempdir = PostgreSQL::Test::Utils::tempdir;

# custom format through pg_restore
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', "$tempdir/src.dump", '-d', $node->connstr('src') ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), "$tempdir/src.dump" ],
	'pg_restore');

# plain SQL through psql
$node->command_ok(
	[ 'pg_dump', '-Fp', '-f', "$tempdir/src.sql", '-d', $node->connstr('src') ],
	'pg_dump -Fp');
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', "$tempdir/src.sql" ],
	'restore the plain dump with psql');

foreach my $db ('dst_custom', 'dst_plain')
{
	foreach my $q (sort keys %queries)
	{
		is($node->safe_psql($db, $queries{$q}), $before{$q}, "$db: same $q after restore");
	}

	# the restored models work as models: they can be retrained and dropped
	is($node->safe_psql($db,
		"SELECT anomaly_train('m_zscore', 'SELECT a, b, c, d FROM pts WHERE id > 10', 'zscore')->>'rows'"),
		'290', "$db: a restored model can be retrained");
	is($node->safe_psql($db, "SELECT anomaly_drop('m_array')"), 't', "$db: a restored model can be dropped");
	is($node->safe_psql($db, "SELECT count(*) FROM anomaly_weights WHERE model = 'm_array'"),
		'0', "$db: its weights went with it");
}

# a dump of a database with the extension but no models restores cleanly
$node->safe_psql('postgres', 'CREATE DATABASE empty_src');
$node->safe_psql('empty_src', 'CREATE EXTENSION anomaly');
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', "$tempdir/empty.dump", '-d', $node->connstr('empty_src') ],
	'pg_dump of a database without models');
$node->safe_psql('postgres', 'CREATE DATABASE empty_dst');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('empty_dst'), "$tempdir/empty.dump" ],
	'pg_restore of a database without models');
is($node->safe_psql('empty_dst', 'SELECT count(*) FROM anomaly_models'), '0', 'no models appear');

$node->stop;
done_testing();
