/*
 * train.c
 *	  anomaly_train(): read the training query, standardize, train a kind,
 *	  set the threshold, and store the model; anomaly_drop().
 *
 * Reading.  The caller's query runs through an SPI cursor, fetched in
 * batches of TRAIN_BATCH rows, so SPI never holds the whole result.  Rows go
 * into one float matrix in a dedicated memory context; once max_rows rows are
 * held, reservoir sampling (Vitter's algorithm R, seeded) keeps a uniform
 * sample, so training memory is bounded by max_rows x features whatever the
 * table's size.  The query yields either one numeric array column or several
 * numeric/boolean columns, whose names become the feature names.
 *
 * Training.  Features are standardized with the training mean and standard
 * deviation (population, like scikit-learn's StandardScaler); the scaler is
 * stored as the tensors scaler.center and scaler.scale, so every kind works in
 * the standardized space.  The kind trains, then the model is completed
 * exactly as a loaded one would be (AnomalyModelFinish) and the training rows
 * are scored through the same code that scores queries, so the stored
 * threshold and quantiles are consistent with anomaly_score().  The threshold
 * is the 1 - contamination quantile of those scores, or with the option
 * threshold: 'pot' the peaks-over-threshold (SPOT) fit of their tail at the
 * option risk (metrics.c).
 *
 * Storing replaces the model in the caller's transaction (catalog.c): other
 * sessions see the old model until commit, then the new one.  The same
 * transaction appends the run to the training history (anomaly_training_runs).
 *
 * Progress.  The run reports its phases (reading, training, scoring,
 * storing) through progress.c: NOTICE lines with the option verbose (DEBUG1
 * otherwise), and the anomaly_progress view when the library is preloaded.
 * Kinds report their epochs the same way.  The run's slot is released however
 * anomaly_train() ends (PG_TRY in the SQL-callable wrapper).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog.h"
#include "catalog/pg_type.h"
#include "convert.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "metrics.h"
#include "model.h"
#include "options.h"
#include "progress.h"
#include "train.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define TRAIN_BATCH 1000

typedef struct TrainReader
{
	const char *model;
	bool		array_input;	/* one array column */
	int			ncols;
	AnomalyColumnKind *cols;			/* per column (or the array's element) */
	int			d;				/* features, -1 until known */
	char	  **names;
	int64		max_rows;
	int64		rows_seen;
	int			n;				/* rows held */
	int			cap;
	float	   *X;
	float	   *row;			/* one converted row */
	MemoryContext rowcxt;		/* reset after each row */
	pg_prng_state rng;
	MemoryContext cxt;
} TrainReader;

static void
StoreValue(TrainReader *r, int j, double v)
{
	float		f = (float) v;

	if (isnan(v) || isinf(v))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training row " INT64_FORMAT " has a non-finite value in feature \"%s\"",
						r->rows_seen + 1, r->names[j]),
				 errhint("Filter or replace NaN and infinite values in the training query.")));
	if (isinf(f))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("training row " INT64_FORMAT " has a value out of range for type real in feature \"%s\"",
						r->rows_seen + 1, r->names[j]),
				 errhint("Rescale the feature in the training query; models compute in single precision.")));
	r->row[j] = f;
}

static void
NullFeature(TrainReader *r, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("training row " INT64_FORMAT " has a NULL in feature \"%s\"", r->rows_seen + 1, name),
			 errhint("Filter NULLs in the training query (WHERE ... IS NOT NULL) or replace them with COALESCE.")));
}

/*
 * Inspect the result's columns (before the first row).
 */
