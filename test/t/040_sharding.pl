# Scale-out with postgres_fdw (doc/scaling.md): a coordinator and two shard
# servers on loopback, a table list-partitioned across the shards as foreign
# partitions, a model trained once on the coordinator and copied to every
# shard with pg_dump.
#
# postgres_fdw ships only immutable expressions, and anomaly_score is STABLE
# (it reads the model tables), so a query that calls it on the coordinator
# fetches the features and scores them there, even with the extension listed
# in the server's "extensions" option.  Scoring runs on the shards when each
# shard exposes a view that scores its own rows: the coordinator's foreign
# partitions point at the view, and postgres_fdw pushes down filters on the
# view's columns, and whole aggregates (the extension's too, with
# "extensions 'anomaly'") per partition when grouped by the partition key.
#
# The test proves:
#   - the model copied with pg_dump is the same, bit for bit, on every server;
#     training on the coordinator over the sharded table gives the model a
#     single server trains on the same rows;
#   - per-row scores, flags and explanations through the shards equal a
#     single-server run on the same data, to the last bit; so do the counts
#     and the evaluation aggregates, pushed down per shard or computed on the
#     coordinator from scores made on the shards;
#   - where the work runs: EXPLAIN VERBOSE's Remote SQL; the shard's own plan
#     of that remote SQL (auto_explain) with anomaly_score in it; function call
#     counts (each row scored once, on its shard, never on the coordinator);
#   - remote queries run without parallel workers on the shard (postgres_fdw
#     reads through a cursor), while the same query run on the shard directly
#     is parallel;
#   - a shard that lacks the model fails the query with the shard's error
#     (42704), promptly, and the coordinator session stays usable;
#   - a versioned rollout: while the new model is being copied, queries keep
#     using the old version on every shard; after the switch, the new one
#     everywhere; replacing a model in place, a query in between mixes
#     versions across shards.
use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $csv = File::Spec->rel2abs(dirname(__FILE__) . '/../../data/breastw.csv');
my $tempdir = PostgreSQL::Test::Utils::tempdir;

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
my $shard1 = PostgreSQL::Test::Cluster->new('shard1');
my $shard2 = PostgreSQL::Test::Cluster->new('shard2');
my @shards = ($shard1, $shard2);
foreach my $node ($coord, @shards)
{
	$node->init;
	$node->append_conf('postgresql.conf', "track_functions = 'all'\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION anomaly');
}

# The shards: the rows, and one scoring view per model version.
sub create_scored_view
{
	my ($shard, $model) = @_;
	$shard->safe_psql('postgres', qq{
		CREATE VIEW events_scored_$model AS
		SELECT id, region, label,
		       anomaly_score('$model', features) AS score,
		       anomaly_is_anomaly('$model', features) AS is_anomaly,
		       anomaly_explain('$model', features) AS explanation
		FROM events;
	});
}

foreach my $shard (@shards)
{
	$shard->safe_psql('postgres', q{
		CREATE TABLE events (id int PRIMARY KEY, region text NOT NULL, features real[] NOT NULL,
		                     label boolean NOT NULL);
	});
	create_scored_view($shard, 'v1');
}

# The coordinator: the same data in a plain table (the single-server run),
# and the sharded tables: events (raw rows) and events_scored (the shards'
# scoring views), list-partitioned by region: eu on shard1, us on shard2.
my ($h1, $p1, $h2, $p2) = ($shard1->host, $shard1->port, $shard2->host, $shard2->port);
$coord->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$h1', port '$p1', dbname 'postgres', extensions 'anomaly', async_capable 'true');
	CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$h2', port '$p2', dbname 'postgres', extensions 'anomaly', async_capable 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER shard1;
	CREATE USER MAPPING FOR CURRENT_USER SERVER shard2;

	CREATE TABLE bw (c1 int, c2 int, c3 int, c4 int, c5 int, c6 int, c7 int, c8 int, c9 int, label int);
	COPY bw FROM '$csv' (FORMAT csv, HEADER true);
	CREATE TABLE events_local (id int PRIMARY KEY, region text NOT NULL, features real[] NOT NULL,
	                           label boolean NOT NULL);
	INSERT INTO events_local
	SELECT id, CASE WHEN id % 3 = 0 THEN 'us' ELSE 'eu' END, f, l
	FROM (SELECT row_number() OVER () AS id, ARRAY[c1, c2, c3, c4, c5, c6, c7, c8, c9]::real[] AS f,
	             label = 1 AS l
	      FROM bw) s;

	CREATE TABLE events (id int NOT NULL, region text NOT NULL, features real[] NOT NULL, label boolean NOT NULL)
		PARTITION BY LIST (region);
	CREATE FOREIGN TABLE events_eu PARTITION OF events FOR VALUES IN ('eu')
		SERVER shard1 OPTIONS (table_name 'events');
	CREATE FOREIGN TABLE events_us PARTITION OF events FOR VALUES IN ('us')
		SERVER shard2 OPTIONS (table_name 'events');
	INSERT INTO events SELECT * FROM events_local;

	CREATE TABLE events_scored (id int, region text, label boolean, score float8, is_anomaly boolean,
	                            explanation jsonb)
		PARTITION BY LIST (region);
	CREATE FOREIGN TABLE events_scored_eu PARTITION OF events_scored FOR VALUES IN ('eu')
		SERVER shard1 OPTIONS (table_name 'events_scored_v1');
	CREATE FOREIGN TABLE events_scored_us PARTITION OF events_scored FOR VALUES IN ('us')
		SERVER shard2 OPTIONS (table_name 'events_scored_v1');

	-- every server's models, to check that they agree (drift)
	CREATE SCHEMA shard1;
	CREATE SCHEMA shard2;
	IMPORT FOREIGN SCHEMA public LIMIT TO (anomaly_models) FROM SERVER shard1 INTO shard1;
	IMPORT FOREIGN SCHEMA public LIMIT TO (anomaly_models) FROM SERVER shard2 INTO shard2;
	CREATE VIEW model_versions AS
	SELECT name, trained_at, string_agg(server, ',' ORDER BY server) AS servers
	FROM (SELECT 'coordinator' AS server, name, trained_at FROM public.anomaly_models
	      UNION ALL SELECT 'shard1', name, trained_at FROM shard1.anomaly_models
	      UNION ALL SELECT 'shard2', name, trained_at FROM shard2.anomaly_models) s
	GROUP BY name, trained_at;
});
is($coord->safe_psql('postgres', 'SELECT region, count(*) FROM events GROUP BY 1 ORDER BY 1'),
	"eu|456\nus|227", 'rows routed to their shards through the coordinator');
