# PyTorch interoperability through safetensors (anomaly_import/anomaly_export).
#
# Models trained in PyTorch (Debian's python3-torch) and written by
# test/torch_io.py score in the database as PyTorch's forward pass scores
# them, to 1e-5 relative on every row: an autoencoder with per-layer
# activations (relu, linear bottleneck), a VAE with mu/logvar heads, a GAN
# generator with discriminator features, in F32, F64, BF16 and F16, and one
# file whose modules are named differently (the option names).  Models
# trained in the database, exported and rebuilt in PyTorch by the same
# helper, give PyTorch the database's scores, threshold and feature names.
#
# Skipped when no python3 can import torch.
use strict;
use warnings;

use File::Spec;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $python;
for my $p (grep { defined } ($ENV{PYTHON}, 'python3', '/usr/bin/python3'))
{
	if (system("$p -c 'import torch' >/dev/null 2>&1") == 0)
	{
		$python = $p;
		last;
	}
}
plan skip_all => 'no python3 with torch (Debian: python3-torch)' unless defined $python;

my $helper = File::Spec->rel2abs('test/torch_io.py');
my $csv = File::Spec->rel2abs('data/pima.csv');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $tolerance = 1e-5;

my $node = PostgreSQL::Test::Cluster->new('torch');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION anomaly');

# The same rows on both sides: the CSV's decimal text, parsed as float8 by
# PostgreSQL and as a Python float by the helper, then rounded to float32.
open(my $fh, '<', $csv) or die "cannot open $csv: $!";
my @lines = <$fh>;
close $fh;
shift @lines;
my @values;
for my $i (0 .. $#lines)
{
	chomp(my $l = $lines[$i]);
	my @f = split /,/, $l;
	pop @f;
	push @values, "($i, '{" . join(',', @f) . "}')";
}
$node->safe_psql('postgres',
	'CREATE TABLE pima (id int PRIMARY KEY, f float8[]); INSERT INTO pima VALUES ' . join(', ', @values));
my $nrows = scalar @lines;

sub python
{
	my @cmd = ($python, $helper, @_);
	my $out = `@cmd`;
	die "@cmd failed" if $? != 0;
	return $out;
}

# [float64 score, float32 PyTorch score] per row
sub read_scores
{
	my ($file) = @_;
	open(my $f, '<', $file) or die "cannot open $file: $!";
	my @s = map { [split ' '] } <$f>;
	close $f;
	return @s;
}

sub db_scores
{
	my ($model) = @_;
	return split /\n/, $node->safe_psql('postgres', "SELECT anomaly_score('$model', f) FROM pima ORDER BY id");
}

# Maximum relative differences of the database's scores to PyTorch's.
sub compare
{
	my ($what, $db, $ref) = @_;
	my ($max64, $max32) = (0, 0);

	is(scalar @$db, $nrows, "$what: every row scored");
	for my $i (0 .. $#$ref)
	{
		my ($r64, $r32) = @{ $ref->[$i] };
		my $e64 = abs($db->[$i] - $r64) / (abs($r64) > 1e-30 ? abs($r64) : 1e-30);
		my $e32 = abs($db->[$i] - $r32) / (abs($r32) > 1e-30 ? abs($r32) : 1e-30);
		$max64 = $e64 if $e64 > $max64;
		$max32 = $e32 if $e32 > $max32;
	}
	note sprintf('%s: max relative difference %.3g to the float64 forward pass, %.3g to PyTorch in float32',
		$what, $max64, $max32);
	ok($max64 < $tolerance, "$what: scores match the float64 forward pass to $tolerance relative (max " . sprintf('%.3g', $max64) . ')');
	ok($max32 < $tolerance, "$what: scores match PyTorch's float32 forward pass to $tolerance relative (max " . sprintf('%.3g', $max32) . ')');
}

# PyTorch -> database
for my $case (
	[ 'autoencoder', 'F32', 'torch_ae', '' ],
	[ 'vae', 'F64', 'torch_vae', '' ],
	[ 'gan', 'BF16', 'torch_gan', '' ],
	[ 'autoencoder', 'F16', 'torch_ae_renamed', 'rename' ])
{
	my ($kind, $dtype, $model, $rename) = @$case;
	my $file = "$tmp/$model.safetensors";
	my $scores = "$tmp/$model.scores";

	python('train', $kind, $csv, $file, $scores, '--epochs', '20', '--dtype', $dtype,
		$rename ? ('--rename') : ());
	my $opts = '{"query": "SELECT f FROM pima"'
	  . ($rename ? ', "names": {"model.enc": "encoder", "model.dec": "decoder"}' : '') . '}';
	my $summary = $node->safe_psql('postgres',
		"SELECT anomaly_import('$model', '$kind', pg_read_binary_file('$file'), '$opts')");
	like($summary, qr/"calibration_rows": $nrows/, "$model ($kind, $dtype): imported and calibrated");
	compare("$model ($kind, $dtype)", [ db_scores($model) ], [ read_scores($scores) ]);
}

# The feature names came from the file's metadata.
is($node->safe_psql('postgres', "SELECT feature_names FROM anomaly_models WHERE name = 'torch_vae'"),
	'{pregnant,glucose,pressure,triceps,insulin,mass,pedigree,age}', 'feature names from the file');

# database -> PyTorch
for my $kind ('autoencoder', 'vae', 'gan')
{
	my $model = "db_$kind";
	my $file = "$tmp/$model.safetensors";
	my $scores = "$tmp/$model.scores";

	$node->safe_psql('postgres',
		"SELECT anomaly_train('$model', 'SELECT f FROM pima', '$kind', '{\"epochs\": 10}')");
	my $hex = $node->safe_psql('postgres', "SELECT encode(anomaly_export('$model'), 'hex')");
	open(my $out, '>:raw', $file) or die "cannot write $file: $!";
	print $out pack('H*', $hex);
	close $out;
	my $info = decode_json(python('score', $file, $csv, $scores));
	compare("$model exported to PyTorch", [ db_scores($model) ], [ read_scores($scores) ]);
	my $threshold = $node->safe_psql('postgres', "SELECT threshold FROM anomaly_models WHERE name = '$model'");
	is($info->{threshold}, $threshold, "$model: PyTorch reads the threshold exactly");
	is($info->{quantiles}, 1001, "$model: PyTorch reads the score quantiles");
	is(join(',', @{ $info->{feature_names} }), 'f1,f2,f3,f4,f5,f6,f7,f8', "$model: PyTorch reads the feature names");
}

$node->stop;
done_testing();