static void
ReaderInitColumns(TrainReader *r, TupleDesc desc)
{
	int			natts = 0;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			natts++;
	if (natts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("training query returns no columns")));

	r->ncols = desc->natts;
	r->cols = palloc0(desc->natts * sizeof(AnomalyColumnKind));
	r->d = -1;
	if (natts == 1 && type_is_array(TupleDescAttr(desc, 0)->atttypid))
	{
		Oid			elem = get_element_type(getBaseType(TupleDescAttr(desc, 0)->atttypid));

		r->array_input = true;
		if (!AnomalyClassifyType(elem, &r->cols[0]) || r->cols[0] == COL_BOOL)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("training query column \"%s\" is an array of %s",
							NameStr(TupleDescAttr(desc, 0)->attname), format_type_be(elem)),
					 errhint("Return an array of real, double precision, numeric or integer values.")));
	}
	else
	{
		r->array_input = false;
		r->d = natts;
		r->names = palloc(natts * sizeof(char *));
		for (int i = 0, j = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped)
				continue;
			if (!AnomalyClassifyType(att->atttypid, &r->cols[i]))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("training query column \"%s\" has type %s, which is not a number",
								NameStr(att->attname), format_type_be(att->atttypid)),
						 errhint("Return numeric or boolean columns, or one array column; cast or encode other types in the query.")));
			r->names[j++] = pstrdup(NameStr(att->attname));
		}
		if (natts > ANOMALY_MAX_FEATURES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("training query returns %d columns, more than the limit of %d",
							natts, ANOMALY_MAX_FEATURES)));
	}
	MemoryContextSwitchTo(old);
}

/* The dimension is known: allocate the row buffer and (for arrays) names. */
static void
ReaderSetDimension(TrainReader *r, int d)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	r->d = d;
	if (r->names == NULL)
	{
		r->names = palloc(d * sizeof(char *));
		for (int j = 0; j < d; j++)
			r->names[j] = psprintf("f%d", j + 1);
	}
	r->row = palloc(d * sizeof(float));
	MemoryContextSwitchTo(old);
}

/* Convert one result row into r->row. */
static void
ReaderConvert(TrainReader *r, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	if (r->array_input)
	{
		Datum		v = SPI_getbinval(tup, desc, 1, &isnull);
		ArrayType  *a;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int16		typlen;
		bool		typbyval;
		char		typalign;

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("training row " INT64_FORMAT " has a NULL features array", r->rows_seen + 1),
					 errhint("Filter NULL arrays in the training query.")));
		a = DatumGetArrayTypeP(v);
		if (ARR_NDIM(a) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("training row " INT64_FORMAT " has a %d-dimensional array; features must be one-dimensional",
							r->rows_seen + 1, ARR_NDIM(a))));
		get_typlenbyvalalign(ARR_ELEMTYPE(a), &typlen, &typbyval, &typalign);
		deconstruct_array(a, ARR_ELEMTYPE(a), typlen, typbyval, typalign, &elems, &nulls, &n);
		if (r->d < 0)
		{
			if (n == 0)
				ereport(ERROR,
						(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						 errmsg("training row 1 has an empty features array")));
			if (n > ANOMALY_MAX_FEATURES)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("training rows have %d features, more than the limit of %d",
								n, ANOMALY_MAX_FEATURES)));
			ReaderSetDimension(r, n);
		}
		if (n != r->d)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("training row " INT64_FORMAT " has %d features, but the first row has %d",
							r->rows_seen + 1, n, r->d)));
		for (int j = 0; j < n; j++)
		{
			if (nulls[j])
				NullFeature(r, r->names[j]);
			StoreValue(r, j, AnomalyConvertDatum(elems[j], r->cols[0]));
		}
	}
	else
	{
		if (r->row == NULL)
			ReaderSetDimension(r, r->d);
		for (int i = 0, j = 0; i < desc->natts; i++)
		{
			Datum		v;

			if (TupleDescAttr(desc, i)->attisdropped)
				continue;
			v = SPI_getbinval(tup, desc, i + 1, &isnull);
			if (isnull)
				NullFeature(r, r->names[j]);
			StoreValue(r, j, AnomalyConvertDatum(v, r->cols[i]));
			j++;
		}
	}
}

/* Keep r->row: append below max_rows, else reservoir-replace. */
static void
ReaderKeep(TrainReader *r)
{
	int64		slot;

	if (r->n < r->max_rows)
	{
		if (r->n == r->cap)
		{
			int64		newcap = Min(Max(1024, (int64) r->cap * 2), r->max_rows);

			if ((Size) newcap * r->d * sizeof(float) > MaxAllocHugeSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("training data of " INT64_FORMAT " rows x %d features is too large", newcap, r->d),
						 errhint("Lower the option max_rows.")));
			if (r->X == NULL)
				r->X = MemoryContextAllocHuge(r->cxt, (Size) newcap * r->d * sizeof(float));
			else
				r->X = repalloc_huge(r->X, (Size) newcap * r->d * sizeof(float));
			r->cap = (int) newcap;
		}
		slot = r->n++;
	}
	else
	{
		slot = (int64) pg_prng_uint64_range(&r->rng, 0, r->rows_seen);
		if (slot >= r->max_rows)
			slot = -1;
	}
	if (slot >= 0)
		memcpy(r->X + slot * r->d, r->row, r->d * sizeof(float));
	r->rows_seen++;
}

