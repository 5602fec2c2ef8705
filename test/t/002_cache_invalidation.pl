# Each backend caches decoded models.  A model retrained, replaced by hand or
# dropped in one session must take effect in every other session's next query
# after commit, and not before; a rolled-back change must leave everyone on
# the old model.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION anomaly;
	-- three data sets with different location and scale, so each gives
	-- a different score to the probe row
	CREATE TABLE d1 AS SELECT sin(i) AS x, cos(i) AS y FROM generate_series(1, 200) i;
	CREATE TABLE d2 AS SELECT 3 + 2 * sin(i) AS x, cos(i) - 1 AS y FROM generate_series(1, 200) i;
	CREATE TABLE d3 AS SELECT 10 * sin(i) AS x, 5 * cos(i) AS y FROM generate_series(1, 200) i;
	SELECT anomaly_train('m', 'SELECT x, y FROM d1', 'zscore');
});

my $probe = q{SELECT anomaly_score('m', ARRAY[1.5, -0.5]::float8[])};
my $probe_all = q{SELECT anomaly_score('m', ARRAY[1.5, -0.5]::float8[]) || ' '
	|| anomaly_is_anomaly('m', ARRAY[1.5, -0.5]::real[], 0.5) || ' '
	|| (anomaly_explain('m', ARRAY[1.5, -0.5]::float8[])->>'score')};

# The score each data set's model gives the probe, computed in fresh sessions.
sub score_with
{
	my ($table) = @_;
	$node->safe_psql('postgres', "SELECT anomaly_train('m', 'SELECT x, y FROM $table', 'zscore')");
	return $node->safe_psql('postgres', $probe);
}
my $s3 = score_with('d3');
my $s2 = score_with('d2');
my $s1 = score_with('d1');
isnt($s1, $s2, 'the data sets give different scores (d1, d2)');
isnt($s2, $s3, 'the data sets give different scores (d2, d3)');

# Run a query in a background session; return (output, stderr) and clear
# stderr for the next query.
sub run
{
	my ($session, $sql) = @_;
	my ($out) = $session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return ($out, $err);
}

# Run a statement that must succeed.
sub do_ok
{
	my ($session, $sql) = @_;
	my ($out, $err) = run($session, $sql);
	is($err, '', "no error: $sql");
}

sub check
{
	my ($session, $sql, $expected, $name) = @_;
	my ($out, $err) = run($session, $sql);
	is($err, '', "$name: no error");
	is($out, $expected, $name);
}

my $a = $node->background_psql('postgres', on_error_stop => 0);
my $b = $node->background_psql('postgres', on_error_stop => 0);

# B caches the d1 model, in three different functions (three handles)
check($b, $probe, $s1, 'B scores with the first model');
my ($all1) = run($b, $probe_all);
like($all1, qr/^\Q$s1\E (true|false) \Q$s1\E$/, 'B: score, is_anomaly and explain use the first model');

# A retrains inside a transaction: A sees its new model, B does not yet
do_ok($a, 'BEGIN');
do_ok($a, q{SELECT anomaly_train('m', 'SELECT x, y FROM d2', 'zscore')});
check($a, $probe, $s2, 'A sees its uncommitted model');
check($b, $probe, $s1, 'B still sees the old model before A commits');
is($node->safe_psql('postgres', $probe), $s1, 'a new session sees the old model before A commits');

do_ok($a, 'COMMIT');
check($b, $probe, $s2, "B's next query after A's commit sees the new model");
my ($all2) = run($b, $probe_all);
like($all2, qr/^\Q$s2\E (true|false) \Q$s2\E$/, 'B: all three functions see the new model');
check($a, $probe, $s2, 'A sees the committed model');

# A retrains and rolls back: both stay on the committed model
do_ok($a, 'BEGIN');
do_ok($a, q{SELECT anomaly_train('m', 'SELECT x, y FROM d3', 'zscore')});
check($a, $probe, $s3, 'A sees the retrained model inside its transaction');
check($b, $probe, $s2, 'B does not see the uncommitted retrain');
do_ok($a, 'ROLLBACK');
check($a, $probe, $s2, 'after ROLLBACK, A is back on the committed model');
check($b, $probe, $s2, 'after ROLLBACK, B is still on the committed model');
my ($all3) = run($a, $probe_all);
like($all3, qr/^\Q$s2\E (true|false) \Q$s2\E$/, 'A: all three functions are back on the committed model');

# a savepoint rolled back inside A's transaction also undoes the retrain for A
do_ok($a, 'BEGIN');
do_ok($a, 'SAVEPOINT s');
do_ok($a, q{SELECT anomaly_train('m', 'SELECT x, y FROM d3', 'zscore')});
check($a, $probe, $s3, 'A sees the retrain made after a savepoint');
do_ok($a, 'ROLLBACK TO SAVEPOINT s');
check($a, $probe, $s2, 'ROLLBACK TO SAVEPOINT brings A back to the committed model');
do_ok($a, 'COMMIT');
check($b, $probe, $s2, 'B is unaffected by the rolled-back savepoint');

# a change made by hand in the catalog is an invalidation too
my $flag_sql = q{SELECT anomaly_is_anomaly('m', ARRAY[1.5, -0.5]::float8[])};
check($b, $flag_sql, "f", "the probe row is normal under the committed model");
do_ok($a, 'UPDATE anomaly_models SET threshold = 1e300 WHERE name = \'m\'');
check($b, $flag_sql, 'f', 'B sees a threshold changed by hand');
do_ok($a, 'UPDATE anomaly_models SET threshold = -1 WHERE name = \'m\'');
check($b, $flag_sql, 't', 'B sees the threshold changed again');

# A drops the model: B keeps it until A commits, then gets "does not exist"
do_ok($a, 'BEGIN');
my ($dropped) = run($a, q{SELECT anomaly_drop('m')});
is($dropped, 't', 'A drops the model');
check($b, $probe, $s2, 'B still scores before the drop is committed');
do_ok($a, 'COMMIT');
my ($out, $err) = run($b, $probe);
like($err, qr/anomaly model "m" does not exist/, 'B: the dropped model does not exist');
($out, $err) = run($b, $probe_all);
like($err, qr/anomaly model "m" does not exist/, 'B: not for is_anomaly or explain either');
($out, $err) = run($a, $probe);
like($err, qr/anomaly model "m" does not exist/, 'A: the dropped model does not exist');

# a model created again under the same name is found by both
do_ok($a, q{SELECT anomaly_train('m', 'SELECT x, y FROM d1', 'zscore')});
check($b, $probe, $s1, 'B finds the model trained again under the same name');
check($a, $probe, $s1, 'A finds it too');

# a model trained in B's own session replaces what B cached
do_ok($b, q{SELECT anomaly_train('m', 'SELECT x, y FROM d3', 'zscore')});
check($b, $probe, $s3, 'B sees its own retrain at once');
check($a, $probe, $s3, "A sees B's retrain");

# the whole extension dropped and created again (new catalog tables)
do_ok($a, 'DROP EXTENSION anomaly');
do_ok($a, 'CREATE EXTENSION anomaly');
($out, $err) = run($b, $probe);
like($err, qr/anomaly model "m" does not exist/, 'B: after the extension is recreated the model is gone');
do_ok($a, q{SELECT anomaly_train('m', 'SELECT x, y FROM d2', 'zscore')});
check($b, $probe, $s2, 'B finds a model in the recreated catalog');

$a->quit;
$b->quit;
$node->stop;
done_testing();