is($shard2->safe_psql('postgres', 'SELECT count(*), min(region), max(region) FROM events'),
	'227|us|us', 'shard2 holds the us rows');

# Train once, on the coordinator.
$coord->safe_psql('postgres', q{SELECT anomaly_train('v1', 'SELECT features FROM events_local', 'zscore')});

# Copy the models to a shard: the supported way, a data-only dump of the two
# model tables, loaded in one transaction that first empties the shard's
# tables (so a model that exists already is replaced, not duplicated).
sub copy_models
{
	my ($shard, $what) = @_;
	my $file = "$tempdir/models.sql";
	$coord->command_ok(
		[ 'pg_dump', '--data-only', '-t', 'anomaly_models', '-t', 'anomaly_weights',
		  '-f', $file, '-d', $coord->connstr('postgres') ],
		"pg_dump of the model tables ($what)");
	$shard->command_ok(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
		  '-c', 'DELETE FROM anomaly_models', '-f', $file, '-d', $shard->connstr('postgres') ],
		'models loaded into ' . $shard->name . " ($what)");
}
copy_models($_, 'v1') foreach @shards;

# The models are the same everywhere, to the last bit.
my $fingerprint = q{
	SELECT m.name, m.kind, m.threshold, m.score_quantiles::text, m.trained_at, m.options,
	       string_agg(w.tensor || md5(w.data::text) || w.shape::text, ',' ORDER BY w.tensor COLLATE "C")
	FROM anomaly_models m JOIN anomaly_weights w ON w.model = m.name
	GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1};