/* Called after each fetched batch, in r->cxt and outside the query's error context */
typedef void (*ReaderBatchHook) (TrainReader *r, void *arg);

/* What the error context of a query names */
typedef struct QueryContext
{
	const char *what;			/* "training", "calibration" */
	const char *model;
} QueryContext;

static void
QueryErrorContext(void *arg)
{
	QueryContext *q = arg;

	errcontext("%s query of anomaly model \"%s\"", q->what, q->model);
}

/*
 * Run query as the caller through an SPI cursor, TRAIN_BATCH rows at a time
 * (SPI never holds the whole result), keeping its rows in r (a seeded uniform
 * sample above r->max_rows).  "what" names the query in errors; hook, if
 * any, runs after every batch (the last one is empty).
 */
static void
ReaderRun(TrainReader *r, const char *query, const char *what, ReaderBatchHook hook, void *arg)
{
	SPIPlanPtr	plan;
	Portal		portal;
	QueryContext qc = {what, r->model};
	ErrorContextCallback errcb;

	errcb.callback = QueryErrorContext;
	errcb.arg = &qc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_CURSOR_DEFINITION),
				 errmsg("%s query must be a single query that returns rows", what),
				 errhint("Pass a SELECT (or a data-modifying statement with RETURNING).")));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, TRAIN_BATCH);
		if (r->cols == NULL)
			ReaderInitColumns(r, SPI_tuptable->tupdesc);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext c = MemoryContextSwitchTo(r->rowcxt);

			ReaderConvert(r, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
			MemoryContextSwitchTo(c);
			MemoryContextReset(r->rowcxt);
			ReaderKeep(r);
		}
		if (hook != NULL)
		{
			/* not SPI's procedure context, which SPI_finish() frees */
			MemoryContext spicxt = MemoryContextSwitchTo(r->cxt);

			error_context_stack = errcb.previous;
			hook(r, arg);
			error_context_stack = &errcb;
			MemoryContextSwitchTo(spicxt);
		}
		if (SPI_processed == 0)
			break;
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	error_context_stack = errcb.previous;
}

/* Quantile p of sorted values v[0..n-1], linear interpolation (numpy's default). */
static double
SortedQuantile(const double *v, int n, double p)
{
	double		pos = p * (n - 1);
	int			lo = (int) floor(pos);

	if (lo >= n - 1)
		return v[n - 1];
	return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

/*
 * Score n standardized rows with a completed model (the same code that scores
 * queries), sort the scores, NaN counted as +Infinity, and fill the
 * ANOMALY_N_QUANTILES quantiles.  Returns the sorted scores (palloc'd in the
 * current context).  anomaly_train() and anomaly_import() set thresholds
 * from them.
 */
double *
AnomalyScoreDistribution(AnomalyModel *model, int n, const float *X, double *quantiles)
{
	const AnomalyKind *kind = model->kind;
	int			d = model->n_features;
	double	   *scores = MemoryContextAllocHuge(CurrentMemoryContext, (Size) n * sizeof(double));

	if (kind->score_batch)
		kind->score_batch(model, n, X, scores);
	else
	{
		float	   *work = MemoryContextAllocHuge(CurrentMemoryContext, Max(model->workspace, 1) * sizeof(float));

		for (int i = 0; i < n; i++)
		{
			scores[i] = kind->score(model, X + (Size) i * d, work);
			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		pfree(work);
	}
	for (int i = 0; i < n; i++)
		if (isnan(scores[i]))
			scores[i] = get_float8_infinity();
	qsort(scores, n, sizeof(double), AnomalyCompareDouble);
	for (int q = 0; q < ANOMALY_N_QUANTILES; q++)
		quantiles[q] = SortedQuantile(scores, n, (double) q / (ANOMALY_N_QUANTILES - 1));
	return scores;
}

/* anomaly_import's calibration rows must fit the model */
static void
CalibrationBatchHook(TrainReader *r, void *arg)
{
	int			d = *(int *) arg;

	if (r->d > 0 && r->d != d)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("calibration rows have %d features, but the model has %d", r->d, d)));
}

