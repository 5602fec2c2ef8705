# Cancel and crash during training.  statement_timeout stops the training of
# every kind within about a second and leaves the old model intact; a backend
# killed with SIGKILL mid-training leaves the previous model intact and no
# half-written model after crash recovery.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION anomaly;
CREATE TABLE big AS
SELECT i AS id, ARRAY(SELECT sin(i * j + j)::real FROM generate_series(1, 32) j) AS f
FROM generate_series(1, 100000) i;
});

# options that make each kind's training run long
my %slow = (
	zscore      => undef,    # trains in milliseconds: covered by the crash test's slow query
	autoencoder => '{"epochs": 100000, "validation_fraction": 0}',
	vae         => '{"epochs": 100000, "validation_fraction": 0}',
	gan         => '{"epochs": 100000}',
	pca         => undef,
	iforest     => '{"n_trees": 10000}',
	knn         => '{"sample_size": 100000}',
	ensemble    => undef,
);

my @kinds = split /\n/, $node->safe_psql('postgres', 'SELECT kind FROM anomaly_kinds() ORDER BY 1');
for my $kind (@kinds)
{
	my $opts = $slow{$kind};
	next unless defined $opts;
	$node->safe_psql('postgres',
		"SELECT anomaly_train('c_$kind', 'SELECT f FROM big LIMIT 200', '$kind')");
	my $before = $node->safe_psql('postgres',
		"SELECT anomaly_score('c_$kind', f)::text FROM big WHERE id = 7");

	my $t0 = time();
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET statement_timeout = '1s'; SELECT anomaly_train('c_$kind', 'SELECT f FROM big', '$kind', '$opts')");
	my $elapsed = time() - $t0;
	like($err, qr/canceling statement due to statement timeout/, "$kind: training canceled");
	cmp_ok($elapsed, '<', 3.0, sprintf("$kind: canceled %.2f s after start (timeout 1 s)", $elapsed));
	is($node->safe_psql('postgres', "SELECT anomaly_score('c_$kind', f)::text FROM big WHERE id = 7"),
		$before, "$kind: old model intact after cancel");
}

# SIGKILL mid-training: the slow part here is the training query itself
$node->safe_psql('postgres', "SELECT anomaly_train('crash', 'SELECT f FROM big', 'zscore')");
my $before = $node->safe_psql('postgres', "SELECT anomaly_score('crash', f)::text FROM big WHERE id = 7");
my $weights = $node->safe_psql('postgres', "SELECT md5(string_agg(data::text, ',' ORDER BY tensor)) FROM anomaly_weights WHERE model = 'crash'");

my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-c',
	  "SELECT anomaly_train('crash', 'SELECT f FROM big, generate_series(1, 1000) g', 'zscore', '{\"max_rows\": 1000}')" ],
	'>', \$out, '2>', \$err);
my $pid;
for (1 .. 100)
{
	$pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT anomaly_train(''crash''%' AND state = 'active'");
	last if $pid;
	sleep(0.1);
}
ok(defined $pid && $pid =~ /^[1-9][0-9]*$/, 'training backend found') or diag("psql: $err");
BAIL_OUT('no training backend to kill') unless defined $pid && $pid =~ /^[1-9][0-9]*$/;
sleep(1);
kill 'KILL', $pid;
$h->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
is($node->safe_psql('postgres', "SELECT anomaly_score('crash', f)::text FROM big WHERE id = 7"),
	$before, 'previous model scores as before after crash recovery');
is($node->safe_psql('postgres', "SELECT md5(string_agg(data::text, ',' ORDER BY tensor)) FROM anomaly_weights WHERE model = 'crash'"),
	$weights, 'previous weights unchanged');
is($node->safe_psql('postgres', "SELECT count(*) FROM anomaly_weights w WHERE NOT EXISTS (SELECT 1 FROM anomaly_models m WHERE m.name = w.model)"),
	'0', 'no half-written model');

$node->stop;
done_testing();
