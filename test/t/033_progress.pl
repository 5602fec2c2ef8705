
# The anomaly_progress view with the library in shared_preload_libraries:
# another session sees a running training (model, kind, phase, rows, elapsed),
# only its own role's runs unless it has pg_read_all_stats, and the row goes
# away when the training ends, fails, is cancelled or its backend is killed.
#
# The training query blocks on an advisory lock at row 2500, so the run is
# caught in its reading phase after two batches of 1000 rows.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('progress');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'anomaly'");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION anomaly;
	CREATE FUNCTION gate(i int) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		IF i = 2500 THEN
			PERFORM pg_advisory_xact_lock_shared(1);
		END IF;
		RETURN true;
	END $$;
	CREATE ROLE watcher LOGIN;
	GRANT SELECT ON anomaly_progress TO watcher;
});

my $train = q{SELECT anomaly_train('prog',
	'SELECT i::float8 AS a, (i % 7)::float8 AS b FROM generate_series(1, 5000) i WHERE gate(i)',
	'zscore')->>'rows'};

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM anomaly_progress');
is($out, '0', 'no trainings running');
is($err, '', 'and no notice when preloaded');

# Start a training that blocks at row 2500 while the lock is held.
sub start_blocked_training
{
	my ($locker, $trainer) = @_;
	$locker->query_safe('SELECT pg_advisory_lock(1)');
	my $pid = $trainer->query_safe('SELECT pg_backend_pid()');
	$trainer->query_until(qr/started/, "\\echo started\n$train;\n");
	$node->poll_query_until('postgres',
		"SELECT phase || ':' || rows FROM anomaly_progress WHERE pid = $pid",
		'reading:2000')
	  or die 'training not seen in anomaly_progress';
	return $pid;
}

my $locker = $node->background_psql('postgres');
my $trainer = $node->background_psql('postgres', on_error_stop => 0);
my $pid = start_blocked_training($locker, $trainer);
pass('a running training is seen from another session');

is( $node->safe_psql('postgres', qq{
		SELECT model, kind, phase, epoch, epochs, rows, loss IS NULL,
		       started_at <= now(), elapsed >= '0', updated_at >= started_at
		FROM anomaly_progress}),
	"prog|zscore|reading|0|0|2000|t|t|t|t", 'its model, kind, phase and rows');

# Visibility follows pg_stat_activity's rule.
is($node->safe_psql('postgres', 'SELECT count(*) FROM anomaly_progress', extra_params => ['-U', 'watcher']),
	'0', 'another role does not see the run');
$node->safe_psql('postgres', 'GRANT pg_read_all_stats TO watcher');
is($node->safe_psql('postgres', 'SELECT count(*) FROM anomaly_progress', extra_params => ['-U', 'watcher']),
	'1', 'pg_read_all_stats does');

# The training finishes: the row goes away.
$locker->query_safe('SELECT pg_advisory_unlock(1)');
is($trainer->query_safe('SELECT 1'), "5000\n1", 'training completes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM anomaly_progress'), '0',
	'finished training leaves the view');

# Cancelled (an error in the training): the row goes away, the session goes on.
$pid = start_blocked_training($locker, $trainer);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$locker->query_safe('SELECT pg_advisory_unlock(1)');
$trainer->query('SELECT 1');
like($trainer->{stderr}, qr/canceling statement due to user request/, 'training cancelled');
$trainer->{stderr} = '';
is($node->safe_psql('postgres', 'SELECT count(*) FROM anomaly_progress'), '0',
	'cancelled training leaves the view');
is($trainer->query_safe("$train"), '5000', 'the session trains again afterwards');

# Killed backend: the slot is released at exit.
$pid = start_blocked_training($locker, $trainer);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$locker->query_safe('SELECT pg_advisory_unlock(1)');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM anomaly_progress', '0'),
	'terminated training leaves the view');

# Verbose messages work the same when preloaded.
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT anomaly_train('v', 'SELECT i::float8 AS a FROM generate_series(1, 10) i', 'zscore', '{"verbose": true}') IS NOT NULL});
like($err, qr/NOTICE:  model "v" \(zscore\): storing, 10 rows/, 'verbose notices');

# The neural kinds report every epoch, with its training loss.
($ret, $out, $err) = $node->psql('postgres', q{
	SELECT anomaly_train('nn_' || k, 'SELECT sin(i)::float8 AS a, cos(i)::float8 AS b FROM generate_series(1, 300) i',
	                     k, '{"verbose": true, "epochs": 3}') IS NOT NULL
	FROM unnest(ARRAY['autoencoder', 'vae', 'gan']) k});
for my $k (qw(autoencoder vae gan))
{
	like($err, qr/NOTICE:  model "nn_$k" \($k\): training epoch 1\/3, \d+ rows, loss [-0-9.e+]+\n.*training epoch 3\/3/s,
		"$k reports its epochs");
}

$locker->quit;
$node->stop;
done_testing();