/*
 * Read the rows of query, run as the caller, for model "name" (anomaly_import
 * calibrates an imported model with them): each must have d features; at
 * most max_rows rows are kept, a seeded uniform sample beyond that, as for
 * training.  Returns the number of rows kept; *X (n x d, not standardized)
 * and *names (the columns' names, or f1..fd for an array column) are
 * allocated in the current memory context, and *rows_read counts every row.
 */
int
AnomalyReadQueryRows(const char *name, const char *query, int d, int64 max_rows, uint64 seed,
					 float **X, char ***names, int64 *rows_read)
{
	TrainReader r;

	memset(&r, 0, sizeof(r));
	r.model = name;
	r.max_rows = max_rows;
	r.cxt = CurrentMemoryContext;
	r.rowcxt = AllocSetContextCreate(r.cxt, "anomaly calibration row", ALLOCSET_DEFAULT_SIZES);
	pg_prng_seed(&r.rng, seed);

	ReaderRun(&r, query, "calibration", CalibrationBatchHook, &d);
	MemoryContextDelete(r.rowcxt);

	*X = r.X;
	*names = r.names;
	*rows_read = r.rows_seen;
	return r.n;
}

/* What anomaly_train's batch hook needs */
typedef struct TrainHook
{
	const AnomalyKind *kind;
	AnomalyOptions *opts;
	void	   *kopts;			/* the kind's options, once read */
} TrainHook;

/*
 * After each batch of training rows: once the number of features is known,
 * read the kind's options and reject unknown ones (before the rest of the
 * data is read), and report progress.
 */
static void
TrainBatchHook(TrainReader *r, void *arg)
{
	TrainHook  *h = arg;

	if (h->kopts == NULL && r->d > 0)
	{
		h->kopts = h->kind->parse_options(h->opts, r->d);
		AnomalyOptCheckUnused(h->opts);
	}
	AnomalyProgressRows(r->rows_seen);
}

/*
 * The body of anomaly_train(); the wrapper below ends the progress report.
 */