my $coord_models = $coord->safe_psql('postgres', $fingerprint);
isnt($coord_models, '', 'the coordinator has the model');
is($_->safe_psql('postgres', $fingerprint), $coord_models, $_->name . ': same model, bit for bit')
	foreach @shards;
like($coord->safe_psql('postgres', 'SELECT servers FROM model_versions'),
	qr/^coordinator,shard1,shard2$/, 'model_versions: one version of v1, on every server');

# Training on the coordinator can read the sharded table itself: the rows
# come through the foreign partitions, and the model is the one a single
# server trains on the same rows in the same order.
my $trained = q{
	SELECT threshold, score_quantiles::text,
	       (SELECT string_agg(tensor || md5(data::text), ',' ORDER BY tensor COLLATE "C")
	        FROM anomaly_weights WHERE model = m.name)
	FROM anomaly_models m WHERE name = };
$coord->safe_psql('postgres', q{
	SELECT anomaly_train('t_sharded', 'SELECT features FROM events ORDER BY id', 'zscore');
	SELECT anomaly_train('t_single', 'SELECT features FROM events_local ORDER BY id', 'zscore');
});
my $t_sharded = $coord->safe_psql('postgres', "$trained 't_sharded'");
like($t_sharded, qr/scaler\./, 'a model trained over the shards');
is($t_sharded, $coord->safe_psql('postgres', "$trained 't_single'"),
	'training over the shards gives the single-server model, bit for bit');
$coord->safe_psql('postgres', q{SELECT anomaly_drop('t_sharded'), anomaly_drop('t_single')});

my $single = sub {
	my ($model) = @_;
	return qq{(SELECT id, region, label, anomaly_score('$model', features) AS score,
	                  anomaly_is_anomaly('$model', features) AS is_anomaly,
	                  anomaly_explain('$model', features) AS explanation
	           FROM events_local) AS e};
};

