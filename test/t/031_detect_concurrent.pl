
# anomaly_detect() under concurrency:
#  1. two runs at once for the same (model, source): the second waits for the
#     first's watermark lock and writes no duplicate alerts;
#  2. a row whose transaction commits after a later row was committed (a
#     late-committing row) is still scored: the run waits for the writer;
#     with wait_for_writers => false it is passed by the watermark (the
#     documented failure mode the wait prevents);
#  3. a pgbench mix of writers (some in multi-statement transactions) and
#     detection runs: every row is scored exactly once and every anomalous
#     row gives exactly one alert.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('detect');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION anomaly;
	CREATE TABLE pay (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	                  amount float8 NOT NULL, n_items int NOT NULL);
	INSERT INTO pay (amount, n_items)
	SELECT 20 + 10 * sin(i), 1 + i % 5 FROM generate_series(1, 200) i;
	SELECT anomaly_train('pay', 'SELECT amount, n_items FROM pay', 'zscore');
	-- alerts without a unique key, so that a duplicate would show
	CREATE TABLE plain_alerts (model text, source regclass, key bigint, score float8,
	                           threshold float8, explanation jsonb, detected_at timestamptz);
	SELECT anomaly_detect('pay', 'pay', 'id', alerts => 'plain_alerts', threshold => 10);
});

# One detection run, printing "rows scored/alerts written".
sub detect_sql
{
	my ($extra) = @_;
	$extra = defined $extra ? ", $extra" : '';
	return qq{SELECT rows_scored || '/' || alerts_written
		FROM anomaly_detect('pay', 'pay', 'id', alerts => 'plain_alerts', threshold => 10$extra)};
}
my $detect = detect_sql();

# Wait until the backend running a query that matches $like waits on $event.
sub wait_for_wait_event
{
	my ($like, $event) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) > 0 FROM pg_stat_activity
		WHERE query LIKE '$like' AND wait_event_type = 'Lock' AND wait_event = '$event'})
	  or die "timed out waiting for $event";
}

# 1. Two runs at once.
$node->safe_psql('postgres', q{
	INSERT INTO pay (amount, n_items)
	SELECT CASE WHEN i % 10 = 0 THEN 900 ELSE 20 END, 2 FROM generate_series(1, 50) i});

my $s1 = $node->background_psql('postgres');
my $s2 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
is($s1->query_safe($detect), '50/5', 'first run scores the new rows');
$s2->query_until(qr/started/, "\\echo started\n$detect;\n");
wait_for_wait_event('%anomaly_detect%', 'transactionid');
pass('second run waits for the watermark lock');
$s1->query_safe('COMMIT');
is($s2->query_safe('SELECT 1'), "0/0\n1", 'second run finds nothing left');
is($node->safe_psql('postgres', q{
	SELECT count(*) || '/' || count(DISTINCT key) FROM plain_alerts}),
	'5/5', 'no duplicate alerts');

# 2. A late-committing row.
sub late_commit
{
	my ($wait) = @_;
	my $w = $node->background_psql('postgres');
	my $d = $node->background_psql('postgres');
	$w->query_safe('BEGIN');
	my $late = $w->query_safe(q{INSERT INTO pay (amount, n_items) VALUES (900, 2) RETURNING id});
	my $early = $node->safe_psql('postgres',
		q{INSERT INTO pay (amount, n_items) VALUES (900, 3) RETURNING id});
	ok($early > $late, "the committed row has the larger key ($early > $late)");
	my $call = $wait ? $detect : detect_sql('wait_for_writers => false');
	if ($wait)
	{
		$d->query_until(qr/started/, "\\echo started\n$detect;\n");
		wait_for_wait_event('%anomaly_detect%', 'virtualxid');
		pass('the run waits for the open writer');
		$w->query_safe('COMMIT');
		is($d->query_safe('SELECT 1'), "2/2\n1", 'both rows are scored');
	}
	else
	{
		is($d->query_safe($call), '1/1', 'without the wait only the committed row is scored');
		$w->query_safe('COMMIT');
		is($d->query_safe($call), '0/0', 'and the late row is passed by the watermark');
	}
	$w->quit;
	$d->quit;
	return ($late, $early);
}

my ($late, $early) = late_commit(1);
is($node->safe_psql('postgres',
		"SELECT count(*) FROM plain_alerts WHERE key IN ($late, $early)"),
	'2', 'both rows alerted');
($late, $early) = late_commit(0);
is($node->safe_psql('postgres',
		"SELECT string_agg(key::text, ',') FROM plain_alerts WHERE key IN ($late, $early)"),
	"$early", 'without the wait the late row is missed');
# score the missed row by hand so that the totals below add up
$node->safe_psql('postgres', qq{
	INSERT INTO plain_alerts
	SELECT 'pay', 'pay', p.id, anomaly_score('pay', p), 10, anomaly_explain('pay', p), now()
	FROM pay p WHERE p.id = $late;
	UPDATE anomaly_watermarks SET rows_scored = rows_scored + 1, alerts = alerts + 1});

# 3. Writers and detection runs at once.
$node->pgbench(
	'-n -c 4 -j 2 -t 30',
	0,
	[qr{processed: 120/120}],
	[qr{^$}],
	'pgbench mix of writers and detection runs',
	{
		'031_writer@3' => q{
			\set a random(1, 10)
			BEGIN;
			INSERT INTO pay (amount, n_items) SELECT CASE WHEN :a = 1 THEN 900 ELSE 20 END, 2;
			SELECT pg_sleep(0.002 * :a);
			INSERT INTO pay (amount, n_items) SELECT 20, CASE WHEN :a = 2 THEN 90 ELSE 3 END;
			COMMIT;
		},
		'031_detect@1' => q{
			SELECT * FROM anomaly_detect('pay', 'pay', 'id', alerts => 'plain_alerts', threshold => 10);
		}
	});
$node->safe_psql('postgres', $detect);

is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM pay) = w.rows_scored
		FROM anomaly_watermarks w WHERE w.model = 'pay'}),
	't', 'every row scored exactly once');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT key FROM plain_alerts GROUP BY key HAVING count(*) > 1) d}),
	'0', 'no duplicate alerts');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM pay p
		WHERE p.id > 200 AND (p.amount = 900 OR p.n_items = 90)
		  AND NOT EXISTS (SELECT FROM plain_alerts a WHERE a.key = p.id)}),
	'0', 'every anomalous row alerted');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM plain_alerts a JOIN pay p ON p.id = a.key
		WHERE NOT (p.amount = 900 OR p.n_items = 90)}),
	'0', 'and only those');

$s1->quit;
$s2->quit;
$node->stop;
done_testing();