static Datum
TrainModel(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *query;
	const AnomalyKind *kind;
	AnomalyOptions opts;
	double		contamination;
	bool		pot = false;
	double		risk = 0.0;
	AnomalyPotFit potfit;
	int64		seed;
	bool		standardize;
	bool		verbose;
	void	   *kopts = NULL;
	TrainReader r;
	TrainHook	hook;
	Oid			nsp;
	TimestampTz start = GetCurrentTimestamp();
	MemoryContext oldcxt;
	AnomalyTrainData data;
	AnomalyTrainResult result;
	float	   *center;
	float	   *scale;
	int			constant = 0;
	AnomalyModel model;
	double	   *scores;
	double		quantiles[ANOMALY_N_QUANTILES];
	double		threshold;
	AnomalyModelRow row;
	StringInfoData summary;
	long		secs;
	int			usecs;
	Jsonb	   *used;
	Jsonb	   *metrics;
	Datum		ret;
	int			version;

	if (PG_ARGISNULL(0) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be NULL or empty")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("training query must not be NULL")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind must not be NULL"),
				 errhint("Pass a kind such as 'autoencoder', or omit it for the default.")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* fail now rather than at the catalog's unique index, after the work */
	if (strlen(name) > ANOMALY_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model name is too long (%zu bytes, at most %d)", strlen(name), ANOMALY_MAX_NAME_BYTES)));
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kind = AnomalyFindKind(text_to_cstring(PG_GETARG_TEXT_PP(2)), false);
	nsp = AnomalyCatalogNamespace(fcinfo);
	/* fail before the work, not after: may we write this model? */
	AnomalyCatalogCheckAccess(fcinfo, true);
	AnomalyCatalogCheckOwner(nsp, name, false);

	/* common options */
	AnomalyOptionsInit(&opts, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	contamination = AnomalyOptReal(&opts, "contamination", 0.05, 0.0, 0.5, true);
	if (AnomalyOptGiven(&opts, "threshold"))
	{
		static const char *const methods[] = {"contamination", "pot", NULL};

		/* recorded only when given, so default models keep their options */
		pot = strcmp(AnomalyOptEnum(&opts, "threshold", "contamination", methods), "pot") == 0;
		if (pot)
			risk = AnomalyOptReal(&opts, "risk", ANOMALY_POT_DEFAULT_RISK, 0.0, 0.01, true);
	}
	seed = AnomalyOptInt64(&opts, "seed", ANOMALY_DEFAULT_SEED, 0, PG_INT64_MAX);
	standardize = AnomalyOptBool(&opts, "standardize", true);
	verbose = AnomalyOptFlag(&opts, "verbose", false);

	memset(&r, 0, sizeof(r));
	r.model = name;
	r.max_rows = AnomalyOptInt64(&opts, "max_rows", 100000, 2, 100000000);
	r.cxt = AllocSetContextCreate(CurrentMemoryContext, "anomaly training", ALLOCSET_DEFAULT_SIZES);
	r.rowcxt = AllocSetContextCreate(r.cxt, "anomaly training row", ALLOCSET_DEFAULT_SIZES);
	pg_prng_seed(&r.rng, (uint64) seed);

	AnomalyProgressBegin(name, kind->name, verbose);

	/* run the query as the caller, in batches; the kind's options are read once the width is known */
	hook.kind = kind;
	hook.opts = &opts;
	hook.kopts = NULL;
	ReaderRun(&r, query, "training", TrainBatchHook, &hook);
	kopts = hook.kopts;

	if (r.n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training query returned %s", r.n == 0 ? "no rows" : "only one row"),
				 errhint("A model needs at least two training rows; check the query's WHERE clause.")));

	/* the scaler */
	oldcxt = MemoryContextSwitchTo(r.cxt);
	center = palloc(r.d * sizeof(float));
	scale = palloc(r.d * sizeof(float));
	for (int j = 0; j < r.d; j++)
	{
		double		sum = 0.0;
		double		ss = 0.0;
		double		mean;
		double		sd;

		for (int i = 0; i < r.n; i++)
			sum += r.X[(Size) i * r.d + j];
		mean = sum / r.n;
		for (int i = 0; i < r.n; i++)
		{
			double		dv = r.X[(Size) i * r.d + j] - mean;

			ss += dv * dv;
		}
		sd = sqrt(ss / r.n);
		if (!(sd > 1e-12 * Max(1.0, fabs(mean))))
		{
			constant++;
			sd = 1.0;
		}
		center[j] = standardize ? (float) mean : 0.0f;
		scale[j] = standardize ? (float) sd : 1.0f;
	}
	if (constant == r.d)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every feature is constant in the training data"),
				 errdetail("The query returned %d rows with no variation, so there is nothing to learn.", r.n)));
	if (constant > 0)
		ereport(WARNING,
				(errmsg("%d of %d features are constant in the training data", constant, r.d),
				 errdetail("A constant feature is not scaled; any other value in it makes a row anomalous."),
				 errhint("Drop the column from the query if that is not wanted.")));
	if (standardize)
	{
		/*
		 * Multiply by the reciprocal exactly as AnomalyReadInput does, so a
		 * training row scores here bit for bit as anomaly_score() scores it.
		 */
		float	   *inv = palloc(r.d * sizeof(float));

		for (int j = 0; j < r.d; j++)
			inv[j] = 1.0f / scale[j];
		for (Size k = 0; k < (Size) r.n * r.d; k++)
		{
			int			j = k % r.d;

			r.X[k] = (r.X[k] - center[j]) * inv[j];
		}
	}

	/* train */
	AnomalyProgress("training", 0, 0, r.n, get_float8_nan());
	memset(&result, 0, sizeof(result));
	initStringInfo(&result.metrics);
	data.n = r.n;
	data.d = r.d;
	data.X = r.X;
	data.seed = (uint64) seed;
	kind->train(&data, kopts, &result);
	AnomalyTensorAdd1(&result, "scaler.center", r.d, center);
	AnomalyTensorAdd1(&result, "scaler.scale", r.d, scale);

	/* complete the model as a load would, and score the training rows with it */
	memset(&model, 0, sizeof(model));
	model.name = name;
	model.kind = kind;
	model.n_features = r.d;
	model.feature_names = r.names;
	model.tensors = result.tensors;
	model.mcxt = r.cxt;
	AnomalyModelFinish(&model);

	AnomalyProgress("scoring", 0, 0, r.n, get_float8_nan());
	scores = AnomalyScoreDistribution(&model, r.n, r.X, quantiles);
	if (pot)
	{
		AnomalyPotFitSorted(scores, r.n, risk, ANOMALY_POT_DEFAULT_LEVEL, &potfit);
		threshold = potfit.threshold;
	}
	else
		threshold = SortedQuantile(scores, r.n, 1.0 - contamination);

	/* summary and metrics */
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	initStringInfo(&summary);
	appendStringInfoString(&summary, "{");
	AnomalyJsonMember(&summary, "model");
	escape_json(&summary, name);
	AnomalyJsonMember(&summary, "kind");
	escape_json(&summary, kind->name);
	appendStringInfo(&summary, ", \"rows\": %d, \"rows_read\": " INT64_FORMAT ", \"sampled\": %s, \"features\": %d",
					 r.n, r.rows_seen, r.rows_seen > r.n ? "true" : "false", r.d);
	appendStringInfoString(&summary, ", \"threshold\": ");
	AnomalyJsonNumber(&summary, threshold);
	if (pot)
		appendStringInfo(&summary, ", \"pot\": {\"peaks\": %d, \"gamma\": %s, \"sigma\": %s, \"method\": \"%s\"}",
						 potfit.peaks, float8out_internal(potfit.gamma), float8out_internal(potfit.sigma),
						 AnomalyPotMethodName(potfit.method));
	appendStringInfoString(&summary, ", \"seconds\": ");
	AnomalyJsonNumber(&summary, secs + usecs / 1e6);
	if (result.metrics.len > 0)
		appendStringInfo(&summary, ", %s", result.metrics.data);
	appendStringInfoChar(&summary, '}');
	MemoryContextSwitchTo(oldcxt);

	used = AnomalyOptionsUsed(&opts);
	metrics = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(summary.data)));

	row.name = name;
	row.kind = kind->name;
	row.n_features = r.d;
	row.feature_names = r.names;
	row.options = used;
	row.threshold = threshold;
	row.quantiles = quantiles;
	row.metrics = metrics;
	row.rows = r.n;
	row.seconds = secs + usecs / 1e6;
	AnomalyProgress("storing", 0, 0, r.n, get_float8_nan());
	version = AnomalyCatalogStore(nsp, &row, result.tensors);

	/* the returned summary also shows the options as used and the version */
	summary.data[--summary.len] = '\0'; /* drop the closing brace */
	appendStringInfo(&summary, ", \"options\": %s, \"version\": %d}",
					 JsonbToCString(NULL, &used->root, VARSIZE(used)), version);
	ret = DirectFunctionCall1(jsonb_in, CStringGetDatum(summary.data));

	MemoryContextDelete(r.cxt);
	PG_RETURN_DATUM(ret);
}

/*
 * anomaly_train(model text, query text, kind text, options jsonb) returns jsonb
 */
PG_FUNCTION_INFO_V1(anomaly_train);
Datum
anomaly_train(PG_FUNCTION_ARGS)
{
	Datum		ret;

	PG_TRY();
	{
		ret = TrainModel(fcinfo);
	}
	PG_CATCH();
	{
		AnomalyProgressEnd();
		PG_RE_THROW();
	}
	PG_END_TRY();
	AnomalyProgressEnd();
	return ret;
}

/*
 * anomaly_drop(model text) returns boolean
 */
PG_FUNCTION_INFO_V1(anomaly_drop);
Datum
anomaly_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			nsp = AnomalyCatalogNamespace(fcinfo);

	AnomalyCatalogCheckAccess(fcinfo, true);
	PG_RETURN_BOOL(AnomalyCatalogDrop(nsp, name));
}