sub explain
{
	my ($query, $settings) = @_;
	return $coord->safe_psql('postgres',
		($settings // '') . "EXPLAIN (VERBOSE, COSTS OFF) $query");
}

sub remote_sql
{
	my ($plan) = @_;
	return join("\n", $plan =~ /Remote SQL: (.*)$/mg);
}

# Compare a query over the shards with the same query over the single-server
# table (FROM <t> is replaced); float8 output is the shortest exact text, so
# equal text is equal bits.
sub same_as_single
{
	my ($query, $name, %opt) = @_;
	my $settings = $opt{settings} // '';
	my $model = $opt{model} // 'v1';
	my $table = $opt{table} // 'events_scored';
	(my $reference = $query) =~ s/FROM \Q$table\E\b/'FROM ' . $single->($model)/e;
	my $got = $coord->safe_psql('postgres', $settings . $query);
	my $want = $coord->safe_psql('postgres', $settings . $reference);
	isnt($want, '', "$name: single-server answer is not empty");
	is($got, $want, "$name: sharded answer equals the single-server answer");
	return $got;
}

# --- per-row scores, flags and explanations, scored on the shards ---------
my $q = 'SELECT id, region, score, is_anomaly, explanation FROM events_scored';
my $plan = explain($q);
note("per-row plan:\n$plan");
like($plan, qr/^Append\n\s+->  Async Foreign Scan on public.events_scored_eu.*\n\s+->  Async Foreign Scan on public.events_scored_us/s,
	'per-row: both shards are read concurrently (async)');
is(remote_sql($plan), join("\n", ('SELECT id, region, score, is_anomaly, explanation FROM public.events_scored_v1') x 2),
	'per-row: the remote SQL reads the shard\'s scoring view');
unlike($plan, qr/anomaly_/, 'per-row: the coordinator calls no anomaly function');
# in order: each shard sorts, the coordinator merges (one shard at a time)
$q .= ' ORDER BY id';
$plan = explain($q);
like($plan, qr/^Merge Append\n/, 'per-row, ordered: the coordinator merges');
like(remote_sql($plan), qr/FROM public\.events_scored_v1 ORDER BY id ASC NULLS LAST$/m, '... the shards sort');
same_as_single($q, 'per-row scores, flags and explanations');

# filters on the score and the flag are pushed down: only anomalies travel
$q = 'SELECT id, score FROM events_scored WHERE is_anomaly AND score > 40 ORDER BY score DESC, id';
$plan = explain($q);
like(remote_sql($plan), qr/WHERE \(is_anomaly\) AND \(\(score > 40::double precision\)\)/,
	'WHERE on the flag and the score is pushed down');
my $top = same_as_single($q, 'anomalies above a score');
cmp_ok(scalar(split /\n/, $top), '>=', 5, 'some rows score above 40');

# --- aggregates pushed down whole, per shard --------------------------------
# Grouped by the partition key, with partitionwise aggregation on, each
# shard's aggregate is one remote query; the extension's aggregates ship
# because the server lists the extension.
my $pw = 'SET enable_partitionwise_aggregate = on; ';
$q = q{SELECT region, count(*), count(*) FILTER (WHERE is_anomaly), anomaly_roc_auc(score, label),
              anomaly_pr_auc(score, label), anomaly_confusion(is_anomaly, label)
       FROM events_scored GROUP BY region ORDER BY region};
$plan = explain($q, $pw);
note("grouped aggregate plan:\n$plan");
my $remote = remote_sql($plan);
is(scalar(() = $remote =~ /GROUP BY 1/g), 2, 'grouped aggregates: one pushed-down aggregate per shard');
like($remote, qr/^SELECT region, count\(\*\), count\(\*\) FILTER \(WHERE is_anomaly\), public\.anomaly_roc_auc\(score, label\), public\.anomaly_pr_auc\(score, label\), public\.anomaly_confusion\(is_anomaly, label\) FROM public\.events_scored_v1 GROUP BY 1$/m,
	'grouped aggregates: the remote SQL carries count FILTER and the extension\'s aggregates');
unlike($plan, qr/Partial|HashAggregate|GroupAggregate/, 'grouped aggregates: nothing aggregated on the coordinator');
same_as_single($q, 'per-shard counts and aggregates', settings => $pw);

# without "extensions 'anomaly'" the extension's aggregates stay on the coordinator
$plan = explain($q, q{BEGIN; ALTER SERVER shard1 OPTIONS (DROP extensions);
	ALTER SERVER shard2 OPTIONS (DROP extensions); } . $pw);    # (rolled back when psql exits)
unlike(remote_sql($plan), qr/anomaly_roc_auc|GROUP BY/,
	'without extensions \'anomaly\' on the server, the aggregates are not pushed down');
like($plan, qr/anomaly_roc_auc\(events_scored/, '... and run on the coordinator');

# --- aggregates over all shards: scored on the shards, aggregated here -----
# PostgreSQL 15's postgres_fdw cannot push down a partial aggregate, so an
# aggregate over the whole table collects the shards' scores and finishes on
# the coordinator.
$q = q{SELECT count(*) FILTER (WHERE is_anomaly), anomaly_roc_auc(score, label), anomaly_pr_auc(score, label),
              anomaly_precision_at_k(score, label, 20), anomaly_confusion(is_anomaly, label),
              anomaly_threshold(score, 0.05)
       FROM events_scored};
$plan = explain($q);
note("whole-table aggregate plan:\n$plan");
like($plan, qr/^Aggregate\n.*\n  ->  Append\n\s+->  Async Foreign Scan/s,
	'whole-table aggregates: one aggregate on the coordinator over concurrent shard scans');
is(remote_sql($plan), join("\n", ('SELECT label, score, is_anomaly FROM public.events_scored_v1') x 2),
	'whole-table aggregates: the shards send scores, flags and labels');
same_as_single($q, 'whole-table counts and aggregates');
same_as_single($q, 'whole-table counts and aggregates, partitionwise', settings => $pw);
same_as_single('SELECT count(*) FROM events_scored WHERE is_anomaly', 'count of anomalies');

# --- scoring called on the coordinator: not pushed down ---------------------
# anomaly_score is STABLE, so postgres_fdw evaluates it locally even with the
# extension listed: the features travel, and the coordinator needs the model.
$q = q{SELECT count(*) FILTER (WHERE anomaly_is_anomaly('v1', features)) FROM events};
$plan = explain($q);
note("scoring called on the coordinator:\n$plan");
is(remote_sql($plan), "SELECT features FROM public.events\nSELECT features FROM public.events",
	'anomaly_is_anomaly called in the coordinator\'s query is not shipped (STABLE)');
like($plan, qr/^Aggregate\n  Output: count\(\*\) FILTER \(WHERE anomaly_is_anomaly\('v1'::text, events\.features\)\)/,
	'... it runs in the coordinator\'s aggregate');
$plan = explain(q{SELECT id FROM events_eu WHERE anomaly_score('v1', features) > 40});
like($plan, qr/Filter: \(anomaly_score.*\n\s+Remote SQL: SELECT id, features FROM public\.events$/,
	'... nor is a WHERE clause on anomaly_score, on a single foreign table either');
is($coord->safe_psql('postgres', $q),
	$coord->safe_psql('postgres', 'SELECT count(*) FROM events_scored WHERE is_anomaly'),
	'scoring on the coordinator counts the same anomalies');

# --- where the scores are computed: function call counts --------------------
# Each row is scored exactly once, on its own shard, and never on the
# coordinator; the flag column, not selected, is not computed at all.
sub wait_idle
{
	my ($node) = @_;
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()})
	  or die 'backends did not exit on ' . $node->name;
}

sub calls
{
	my ($node, $fn) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = '$fn'");
}
# (earlier sessions, here and on the shards, must have written their counts)
wait_idle($_) foreach ($coord, @shards);
$_->safe_psql('postgres', 'SELECT pg_stat_reset()') foreach ($coord, @shards);
# (the session's own scoring of one row is the sign its counts were written)
$coord->safe_psql('postgres', q{
	SELECT anomaly_roc_auc(score, label) FROM events_scored;
	SELECT anomaly_score('v1', ARRAY[1, 1, 1, 1, 1, 1, 1, 1, 1]::real[]);
});
$coord->poll_query_until('postgres',
	q{SELECT sum(calls) >= 1 FROM pg_stat_user_functions WHERE funcname = 'anomaly_score'});
is(calls($coord, 'anomaly_score'), '1', 'the coordinator scored no shard row');
foreach my $s ([ $shard1, 456 ], [ $shard2, 227 ])
{
	my ($shard, $rows) = @$s;
	$shard->poll_query_until('postgres',
		"SELECT coalesce(sum(calls), 0) >= $rows FROM pg_stat_user_functions WHERE funcname = 'anomaly_score'");
	wait_idle($shard);
	is(calls($shard, 'anomaly_score'), $rows, $shard->name . ": each of its $rows rows scored once, there");
	is(calls($shard, 'anomaly_is_anomaly'), '0', $shard->name . ': the unused flag column was not computed');
}

# --- the shard's own plan of the remote query; no parallel workers ----------
# auto_explain on shard1 logs the plan of what postgres_fdw sends: a cursor,
# planned without parallelism, with anomaly_score inside.  The same SQL run on
# the shard directly gets a parallel plan.
$shard1->append_conf('postgresql.conf', q{
session_preload_libraries = 'auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_verbose = on
parallel_setup_cost = 0
parallel_tuple_cost = 0
min_parallel_table_scan_size = 0
max_parallel_workers_per_gather = 2
});
$shard1->reload;
my $offset = -s $shard1->logfile;
$coord->safe_psql('postgres', $pw . q{
	SELECT region, count(*) FILTER (WHERE is_anomaly), anomaly_roc_auc(score, label) FROM events_scored GROUP BY 1});
my $log = slurp_file($shard1->logfile, $offset);
my ($shard_plan) = $log =~ /(Query Text: DECLARE c\d+ CURSOR FOR.*?)(?:\n\S|\z)/s;
note("shard1's plan of the remote query:\n" . ($shard_plan // $log));
ok(defined $shard_plan, 'shard1 logged the plan of the remote cursor');
like($shard_plan // '', qr/public\.anomaly_roc_auc\(public\.anomaly_score\('v1'::text, events\.features\), events\.label\)/,
	'shard1 runs anomaly_score inside the pushed-down aggregate');
unlike($shard_plan // '', qr/Gather|Parallel/, 'the remote cursor runs without parallel workers');
like($shard1->safe_psql('postgres', q{EXPLAIN (COSTS OFF)
	SELECT region, count(*) FILTER (WHERE is_anomaly), anomaly_roc_auc(score, label) FROM events_scored_v1 GROUP BY 1}),
	qr/Gather.*Parallel Seq Scan on events/s, 'the same query run on the shard directly is parallel');
$shard1->append_conf('postgresql.conf', "session_preload_libraries = ''\n");
$shard1->reload;

# --- a versioned rollout, and a shard without the model ---------------------
# Train v2 on the coordinator, copy it to the shards one by one, then switch
# the coordinator's partitions to the v2 views in one transaction.
my $whole = q{SELECT count(*) FILTER (WHERE is_anomaly), anomaly_roc_auc(score, label) FROM events_scored};
my $v1_answer = $coord->safe_psql('postgres', $whole);
$coord->safe_psql('postgres', q{
	SELECT anomaly_train('v2', 'SELECT features FROM events_local', 'zscore',
	                     '{"robust": true, "contamination": 0.1}');
	CREATE TABLE events_scored_next (LIKE events_scored) PARTITION BY LIST (region);
	CREATE FOREIGN TABLE events_scored_next_eu PARTITION OF events_scored_next FOR VALUES IN ('eu')
		SERVER shard1 OPTIONS (table_name 'events_scored_v2');
	CREATE FOREIGN TABLE events_scored_next_us PARTITION OF events_scored_next FOR VALUES IN ('us')
		SERVER shard2 OPTIONS (table_name 'events_scored_v2');
});
create_scored_view($_, 'v2') foreach @shards;
copy_models($shard1, 'v2 on shard1 only');
is($coord->safe_psql('postgres', q{SELECT servers FROM model_versions WHERE name = 'v2'}),
	'coordinator,shard1', 'model_versions shows the shard that lacks v2');
is($coord->safe_psql('postgres', $whole), $v1_answer, 'mid-rollout: queries still use v1 on every shard');

my ($out, $err, $timed_out);
$coord->psql('postgres', qq{
	\\set VERBOSITY verbose
	SELECT count(*) FROM events_scored_next WHERE is_anomaly;
	SELECT count(*) FROM events_scored WHERE is_anomaly;
	}, stdout => \$out, stderr => \$err, on_error_stop => 0,
	timeout => $PostgreSQL::Test::Utils::timeout_default, timed_out => \$timed_out);
ok(!$timed_out, 'a shard without the model: the query returns (no hang)');
like($err, qr/ERROR:  42704: anomaly model "v2" does not exist/,
	'a shard without the model: the shard\'s error and SQLSTATE reach the client');
like($err, qr/CONTEXT:  remote SQL command: SELECT NULL FROM public\.events_scored_v2 WHERE \(is_anomaly\)/,
	'... with the remote SQL that failed');
like($out, qr/^\d+$/, 'the coordinator session stays usable after the remote error');

copy_models($shard2, 'v2 everywhere');
is($coord->safe_psql('postgres', q{SELECT servers FROM model_versions WHERE name = 'v2'}),
	'coordinator,shard1,shard2', 'model_versions: v2 on every server');
same_as_single($whole, 'v2 checked before the switch', model => 'v2', table => 'events_scored_next');
$coord->safe_psql('postgres', q{
	BEGIN;
	ALTER FOREIGN TABLE events_scored_eu OPTIONS (SET table_name 'events_scored_v2');
	ALTER FOREIGN TABLE events_scored_us OPTIONS (SET table_name 'events_scored_v2');
	COMMIT;
});
my $v2_answer = same_as_single($whole, 'after the switch, v2 on every shard', model => 'v2');
isnt($v2_answer, $v1_answer, 'v2 answers differently from v1');
same_as_single('SELECT id, score, is_anomaly FROM events_scored ORDER BY id', 'per-row scores under v2', model => 'v2');

# Replacing a model in place (same name) instead: until the copy reaches
# every shard, one query sees the new model on some shards and the old one on
# the others.
my $per_shard = 'SELECT region, count(*) FILTER (WHERE is_anomaly) FROM events_scored GROUP BY 1 ORDER BY 1';
my $old = $coord->safe_psql('postgres', $per_shard);
$coord->safe_psql('postgres', q{
	SELECT anomaly_train('v2', 'SELECT features FROM events_local', 'zscore',
	                     '{"robust": true, "contamination": 0.2}')});
my $new = $coord->safe_psql('postgres', $per_shard =~ s/FROM events_scored/'FROM ' . $single->('v2')/er);
my ($old_eu, $old_us) = split /\n/, $old;
my ($new_eu, $new_us) = split /\n/, $new;
isnt($new_eu, $old_eu, 'the retrained v2 flags other rows');
copy_models($shard1, 'retrained v2 on shard1 only');
is($coord->safe_psql('postgres', $per_shard), "$new_eu\n$old_us",
	'in-place replacement, mid-copy: new model on shard1, old on shard2 in one query');
copy_models($shard2, 'retrained v2 everywhere');
is($coord->safe_psql('postgres', $per_shard), "$new_eu\n$new_us", 'in-place replacement, done: new everywhere');

# --- every kind, through one view for all models ------------------------------
# A view joining the rows with anomaly_models scores under any model; the
# coordinator's WHERE model = ... is pushed down.  (A model missing on a shard
# gives no rows there instead of an error: compare counts.)
my @kinds = split /\n/, $coord->safe_psql('postgres', 'SELECT kind FROM anomaly_kinds() ORDER BY kind');
$coord->safe_psql('postgres', "SELECT anomaly_train('m_$_', 'SELECT features FROM events_local', '$_')")
	foreach @kinds;
copy_models($_, 'every kind') foreach @shards;
foreach my $shard (@shards)
{
	$shard->safe_psql('postgres', q{
		CREATE VIEW events_scored_all AS
		SELECT m.name AS model, e.id, e.region, anomaly_score(m.name, e.features) AS score
		FROM anomaly_models m CROSS JOIN events e;
	});
}
$coord->safe_psql('postgres', q{
	CREATE TABLE events_scored_all (model text, id int, region text, score float8) PARTITION BY LIST (region);
	CREATE FOREIGN TABLE events_scored_all_eu PARTITION OF events_scored_all FOR VALUES IN ('eu')
		SERVER shard1 OPTIONS (table_name 'events_scored_all');
	CREATE FOREIGN TABLE events_scored_all_us PARTITION OF events_scored_all FOR VALUES IN ('us')
		SERVER shard2 OPTIONS (table_name 'events_scored_all');
});
like(remote_sql(explain(q{SELECT id, score FROM events_scored_all WHERE model = 'm_zscore'})),
	qr/WHERE \(\(model = 'm_zscore'\)\)/, 'one view for all models: the model filter is pushed down');
my $all = q{SELECT model, count(*), string_agg(score::text, ',' ORDER BY id)
            FROM events_scored_all WHERE model LIKE 'm\_%' GROUP BY model ORDER BY model};
my $all_single = q{SELECT m.name, count(*), string_agg(anomaly_score(m.name, e.features)::text, ',' ORDER BY e.id)
                   FROM anomaly_models m CROSS JOIN events_local e WHERE m.name LIKE 'm\_%'
                   GROUP BY m.name ORDER BY m.name};
my $got = $coord->safe_psql('postgres', $all);
is(scalar(split /\n/, $got), scalar(@kinds), 'every kind scored on the shards: ' . join(', ', @kinds));
is($got, $coord->safe_psql('postgres', $all_single), 'every kind: per-row scores equal the single-server run');

$_->stop foreach ($coord, @shards);
done_testing();
