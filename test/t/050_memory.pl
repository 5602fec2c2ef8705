# Memory stays flat: scoring millions of rows and training again and again in
# one session do not make the backend grow with the work done.
#
# Scoring.  For every kind that anomaly_kinds() lists, one session runs each
# scoring entry point (anomaly_score with a named model and with
# anomaly.model, anomaly_is_anomaly with and without a rate, row input,
# anomaly_explain) over N rows and then over 3N rows, made on the fly with
# generate_series in the target list (streamed, nothing stored).  The
# backend's private memory (RssAnon of /proc/self/status) is sampled inside
# the query ten times per N rows; the peak of the 3N run may exceed the peak
# of the N run by at most $limit_kb.  N is 1,000,000 for fast entry points and
# is lowered for slow ones (a timed run of 20,000 rows picks N so that N rows
# take about $budget s), but never below $min_rows: a leak of even 16 bytes a
# row (the smallest palloc chunk is 24) then adds more than the limit.  A
# control query (array_agg, which does grow with the rows) shows that the
# measurement sees growth when there is some.
#
# Training.  Each kind trains 20 times in one session (scoring after each
# training, which reloads the model); RssAnon after round 20 may exceed
# RssAnon after round 5 by at most $limit_kb.  A session that trains, scores
# and drops a differently named wide model 20 times must stay flat too (it
# used to keep every stale decoded model in its cache).
#
# ANOMALY_MEMORY_ROWS sets the largest N (default 1,000,000),
# ANOMALY_MEMORY_SECONDS the time budget of N rows (default 1.0).  The numbers
# are printed with diag().
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# ASan's quarantine holds freed memory back on purpose (test/asan.sh, ASAN_TAP=1)
plan skip_all => 'memory is not measured under AddressSanitizer'
  if ($ENV{LD_PRELOAD} // '') =~ /asan/;

my $n = $ENV{ANOMALY_MEMORY_ROWS} // 1_000_000;
my $budget = $ENV{ANOMALY_MEMORY_SECONDS} // 1.0;
my $min_rows = 100_000;
my $limit_kb = 3 * 1024;

my $node = PostgreSQL::Test::Cluster->new('memory');
$node->init;
# JIT would load LLVM (some 10 MB) the first time a query is costly enough
$node->append_conf('postgresql.conf', 'jit = off');
$node->start;

# anon_kb(): this backend's private resident memory in kB
$node->safe_psql('postgres', q{
CREATE EXTENSION anomaly;
CREATE FUNCTION anon_kb() RETURNS bigint LANGUAGE sql AS
    $$ SELECT substring(pg_read_file('/proc/self/status') FROM 'RssAnon:\s*(\d+)')::bigint $$;
CREATE TABLE mem_train AS
    SELECT sin(i) AS a, cos(i) AS b, sin(2 * i) AS c, cos(3 * i) AS d FROM generate_series(1, 500) i;
CREATE TABLE mem_wide AS
    SELECT array_agg(sin(i * j)::real ORDER BY j) AS f
    FROM generate_series(1, 30) i, generate_series(1, 16384) j GROUP BY i;
});

my @kinds = split /\n/, $node->safe_psql('postgres', 'SELECT kind FROM anomaly_kinds() ORDER BY kind');
ok(scalar(@kinds) > 0, 'the build offers kinds: ' . join(', ', @kinds));

# Options that keep training short: few epochs where the kind has epochs.
sub fast_options
{
	my ($kind) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT anomaly_train('probe', 'SELECT a, b, c, d FROM mem_train', '$kind', '{\"epochs\": 2}')");
	return '{"epochs": 2}' if $ret == 0;
	return '{}' if $err =~ /unrecognized option "epochs"/;
	die "training $kind failed: $err";
}

# The peak RssAnon (kB) sampled while "expr" is aggregated over the rows
# 1..rows ("i", and the features as the array "f" and the columns a..d).
sub peak_kb
{
	my ($s, $expr, $rows) = @_;
	my $every = int($rows / 10);
	my ($peak) = split /\|/, $s->query_safe(qq{
SELECT max(CASE WHEN i % $every = 0 THEN anon_kb() END) AS peak, $expr AS result
FROM (SELECT i, ARRAY[a, b, c, d] AS f, a, b, c, d
      FROM (SELECT i, sin(i) AS a, cos(i) AS b, sin(2 * i) AS c, cos(3 * i) AS d
            FROM (SELECT generate_series(1, $rows) AS i) g) x) s});
	return $peak;
}

# Run "expr" over N and 3N rows; the peak must not grow with the rows.
sub check_flat
{
	my ($s, $label, $expr, $rows, $expect_growth) = @_;

	if (!defined $rows)
	{
		my $t0 = time();
		peak_kb($s, $expr, 20_000);
		my $per_row = (time() - $t0) / 20_000;
		$rows = $per_row > 0 ? int($budget / $per_row / 10_000) * 10_000 : $n;
		$rows = $n if $rows > $n;
		$rows = $min_rows if $rows < $min_rows;
	}
	my $p1 = peak_kb($s, $expr, $rows);
	my $p2 = peak_kb($s, $expr, 3 * $rows);
	my $growth = $p2 - $p1;
	diag(sprintf("%-34s peak RssAnon %7d kB at %d rows, %7d kB at %d rows: %+d kB",
			$label, $p1, $rows, $p2, 3 * $rows, $growth));
	if ($expect_growth)
	{
		cmp_ok($growth, '>', $limit_kb, "$label: the measurement sees a growing query");
	}
	else
	{
		cmp_ok($growth, '<', $limit_kb, "$label: memory flat from $rows to " . 3 * $rows . ' rows');
	}
	return;
}

# control: array_agg keeps every row
{
	my $s = $node->background_psql('postgres');
	check_flat($s, 'control (array_agg)', 'cardinality(array_agg(i))', $n, 1);
	$s->quit;
}

for my $kind (@kinds)
{
	my $opts = fast_options($kind);
	$node->safe_psql('postgres',
		"SELECT anomaly_train('m_$kind', 'SELECT a, b, c, d FROM mem_train', '$kind', '$opts')");

	# a fresh backend per kind
	my $s = $node->background_psql('postgres');
	$s->query_safe("SET anomaly.model = 'm_$kind'");
	$s->query_safe("SELECT anomaly_score('m_$kind', ARRAY[1, 2, 3, 4]::float8[])");
	check_flat($s, "$kind: anomaly_score", "sum(anomaly_score('m_$kind', f) + anomaly_score(f::real[]))");
	check_flat($s, "$kind: anomaly_is_anomaly",
		"count(*) FILTER (WHERE anomaly_is_anomaly('m_$kind', f) OR anomaly_is_anomaly('m_$kind', f, 0.01))");
	check_flat($s, "$kind: row input",
		"sum(anomaly_score('m_$kind', s)) + count(*) FILTER (WHERE anomaly_is_anomaly('m_$kind', s))");
	check_flat($s, "$kind: anomaly_explain", "sum((anomaly_explain('m_$kind', f)->>'score')::float8)");

	# train 20 times in this session, scoring after each (a reload)
	my %anon;
	for my $round (1 .. 20)
	{
		$s->query_safe(
			"SELECT anomaly_train('t_$kind', 'SELECT a, b, c, d FROM mem_train', '$kind', '$opts') IS NOT NULL");
		$s->query_safe("SELECT anomaly_score('t_$kind', ARRAY[0.1, 0.2, 0.3, 0.4]::float8[])");
		$anon{$round} = $s->query_safe('SELECT anon_kb()') if $round == 5 || $round == 20;
	}
	my $growth = $anon{20} - $anon{5};
	diag(sprintf("%-34s RssAnon %7d kB after 5 trainings, %7d kB after 20: %+d kB",
			"$kind: training", $anon{5}, $anon{20}, $growth));
	cmp_ok($growth, '<', $limit_kb, "$kind: memory flat over 20 trainings in one session");
	$s->quit;
}

# a new wide model every round, scored and dropped: stale models are freed
{
	my $s = $node->background_psql('postgres');
	my $kind = (grep { $_ eq 'zscore' } @kinds) ? 'zscore' : $kinds[0];
	my %anon;
	for my $round (1 .. 20)
	{
		$s->query_safe("SELECT anomaly_train('rot_$round', 'SELECT f FROM mem_wide', '$kind', '{}') IS NOT NULL");
		$s->query_safe("SELECT anomaly_score('rot_$round', (SELECT f FROM mem_wide LIMIT 1))");
		$s->query_safe("SELECT anomaly_drop('rot_$round')");
		$anon{$round} = $s->query_safe('SELECT anon_kb()') if $round == 5 || $round == 20;
	}
	my $growth = $anon{20} - $anon{5};
	diag(sprintf("%-34s RssAnon %7d kB after 5 rounds, %7d kB after 20: %+d kB",
			"16384-feature models, dropped", $anon{5}, $anon{20}, $growth));
	cmp_ok($growth, '<', $limit_kb, 'memory flat over 20 wide models trained, scored and dropped');
	$s->quit;
}

$node->stop;
done_testing();
