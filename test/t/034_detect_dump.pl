
# pg_dump / pg_restore carries the training history, the detection
# watermarks and the alerts (all marked with pg_extension_config_dump): after
# a restore into another database, detection continues where it stopped
# (source regclass values are restored by name) and training continues the
# version numbers.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION anomaly;
	CREATE TABLE pay (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	                  amount float8 NOT NULL, n_items int NOT NULL);
	INSERT INTO pay (amount, n_items)
	SELECT 20 + 10 * sin(i), 1 + i % 5 FROM generate_series(1, 200) i;
	SELECT anomaly_train('pay', 'SELECT amount, n_items FROM pay', 'zscore');
	INSERT INTO pay (amount, n_items) VALUES (900, 2);
	SELECT anomaly_detect('pay', 'pay', 'id', threshold => 10);
});

my $file = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $file, 'src' ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', 'dst', $file ], 'pg_restore');

is( $node->safe_psql('dst', q{
		SELECT model || ':' || source::text || ':' || last_key::text || ':' || runs
		FROM anomaly_watermarks}),
	'pay:pay:201:1', 'watermark restored');
is($node->safe_psql('dst', 'SELECT model, source, key FROM anomaly_alerts'),
	'pay|pay|201', 'alerts restored');
is($node->safe_psql('dst', 'SELECT model, version, kind, rows FROM anomaly_training_runs'),
	'pay|1|zscore|200', 'training history restored');

$node->safe_psql('dst', 'INSERT INTO pay (amount, n_items) VALUES (20, 90)');
is( $node->safe_psql('dst', q{
		SELECT rows_scored || '/' || alerts_written
		FROM anomaly_detect('pay', 'pay', 'id', threshold => 10)}),
	'1/1', 'detection continues after the restored watermark');
is( $node->safe_psql('dst', q{
		SELECT anomaly_train('pay', 'SELECT amount, n_items FROM pay', 'zscore')->>'version'}),
	'2', 'training continues the version numbers');

$node->stop;
done_testing();
