/*
 * anomaly.c
 *	  Module entry point: settings, BLAS threading, the kind registry and
 *	  small JSON helpers shared by the other files.
 *
 * OpenBLAS starts a thread pool sized to the machine when it is loaded (on
 * first use, see blas.h).  A backend is one of many processes on the
 * server, so BLAS threads would only oversubscribe the cores: the library
 * is pinned to anomaly.blas_threads threads, 1 by default, as soon as it is
 * opened.  Parallelism comes from PostgreSQL's parallel query instead.
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "blas.h"
#include "funcapi.h"
#include "kinds.h"
#include "model.h"
#include "progress.h"
#include "simd.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/json.h"

PG_MODULE_MAGIC;

char	   *anomaly_default_model = NULL;
static int	anomaly_blas_threads = 1;
static int	anomaly_simd = 0;

/* values of anomaly.simd */
static const struct config_enum_entry simd_options[] = {
	{"auto", ANOMALY_SIMD_AUTO, false},
	{"generic", ANOMALY_SIMD_GENERIC, false},
	{"avx2", ANOMALY_SIMD_AVX2, false},
	{NULL, 0, false}
};

/*
 * anomaly.simd: the scoring kernels of the CPU (auto) or the baseline ones
 * (generic); results agree to the last bits of sums.
 */
static void
AssignSimd(int newval, void *extra)
{
	AnomalySimdSelect((AnomalySimdLevel) newval);
}

/* the registry: one line per kind in kinds.h */
#define ANOMALY_KIND_REF(sym) &sym,
static const AnomalyKind *const anomaly_kinds_table[] = {
	ANOMALY_KINDS(ANOMALY_KIND_REF)
};

static void
AssignBlasThreads(int newval, void *extra)
{
	AnomalyBlasSetThreads(newval);
}

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomStringVariable("anomaly.model",
							   "Model used by anomaly_score(features) when no model is named.",
							   NULL,
							   &anomaly_default_model,
							   NULL,
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("anomaly.blas_threads",
							"Threads OpenBLAS may use inside one backend.",
							"Keep 1 unless the server has idle cores; parallel query is the usual way to use them.",
							&anomaly_blas_threads,
							1, 1, 64,
							PGC_USERSET,
							0,
							NULL, AssignBlasThreads, NULL);

	DefineCustomStringVariable("anomaly.blas_library",
							   "BLAS library to open instead of libopenblas.so.0 (then libblas.so.3).",
							   "A file name or path for dlopen; it needs the CBLAS interface and LAPACK's dsyev_. "
							   "A session opens BLAS once, when it first needs it: later changes apply to new sessions.",
							   &anomaly_blas_library,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("anomaly.simd",
							 "Which version of the scoring kernels to use.",
							 "auto uses the widest the CPU has (AVX2+FMA, and AVX-512 for dense layers); "
							 "avx2 stops at AVX2; generic forces the baseline version.",
							 &anomaly_simd,
							 ANOMALY_SIMD_AUTO, simd_options,
							 PGC_USERSET,
							 0,
							 NULL, AssignSimd, NULL);
	AnomalySimdSelect((AnomalySimdLevel) anomaly_simd);

	MarkGUCPrefixReserved("anomaly");

	AnomalyModelCacheInit();
	AnomalyProgressShmemRequest();
}

/* qsort comparator of doubles, ascending */
int
AnomalyCompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * Kind registry lookups.
 */
const AnomalyKind *
AnomalyFindKind(const char *name, bool missing_ok)
{
	StringInfoData list;

	for (int i = 0; i < lengthof(anomaly_kinds_table); i++)
		if (strcmp(anomaly_kinds_table[i]->name, name) == 0)
			return anomaly_kinds_table[i];
	if (missing_ok)
		return NULL;

	initStringInfo(&list);
	for (int i = 0; i < lengthof(anomaly_kinds_table); i++)
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", anomaly_kinds_table[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown anomaly detector kind \"%s\"", name),
			 errhint("Valid kinds are: %s.", list.data)));
	return NULL;				/* keep compiler quiet */
}

int
AnomalyKindCount(void)
{
	return lengthof(anomaly_kinds_table);
}

const AnomalyKind *
AnomalyKindAt(int i)
{
	return anomaly_kinds_table[i];
}

/*
 * anomaly_kinds() returns setof (kind, description)
 */
PG_FUNCTION_INFO_V1(anomaly_kinds);
Datum
anomaly_kinds(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < lengthof(anomaly_kinds_table); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(anomaly_kinds_table[i]->name);
		values[1] = CStringGetTextDatum(anomaly_kinds_table[i]->description);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Append a JSON number; non-finite values become null (JSON has no NaN).
 */
void
AnomalyJsonNumber(StringInfo buf, double v)
{
	if (isnan(v) || isinf(v))
		appendStringInfoString(buf, "null");
	else
		appendStringInfoString(buf, float8out_internal(v));
}

/*
 * Start a member "key": of a JSON object being built in buf (members only,
 * braces are the caller's), adding the separating comma when needed.
 */
void
AnomalyJsonMember(StringInfo buf, const char *key)
{
	if (buf->len > 0 && buf->data[buf->len - 1] != '{' && buf->data[buf->len - 1] != '[')
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}
