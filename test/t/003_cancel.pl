# Long training answers a cancel: pg_cancel_backend() stops anomaly_train()
# while it reads a huge query and, for every slow (neural) kind this build
# offers, while it trains; the session stays usable and no model is stored.
# The time from the cancel to the error is printed and must stay well under
# the bound below (the requirement is about a second; the bound is generous
# because machines running the tests are shared).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $bound = 10;    # seconds

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION anomaly');

my %kinds = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', 'SELECT kind FROM anomaly_kinds()');

my $s = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');

# Start "sql" in the background session, wait until it has run for "warmup"
# seconds, cancel it, and return the seconds the cancel took to land.
sub cancel_after
{
	my ($name, $sql, $warmup) = @_;

	$s->query_until(qr/started/, "\\echo started\n$sql;\n");
	$node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active' AND query LIKE '%anomaly_train%'",
		'1')
	  or die "$name: the training query did not start";
	sleep($warmup);

	my $active = $node->safe_psql('postgres',
		"SELECT state FROM pg_stat_activity WHERE pid = $pid");
	is($active, 'active', "$name: still running after $warmup s");

	my $t0 = time();
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$node->poll_query_until('postgres',
		"SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $pid")
	  or die "$name: the cancel did not land";
	my $latency = time() - $t0;
	diag(sprintf("%s: canceled in %.3f s", $name, $latency));
	cmp_ok($latency, '<', $bound, "$name: canceled within $bound s");

	# the session reports the cancel and is still usable
	my ($out) = $s->query('SELECT 42');
	like($s->{stderr}, qr/canceling statement due to user request/, "$name: the statement was canceled");
	$s->{stderr} = '';
	is($out, '42', "$name: the session still works");
	return $latency;
}

# reading: an endless training query (the reader samples max_rows of it)
cancel_after('zscore, reading',
	q{SELECT anomaly_train('c_read', 'SELECT random() AS a, random() AS b FROM generate_series(1, 2000000000)', 'zscore', '{"max_rows": 1000}')},
	1);

# training: every slow kind present in this build, on 100,000 rows x 32
# features read from a table (so the cancel lands in training, not reading),
# with many epochs
my @slow = grep { $kinds{$_} } qw(autoencoder vae gan);
if (@slow)
{
	$node->safe_psql('postgres', q{
		CREATE TABLE big AS
		SELECT ARRAY(SELECT sin(i * j) + 0.1 * j FROM generate_series(1, 32) AS j)::real[] AS x
		FROM generate_series(1, 100000) AS i});
}
foreach my $kind (@slow)
{
	# no early stopping for the autoencoder: it must still be training when canceled
	my $options = $kind eq 'autoencoder' ? '{"epochs": 500, "validation_fraction": 0}' : '{"epochs": 500}';
	cancel_after("$kind, training",
		qq{SELECT anomaly_train('c_$kind', 'SELECT x FROM big', '$kind', '$options')},
		3);
}

is($node->safe_psql('postgres', 'SELECT count(*) FROM anomaly_models'), '0', 'no canceled model was stored');

$s->quit;
$node->stop;
done_testing();
