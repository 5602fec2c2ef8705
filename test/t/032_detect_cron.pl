
# anomaly_detect() scheduled with pg_cron: the job runs on its own, alerts
# appear for the anomalous rows inserted between runs, and no row is alerted
# twice.  Needs pg_cron (Debian: postgresql-15-cron); skipped without it.
#
# pg_cron 1.5 and later accept schedules in seconds ('5 seconds'); older
# versions (Debian bookworm ships 1.4) run jobs at most once a minute, so the
# test takes about two minutes there.  Waits are bounded by poll_query_until
# (timeout_default, 180 s by default).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;

my $pkglibdir = $node->config_data('--pkglibdir');
plan skip_all => "pg_cron is not installed in $pkglibdir"
  unless -e "$pkglibdir/pg_cron.so";

$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE EXTENSION anomaly;
	CREATE TABLE pay (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	                  amount float8 NOT NULL, n_items int NOT NULL);
	INSERT INTO pay (amount, n_items)
	SELECT 20 + 10 * sin(i), 1 + i % 5 FROM generate_series(1, 200) i;
	SELECT anomaly_train('pay', 'SELECT amount, n_items FROM pay', 'zscore');
	-- alerts without a unique key, so that a duplicate would show
	CREATE TABLE cron_alerts (model text, source regclass, key bigint, score float8,
	                          threshold float8, explanation jsonb, detected_at timestamptz);
	-- start from the current end of the table
	INSERT INTO anomaly_watermarks (model, source, key_column, last_key)
	VALUES ('pay', 'pay', 'id', to_jsonb(200));
});

# Schedule the job: every 5 seconds where pg_cron supports it, else every minute.
my $command = q{SELECT anomaly_detect('pay', 'pay', 'id', alerts => 'cron_alerts', threshold => 10)};
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT cron.schedule('anomaly-detect', '5 seconds', \$\$$command\$\$)");
if ($ret != 0)
{
	note "pg_cron has no schedules in seconds ($err); scheduling every minute";
	$node->safe_psql('postgres',
		"SELECT cron.schedule('anomaly-detect', '* * * * *', \$\$$command\$\$)");
}
pass('detection job scheduled');

# Anomalous rows arrive; the job finds them.
$node->safe_psql('postgres', q{
	INSERT INTO pay (amount, n_items) VALUES (21, 2), (900, 3), (19, 4), (20, 60), (22, 1)});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM cron_alerts', '2'),
	'first alerts appear');

# More rows after the first run; the next run alerts only the new ones.
$node->safe_psql('postgres', q{
	INSERT INTO pay (amount, n_items) SELECT 20, 2 FROM generate_series(1, 20);
	INSERT INTO pay (amount, n_items) VALUES (-500, 2)});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM cron_alerts', '3'),
	'later alerts appear');

is( $node->safe_psql('postgres', q{
		SELECT string_agg(key::text, ',' ORDER BY key) FROM cron_alerts}),
	'202,204,226', 'the anomalous rows are alerted');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT key FROM cron_alerts GROUP BY key HAVING count(*) > 1) d}),
	'0', 'no duplicate alerts');
is( $node->safe_psql('postgres', q{
		SELECT rows_scored = (SELECT count(*) - 200 FROM pay) AND runs >= 2
		FROM anomaly_watermarks WHERE model = 'pay'}),
	't', 'every new row scored once, over several runs');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
		WHERE j.jobname = 'anomaly-detect' AND d.status = 'failed'}),
	'0', 'no failed job runs');

$node->safe_psql('postgres', q{SELECT cron.unschedule('anomaly-detect')});
$node->stop;
done_testing();
