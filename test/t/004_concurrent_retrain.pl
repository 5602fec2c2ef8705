# Several clients score continuously while another session retrains, drops
# and recreates the same model in a loop.  Every score must be one that the
# old or the new model gives (never a mixture), the only error allowed is a
# clean "does not exist" during the drop window, and nothing stays locked.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('concurrent');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION anomaly;
CREATE TABLE d1 AS SELECT sin(i) AS a, cos(i) AS b, sin(3 * i) AS c FROM generate_series(1, 500) i;
CREATE TABLE d2 AS SELECT 2 * sin(i) + 1 AS a, cos(i) - 3 AS b, sin(5 * i) AS c FROM generate_series(1, 500) i;
CREATE TABLE seen (score float8, missing boolean);
CREATE FUNCTION probe() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen VALUES (anomaly_score('m', ARRAY[0.3, -0.2, 0.9]), false);
EXCEPTION WHEN undefined_object THEN
    INSERT INTO seen VALUES (NULL, true);
END $$;
});

# the two models' scores of the probe row
my %expected;
for my $d ('d1', 'd2')
{
	$node->safe_psql('postgres', "SELECT anomaly_train('m', 'SELECT a, b, c FROM $d', 'zscore')");
	my $s = $node->safe_psql('postgres', "SELECT anomaly_score('m', ARRAY[0.3, -0.2, 0.9])::text");
	$expected{$s} = $d;
}
is(scalar(keys %expected), 2, 'the two models give different scores');

my $script = $node->basedir . '/probe.sql';
PostgreSQL::Test::Utils::append_to_file($script, "SELECT probe();\n");
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-T', '6', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# retrain, drop and recreate while the clients score
my $rounds = 0;
my $deadline = time() + 5;
while (time() < $deadline)
{
	my $d = ($rounds % 2) ? 'd2' : 'd1';
	$node->safe_psql('postgres', "SELECT anomaly_train('m', 'SELECT a, b, c FROM $d', 'zscore')");
	if ($rounds % 3 == 0)
	{
		$node->safe_psql('postgres', "SELECT anomaly_drop('m')");
		$node->safe_psql('postgres', "SELECT anomaly_train('m', 'SELECT a, b, c FROM $d', 'zscore')");
	}
	$rounds++;
}
ok($pgbench->finish, 'pgbench clients finished without error') or diag($err);
like($out, qr/number of failed transactions: 0/, 'no failed transactions');
cmp_ok($rounds, '>=', 2, "retrained $rounds times while scoring");

my $total = $node->safe_psql('postgres', 'SELECT count(*) FROM seen');
cmp_ok($total, '>', 100, "$total scores taken");
my $bad = $node->safe_psql('postgres',
	"SELECT count(*) FROM seen WHERE NOT missing AND score::text NOT IN ('" . join("','", keys %expected) . "')");
is($bad, '0', 'every score is one the old or the new model gives');
my $kinds = $node->safe_psql('postgres',
	"SELECT count(DISTINCT score) FROM seen WHERE NOT missing");
cmp_ok($kinds, '>=', 1, "scores seen from $kinds model versions");

my $locks = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname LIKE 'anomaly%' AND l.pid <> pg_backend_pid()");
is($locks, '0', 'nothing left locked on the model catalog');

$node->stop;
done_testing();
