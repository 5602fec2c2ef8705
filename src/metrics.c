/*
 * metrics.c
 *	  Evaluation and threshold aggregates: anomaly_roc_auc, anomaly_pr_auc,
 *	  anomaly_precision_at_k, anomaly_confusion, anomaly_threshold and
 *	  anomaly_pot_threshold; and the POT fit training uses (metrics.h).
 *
 * State.  The rank-based aggregates are exact, so they must see every score.
 * Their transition state (MetricsState, type internal) keeps the scores in
 * two growing arrays of doubles, one per class (label false / true; the
 * unlabeled threshold aggregates use the first only), allocated in the
 * aggregate's memory context and appended to in place, as core's
 * float8_accum updates its array under AggCheckCallContext.  Nothing is
 * sorted until the final function, which sorts each array once (an in-place
 * permutation that leaves the multiset, and so any later result, unchanged)
 * and walks them with a merge:
 *
 *	- ROC-AUC is the Mann-Whitney statistic: over all (positive, negative)
 *	  pairs, 1 when the positive scores higher and 1/2 on a tie, divided by
 *	  P * N.  That is exactly the area under scikit-learn's roc_curve with its
 *	  diagonal steps through tied scores (roc_auc_score).  The count is kept
 *	  doubled in an integer, so the only rounding is the final division.
 *	- Average precision walks distinct scores from the highest down; each
 *	  score value is one threshold, and AP = sum over thresholds of
 *	  (recall gained) * (precision there), as average_precision_score does
 *	  (tied scores enter together, never one by one).
 *	- Precision at k takes the k highest scores; when the k-th place falls in
 *	  a group of tied scores, that group counts in proportion (the expected
 *	  precision under a random order of the ties), so the answer does not
 *	  depend on the order rows arrive in, serial or parallel.
 *
 * Parallel query.  Every aggregate has a combine function; internal states
 * are serialized as a fixed header followed by the raw doubles (workers run
 * the same binary).  A worker that saw no rows hands over a NULL state, and
 * one that saw only NULL scores an empty one; both combine as "nothing".
 * Per-group parameters (k, contamination, risk, level) travel in the state,
 * and combining states with different parameters is an error.
 *
 * Scores.  NULL scores or labels are skipped.  A NaN score is an error
 * (22000): its rank is undefined (scikit-learn rejects it too), and skipping
 * it silently would overstate a detector that fails on some rows.  Infinite
 * scores are ranked as the largest/smallest (an anomaly_score that overflows
 * is still "very anomalous"); only the POT fit, which measures distances in
 * the tail, rejects them.
 *
 * POT.  anomaly_pot_threshold follows Siffer et al., "Anomaly Detection in
 * Streams with Extreme Value Theory" (KDD 2017), the batch part of SPOT:
 * t = the level quantile of the scores; the excesses Y = X - t of the scores
 * above t ("peaks", N_t of them out of n) are fitted with a generalized
 * Pareto distribution (shape gamma, scale sigma); the threshold exceeded with
 * probability risk is
 *		z_q = t + sigma/gamma * ((risk * n / N_t)^(-gamma) - 1)
 * (t - sigma * log(risk * n / N_t) when gamma = 0).  The fit is maximum
 * likelihood by Grimshaw's reduction to one variable x = gamma/sigma: the
 * stationary points of the likelihood are the roots of
 *		w(x) = u(x) v(x) - 1,	u = mean 1/(1 + x Y),	v = 1 + mean log(1 + x Y)
 * on (-1/Y_max, 0) and (0, 2 (mean Y - Y_min) / Y_min^2] (capped at
 * 1e10 / mean Y, a shape far beyond any real score); for a root,
 * gamma = v - 1 and sigma = gamma / x.  Roots are bracketed on a grid (dense
 * near the ends of each interval) and refined by bisection; the root of
 * highest likelihood wins, compared with the exponential tail (gamma = 0,
 * sigma = mean Y).  Roots with gamma <= -1 are discarded (the GPD likelihood
 * has no maximum there).  With fewer than ANOMALY_POT_MLE_MIN_PEAKS peaks the
 * likelihood is too flat to trust and the method of moments is used instead
 * (gamma = (1 - mean^2/var)/2, sigma = mean (1 + mean^2/var)/2), which is
 * consistent only for gamma < 1/2; with fewer than ANOMALY_POT_MIN_PEAKS
 * peaks there is no tail to fit and the call is an error.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "metrics.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

/* An interruptible sort of doubles (no NaN reaches it) */
#define ST_SORT MetricsSortDoubles
#define ST_ELEMENT_TYPE double
#define ST_COMPARE(a, b) ((*(a) > *(b)) - (*(a) < *(b)))
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* Which parameter a state carries (checked when states are combined) */
typedef enum MetricsParamKind
{
	METRICS_PARAM_NONE,
	METRICS_PARAM_K,
	METRICS_PARAM_CONTAMINATION,
	METRICS_PARAM_POT
} MetricsParamKind;

/*
 * Transition state of the score-collecting aggregates.  v[1] holds the
 * scores of rows labeled true, v[0] the others (or all scores, unlabeled).
 */
typedef struct MetricsState
{
	int64		n[2];
	int64		cap[2];
	double	   *v[2];
	int32		param_kind;		/* MetricsParamKind; NONE until a row set it */
	double		param[2];		/* k; contamination; risk and level */
} MetricsState;

/* The serialized state: this header, then n[0] and n[1] doubles */
typedef struct MetricsStateHeader
{
	int64		n[2];
	int32		param_kind;
	int32		padding;
	double		param[2];
} MetricsStateHeader;

#define METRICS_CONFUSION_SLOTS 4	/* tp, fp, tn, fn */

/*
 * The aggregate context of a transition/combine call, or an error when the
 * function was called as a plain function.
 */
static MemoryContext
MetricsAggContext(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return aggcxt;
}

/* A new, empty state in the aggregate context. */
static MetricsState *
MetricsNewState(MemoryContext aggcxt)
{
	return (MetricsState *) MemoryContextAllocZero(aggcxt, sizeof(MetricsState));
}

/*
 * Make room for "extra" more values in class c, doubling the array (the
 * amortized cost of an append stays constant).
 */
static void
MetricsReserve(MetricsState *s, int c, int64 extra, MemoryContext aggcxt)
{
	int64		need = s->n[c] + extra;
	int64		cap;

	if (need <= s->cap[c])
		return;
	cap = Max(Max(need, 1024), s->cap[c] * 2);
	if ((Size) cap > MaxAllocHugeSize / sizeof(double))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many scores for an exact evaluation aggregate")));
	if (s->v[c] == NULL)
		s->v[c] = (double *) MemoryContextAllocHuge(aggcxt, (Size) cap * sizeof(double));
	else
		s->v[c] = (double *) repalloc_huge(s->v[c], (Size) cap * sizeof(double));
	s->cap[c] = cap;
}

/* Append one score to class c. */
static inline void
MetricsAppend(MetricsState *s, int c, double score, MemoryContext aggcxt)
{
	if (s->n[c] == s->cap[c])
		MetricsReserve(s, c, 1, aggcxt);
	s->v[c][s->n[c]++] = score;
}

/* Reject a NaN score (and, for the POT fit, an infinite one). */
static void
MetricsCheckScore(double score, bool finite)
{
	if (isnan(score))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("score must not be NaN"),
				 errhint("Filter NaN scores (WHERE score <> 'NaN') or replace them before aggregating.")));
	if (finite && isinf(score))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("score must be finite for a tail fit"),
				 errhint("Filter infinite scores before aggregating.")));
}

/* Name of a parameter kind, for error messages. */
static const char *
MetricsParamName(int kind)
{
	switch (kind)
	{
		case METRICS_PARAM_K:
			return "k";
		case METRICS_PARAM_CONTAMINATION:
			return "contamination";
		case METRICS_PARAM_POT:
			return "risk and level";
	}
	return "parameter";
}

/*
 * Record the group's parameter on the first row; every later row (and every
 * combined state) must carry the same one.
 */
static void
MetricsSetParam(MetricsState *s, int kind, double p0, double p1)
{
	if (s->param_kind == METRICS_PARAM_NONE)
	{
		s->param_kind = kind;
		s->param[0] = p0;
		s->param[1] = p1;
	}
	else if (s->param_kind != kind || s->param[0] != p0 || s->param[1] != p1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be the same for every row of a group", MetricsParamName(kind)),
				 errhint("Pass a constant.")));
}

/*
 * anomaly_rank_accum(internal, score float8, label boolean) returns internal
 *	  Transition of anomaly_roc_auc and anomaly_pr_auc.
 */
PG_FUNCTION_INFO_V1(anomaly_rank_accum);
Datum
anomaly_rank_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_rank_accum");
	MetricsState *s = PG_ARGISNULL(0) ? MetricsNewState(aggcxt) : (MetricsState *) PG_GETARG_POINTER(0);

	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		double		score = PG_GETARG_FLOAT8(1);

		MetricsCheckScore(score, false);
		MetricsAppend(s, PG_GETARG_BOOL(2) ? 1 : 0, score, aggcxt);
	}
	PG_RETURN_POINTER(s);
}

/*
 * anomaly_precision_at_k_accum(internal, score float8, label boolean, k int)
 *	  returns internal
 */
PG_FUNCTION_INFO_V1(anomaly_precision_at_k_accum);
Datum
anomaly_precision_at_k_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_precision_at_k_accum");
	MetricsState *s = PG_ARGISNULL(0) ? MetricsNewState(aggcxt) : (MetricsState *) PG_GETARG_POINTER(0);
	int32		k;

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("k must not be NULL")));
	k = PG_GETARG_INT32(3);
	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, got %d", k)));
	MetricsSetParam(s, METRICS_PARAM_K, k, 0.0);
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		double		score = PG_GETARG_FLOAT8(1);

		MetricsCheckScore(score, false);
		MetricsAppend(s, PG_GETARG_BOOL(2) ? 1 : 0, score, aggcxt);
	}
	PG_RETURN_POINTER(s);
}

/*
 * anomaly_threshold_accum(internal, score float8, contamination float8)
 *	  returns internal
 */
PG_FUNCTION_INFO_V1(anomaly_threshold_accum);
Datum
anomaly_threshold_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_threshold_accum");
	MetricsState *s = PG_ARGISNULL(0) ? MetricsNewState(aggcxt) : (MetricsState *) PG_GETARG_POINTER(0);
	double		c;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("contamination must not be NULL")));
	c = PG_GETARG_FLOAT8(2);
	if (isnan(c) || c < 0.0 || c > 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("contamination must be between 0 and 1, got %g", c)));
	MetricsSetParam(s, METRICS_PARAM_CONTAMINATION, c, 0.0);
	if (!PG_ARGISNULL(1))
	{
		double		score = PG_GETARG_FLOAT8(1);

		MetricsCheckScore(score, false);
		MetricsAppend(s, 0, score, aggcxt);
	}
	PG_RETURN_POINTER(s);
}

/* Check the POT parameters (22023). */
static void
MetricsCheckPotParams(double risk, double level)
{
	if (isnan(level) || level <= 0.0 || level >= 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("level must be greater than 0 and less than 1, got %g", level)));
	if (isnan(risk) || risk <= 0.0 || risk >= 1.0 - level)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("risk must be greater than 0 and less than 1 - level (%g), got %g", 1.0 - level, risk),
				 errhint("The risk is the probability that a normal score exceeds the threshold; use a small value such as 1e-4.")));
}

/*
 * anomaly_pot_accum(internal, score float8 [, risk float8 [, level float8]])
 *	  returns internal
 *	  One C function for the three arities (aggregates have no defaults).
 */
PG_FUNCTION_INFO_V1(anomaly_pot_accum);
Datum
anomaly_pot_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_pot_accum");
	MetricsState *s = PG_ARGISNULL(0) ? MetricsNewState(aggcxt) : (MetricsState *) PG_GETARG_POINTER(0);
	double		risk = ANOMALY_POT_DEFAULT_RISK;
	double		level = ANOMALY_POT_DEFAULT_LEVEL;

	if ((PG_NARGS() > 2 && PG_ARGISNULL(2)) || (PG_NARGS() > 3 && PG_ARGISNULL(3)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("risk and level must not be NULL")));
	if (PG_NARGS() > 2)
		risk = PG_GETARG_FLOAT8(2);
	if (PG_NARGS() > 3)
		level = PG_GETARG_FLOAT8(3);
	if (s->param_kind == METRICS_PARAM_NONE)
		MetricsCheckPotParams(risk, level);
	MetricsSetParam(s, METRICS_PARAM_POT, risk, level);
	if (!PG_ARGISNULL(1))
	{
		double		score = PG_GETARG_FLOAT8(1);

		MetricsCheckScore(score, true);
		MetricsAppend(s, 0, score, aggcxt);
	}
	PG_RETURN_POINTER(s);
}

/*
 * anomaly_metrics_combine(internal, internal) returns internal
 *	  Append the second state's scores to the first.  Either may be NULL (a
 *	  worker that saw no rows); a copy is made when the first is, because the
 *	  result must live in the aggregate context.
 */
PG_FUNCTION_INFO_V1(anomaly_metrics_combine);
Datum
anomaly_metrics_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_metrics_combine");
	MetricsState *s1 = PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0);
	MetricsState *s2 = PG_ARGISNULL(1) ? NULL : (MetricsState *) PG_GETARG_POINTER(1);

	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		s1 = MetricsNewState(aggcxt);
	if (s2->param_kind != METRICS_PARAM_NONE)
		MetricsSetParam(s1, s2->param_kind, s2->param[0], s2->param[1]);
	for (int c = 0; c < 2; c++)
	{
		if (s2->n[c] == 0)
			continue;
		MetricsReserve(s1, c, s2->n[c], aggcxt);
		memcpy(s1->v[c] + s1->n[c], s2->v[c], (Size) s2->n[c] * sizeof(double));
		s1->n[c] += s2->n[c];
	}
	PG_RETURN_POINTER(s1);
}

/*
 * anomaly_metrics_serialize(internal) returns bytea
 */
PG_FUNCTION_INFO_V1(anomaly_metrics_serialize);
Datum
anomaly_metrics_serialize(PG_FUNCTION_ARGS)
{
	MetricsState *s;
	MetricsStateHeader h;
	Size		size;
	bytea	   *out;
	char	   *p;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "anomaly_metrics_serialize called in non-aggregate context");
	s = (MetricsState *) PG_GETARG_POINTER(0);

	size = VARHDRSZ + sizeof(MetricsStateHeader);
	if ((Size) (s->n[0] + s->n[1]) > (MaxAllocSize - size) / sizeof(double))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many scores to pass between parallel workers"),
				 errhint("Run the aggregate without parallelism: SET max_parallel_workers_per_gather = 0.")));
	size += (Size) (s->n[0] + s->n[1]) * sizeof(double);

	memset(&h, 0, sizeof(h));
	h.n[0] = s->n[0];
	h.n[1] = s->n[1];
	h.param_kind = s->param_kind;
	h.param[0] = s->param[0];
	h.param[1] = s->param[1];

	out = (bytea *) palloc(size);
	SET_VARSIZE(out, size);
	p = VARDATA(out);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	for (int c = 0; c < 2; c++)
	{
		if (s->n[c] > 0)
			memcpy(p, s->v[c], (Size) s->n[c] * sizeof(double));
		p += (Size) s->n[c] * sizeof(double);
	}
	PG_RETURN_BYTEA_P(out);
}

/*
 * anomaly_metrics_deserialize(bytea, internal) returns internal
 */
PG_FUNCTION_INFO_V1(anomaly_metrics_deserialize);
Datum
anomaly_metrics_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = MetricsAggContext(fcinfo, "anomaly_metrics_deserialize");
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(in);
	Size		len = VARSIZE_ANY_EXHDR(in);
	MetricsStateHeader h;
	MetricsState *s;

	if (len < sizeof(h))
		elog(ERROR, "invalid serialized anomaly metrics state");
	memcpy(&h, p, sizeof(h));
	p += sizeof(h);
	if (h.n[0] < 0 || h.n[1] < 0 ||
		len != sizeof(h) + (Size) (h.n[0] + h.n[1]) * sizeof(double))
		elog(ERROR, "invalid serialized anomaly metrics state");

	s = MetricsNewState(aggcxt);
	s->param_kind = h.param_kind;
	s->param[0] = h.param[0];
	s->param[1] = h.param[1];
	for (int c = 0; c < 2; c++)
	{
		if (h.n[c] == 0)
			continue;
		MetricsReserve(s, c, h.n[c], aggcxt);
		memcpy(s->v[c], p, (Size) h.n[c] * sizeof(double));
		s->n[c] = h.n[c];
		p += (Size) h.n[c] * sizeof(double);
	}
	PG_RETURN_POINTER(s);
}

/* Sort both classes ascending (in place; the multiset is unchanged). */
static void
MetricsSort(MetricsState *s)
{
	for (int c = 0; c < 2; c++)
		if (s->n[c] > 1)
			MetricsSortDoubles(s->v[c], (size_t) s->n[c]);
}

/*
 * anomaly_roc_auc_final(internal) returns float8
 *	  NULL without rows of both classes.
 */
PG_FUNCTION_INFO_V1(anomaly_roc_auc_final);
Datum
anomaly_roc_auc_final(PG_FUNCTION_ARGS)
{
	MetricsState *s = PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0);
	const double *neg;
	const double *pos;
	int64		nn;
	int64		np;
	int64		j = 0;
	uint64		twice_wins = 0;

	if (s == NULL || s->n[0] == 0 || s->n[1] == 0)
		PG_RETURN_NULL();
	MetricsSort(s);
	neg = s->v[0];
	pos = s->v[1];
	nn = s->n[0];
	np = s->n[1];

	/* for each group of equal positive scores: negatives below (x2) and tied (x1) */
	for (int64 i = 0; i < np;)
	{
		double		v = pos[i];
		int64		group = 0;
		int64		below;
		int64		tied;

		while (i < np && pos[i] == v)
		{
			i++;
			group++;
		}
		while (j < nn && neg[j] < v)
			j++;
		below = j;
		while (j < nn && neg[j] == v)
			j++;
		tied = j - below;
		twice_wins += (uint64) group * (uint64) (2 * below + tied);
	}
	PG_RETURN_FLOAT8((double) twice_wins / (2.0 * (double) np * (double) nn));
}

/*
 * anomaly_pr_auc_final(internal) returns float8
 *	  Average precision; NULL without rows of both classes.
 */
PG_FUNCTION_INFO_V1(anomaly_pr_auc_final);
Datum
anomaly_pr_auc_final(PG_FUNCTION_ARGS)
{
	MetricsState *s = PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0);
	const double *neg;
	const double *pos;
	int64		i;
	int64		j;
	int64		tp = 0;
	int64		fp = 0;
	double		sum = 0.0;

	if (s == NULL || s->n[0] == 0 || s->n[1] == 0)
		PG_RETURN_NULL();
	MetricsSort(s);
	neg = s->v[0];
	pos = s->v[1];
	i = s->n[1] - 1;
	j = s->n[0] - 1;

	/* distinct scores from the highest down; stop at full recall */
	while (i >= 0)
	{
		double		v = (j < 0 || pos[i] >= neg[j]) ? pos[i] : neg[j];
		int64		gained = 0;

		while (i >= 0 && pos[i] == v)
		{
			i--;
			gained++;
		}
		while (j >= 0 && neg[j] == v)
		{
			j--;
			fp++;
		}
		tp += gained;
		if (gained > 0)
			sum += (double) gained * ((double) tp / (double) (tp + fp));
	}
	PG_RETURN_FLOAT8(sum / (double) s->n[1]);
}

/*
 * anomaly_precision_at_k_final(internal) returns float8
 *	  Fraction of positives among the k highest scores (all rows when fewer
 *	  than k); a tied group straddling place k counts in proportion.
 */
PG_FUNCTION_INFO_V1(anomaly_precision_at_k_final);
Datum
anomaly_precision_at_k_final(PG_FUNCTION_ARGS)
{
	MetricsState *s = PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0);
	const double *neg;
	const double *pos;
	int64		n;
	int64		k;
	int64		i;
	int64		j;
	int64		seen = 0;
	int64		tp = 0;

	if (s == NULL || s->n[0] + s->n[1] == 0)
		PG_RETURN_NULL();
	MetricsSort(s);
	neg = s->v[0];
	pos = s->v[1];
	n = s->n[0] + s->n[1];
	k = Min((int64) s->param[0], n);
	i = s->n[1] - 1;
	j = s->n[0] - 1;

	for (;;)
	{
		double		v;
		int64		gp = 0;
		int64		gn = 0;

		if (i >= 0 && (j < 0 || pos[i] >= neg[j]))
			v = pos[i];
		else
			v = neg[j];
		while (i >= 0 && pos[i] == v)
		{
			i--;
			gp++;
		}
		while (j >= 0 && neg[j] == v)
		{
			j--;
			gn++;
		}
		if (seen + gp + gn >= k)
		{
			double		hits = tp + (double) (k - seen) * (double) gp / (double) (gp + gn);

			PG_RETURN_FLOAT8(hits / (double) k);
		}
		seen += gp + gn;
		tp += gp;
	}
}

/*
 * Quantile p of sorted values, linear interpolation between the two nearest
 * ranks (numpy's default, the convention of the training threshold).  An
 * infinite neighbour wins the interpolation instead of producing NaN.
 */
double
AnomalySortedQuantile(const double *sorted, int64 n, double p)
{
	double		pos = p * (double) (n - 1);
	int64		lo = (int64) floor(pos);
	double		frac = pos - (double) lo;
	double		a;
	double		b;

	if (lo >= n - 1)
		return sorted[n - 1];
	if (lo < 0)
		return sorted[0];
	a = sorted[lo];
	b = sorted[lo + 1];
	if (frac == 0.0 || a == b)
		return a;
	if (isinf(a))
		return a;
	if (isinf(b))
		return b;
	return a + frac * (b - a);
}

/*
 * anomaly_threshold_final(internal) returns float8
 *	  The 1 - contamination quantile of the scores; NULL without scores.
 */
PG_FUNCTION_INFO_V1(anomaly_threshold_final);
Datum
anomaly_threshold_final(PG_FUNCTION_ARGS)
{
	MetricsState *s = PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0);

	if (s == NULL || s->n[0] == 0)
		PG_RETURN_NULL();
	MetricsSort(s);
	PG_RETURN_FLOAT8(AnomalySortedQuantile(s->v[0], s->n[0], 1.0 - s->param[0]));
}

/* ---------------------------------------------------------------------------
 * Peaks over threshold
 * ---------------------------------------------------------------------------
 */

/* The excesses over the initial threshold and their summary */
typedef struct PotPeaks
{
	const double *x;			/* sorted scores above t */
	int			n;
	double		t;
	double		mean;
	double		min;
	double		max;
	double		var;			/* unbiased */
} PotPeaks;

/*
 * Grimshaw's w(x) = u(x) v(x) - 1 at x, and gamma = v(x) - 1 = mean
 * log(1 + x Y) through *gamma.
 */
static double
PotGrimshawW(const PotPeaks *pk, double x, double *gamma)
{
	double		su = 0.0;
	double		sv = 0.0;

	for (int i = 0; i < pk->n; i++)
	{
		double		s = 1.0 + x * (pk->x[i] - pk->t);

		su += 1.0 / s;
		sv += log(s);
	}
	su /= pk->n;
	sv /= pk->n;
	if (gamma)
		*gamma = sv;
	return su * (1.0 + sv) - 1.0;
}

/*
 * Log-likelihood per peak of a root of w: with gamma = mean log(1 + x Y) and
 * sigma = gamma / x, sum log(1 + gamma Y / sigma) = n gamma, so
 * l / n = -log sigma - (1 + 1/gamma) gamma = -(log sigma + gamma + 1).
 */
static double
PotRootLikelihood(double gamma, double sigma)
{
	return -(log(sigma) + gamma + 1.0);
}

/* Bisection of w on [a, b] (w(a), w(b) of opposite signs) to full precision. */
static double
PotBisect(const PotPeaks *pk, double a, double wa, double b)
{
	for (int it = 0; it < 200; it++)
	{
		double		m = 0.5 * (a + b);
		double		wm;

		if (m <= Min(a, b) || m >= Max(a, b))
			break;
		wm = PotGrimshawW(pk, m, NULL);
		if (wm == 0.0)
			return m;
		if ((wm < 0) == (wa < 0))
		{
			a = m;
			wa = wm;
		}
		else
			b = m;
	}
	return 0.5 * (a + b);
}

/*
 * Scan the grid xs[0..n-1] (ascending) for sign changes of w, refine each,
 * and keep the root of highest likelihood in *best (gamma > -1 only).
 */
static void
PotScanRoots(const PotPeaks *pk, const double *xs, int n,
			 double *best_ll, double *best_gamma, double *best_sigma)
{
	double		wprev = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		w = PotGrimshawW(pk, xs[i], NULL);

		if (!isfinite(w))
			continue;
		if (i > 0 && isfinite(wprev) && ((w < 0) != (wprev < 0)))
		{
			double		x = PotBisect(pk, xs[i - 1], wprev, xs[i]);
			double		gamma;
			double		sigma;
			double		ll;

			(void) PotGrimshawW(pk, x, &gamma);
			sigma = gamma / x;
			if (gamma > -1.0 && gamma != 0.0 && sigma > 0.0 && isfinite(sigma))
			{
				ll = PotRootLikelihood(gamma, sigma);
				if (isfinite(ll) && ll > *best_ll)
				{
					*best_ll = ll;
					*best_gamma = gamma;
					*best_sigma = sigma;
				}
			}
		}
		wprev = w;
		CHECK_FOR_INTERRUPTS();
	}
}

#define POT_GRID 64

/*
 * Maximum likelihood GPD fit of the peaks (Grimshaw's trick, see the top).
 * Returns true when a root beat the exponential tail.
 */
static bool
PotFitMle(const PotPeaks *pk, double *gamma, double *sigma)
{
	double		xs[3 * POT_GRID];
	int			n = 0;
	double		best_ll;
	double		lo;
	double		hi;

	/* the exponential tail (gamma = 0) is the candidate to beat */
	*gamma = 0.0;
	*sigma = pk->mean;
	best_ll = -(log(pk->mean) + 1.0);
	if (pk->max <= pk->min)
		return false;			/* all peaks equal: no root (w < 0 everywhere) */

	/*
	 * Left interval x = -g / Y_max, g in (0, 1): a log grid from g = 1e-6 (near
	 * the exponential) to 1/2 and a mirrored one up to 1 - 1e-10 (near the
	 * edge of the support), both in ascending x.
	 */
	for (int i = 0; i < POT_GRID; i++)
	{
		double		e = -10.0 + (10.0 + log10(0.5)) * i / (POT_GRID - 1);	/* 1e-10 .. 0.5 */

		xs[n++] = -(1.0 - pow(10.0, e)) / pk->max;
	}
	for (int i = POT_GRID - 1; i >= 0; i--)
	{
		double		e = -6.0 + (6.0 + log10(0.5)) * i / (POT_GRID - 1);	/* 1e-6 .. 0.5 */

		xs[n++] = -pow(10.0, e) / pk->max;
	}
	PotScanRoots(pk, xs, n, &best_ll, gamma, sigma);

	/*
	 * Right interval (0, 2 (mean - min) / min^2]: a log grid from 1e-6/Y_max
	 * (capped far beyond any plausible shape).
	 */
	lo = 1e-6 / pk->max;
	hi = 2.0 * (pk->mean - pk->min) / (pk->min * pk->min);
	hi = Min(hi, 1e10 / pk->mean);
	if (isfinite(hi) && hi > lo)
	{
		double		llo = log(lo);
		double		lhi = log(hi);

		n = 0;
		for (int i = 0; i < 2 * POT_GRID; i++)
			xs[n++] = exp(llo + (lhi - llo) * i / (2 * POT_GRID - 1));
		PotScanRoots(pk, xs, n, &best_ll, gamma, sigma);
	}
	return *gamma != 0.0;
}

/*
 * Fit the tail of sorted scores and compute the POT threshold (see the top
 * of the file).  Errors (22023) on bad parameters or too few peaks, (22000)
 * on non-finite scores.
 */
void
AnomalyPotFitSorted(const double *sorted_scores, int n, double risk, double level,
					AnomalyPotFit *fit)
{
	PotPeaks	pk;
	int			first;
	double		sum = 0.0;
	double		ss = 0.0;
	double		r;
	double		gamma;
	double		sigma;

	MetricsCheckPotParams(risk, level);
	for (int i = 0; i < n; i++)
		if (!isfinite(sorted_scores[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("score must be finite for a tail fit"),
					 errhint("Filter NaN and infinite scores before fitting a threshold.")));

	pk.t = n > 0 ? AnomalySortedQuantile(sorted_scores, n, level) : 0.0;
	first = n;
	while (first > 0 && sorted_scores[first - 1] > pk.t)
		first--;
	pk.x = sorted_scores + first;
	pk.n = n - first;
	if (pk.n < ANOMALY_POT_MIN_PEAKS && n >= ceil(ANOMALY_POT_MIN_PEAKS / (1.0 - level)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too few distinct scores above the initial threshold for a tail fit"),
				 errdetail("%d of %d scores lie above the %g quantile; at least %d are needed.",
						   pk.n, n, level, ANOMALY_POT_MIN_PEAKS),
				 errhint("The highest scores are tied; a tail fit needs scores that vary.")));
	if (pk.n < ANOMALY_POT_MIN_PEAKS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too few scores above the initial threshold for a tail fit"),
				 errdetail("%d of %d scores lie above the %g quantile; at least %d are needed.",
						   pk.n, n, level, ANOMALY_POT_MIN_PEAKS),
				 errhint("At level %g a tail fit needs about %.0f scores (%.0f for maximum likelihood); use more, or a lower level.",
						 level, ceil(ANOMALY_POT_MIN_PEAKS / (1.0 - level)),
						 ceil(ANOMALY_POT_MLE_MIN_PEAKS / (1.0 - level)))));

	for (int i = 0; i < pk.n; i++)
		sum += pk.x[i] - pk.t;
	pk.mean = sum / pk.n;
	for (int i = 0; i < pk.n; i++)
	{
		double		d = (pk.x[i] - pk.t) - pk.mean;

		ss += d * d;
	}
	pk.var = ss / (pk.n - 1);
	pk.min = pk.x[0] - pk.t;
	pk.max = pk.x[pk.n - 1] - pk.t;

	if (pk.n >= ANOMALY_POT_MLE_MIN_PEAKS)
	{
		fit->method = PotFitMle(&pk, &gamma, &sigma) ? ANOMALY_POT_MLE : ANOMALY_POT_EXPONENTIAL;
	}
	else if (pk.var > 0.0)
	{
		double		ratio = pk.mean * pk.mean / pk.var;

		gamma = 0.5 * (1.0 - ratio);
		sigma = 0.5 * pk.mean * (1.0 + ratio);
		fit->method = ANOMALY_POT_MOMENTS;
	}
	else
	{
		gamma = 0.0;
		sigma = pk.mean;
		fit->method = ANOMALY_POT_EXPONENTIAL;
	}

	/* z_q = t + sigma/gamma ((q n / N_t)^-gamma - 1), its limit at gamma = 0 */
	r = risk * (double) n / (double) pk.n;
	fit->threshold = pk.t + sigma * (gamma == 0.0 ? -log(r) : expm1(-gamma * log(r)) / gamma);
	fit->initial = pk.t;
	fit->peaks = pk.n;
	fit->n = n;
	fit->gamma = gamma;
	fit->sigma = sigma;
	if (!isfinite(fit->threshold))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the tail fit gives an infinite threshold"),
				 errdetail("The fitted shape is %g with scale %g.", gamma, sigma),
				 errhint("The scores have a very heavy tail; use a larger risk.")));
}

/*
 * The POT threshold of sorted scores, exceeded with probability risk
 * (training uses this for the option threshold: 'pot').
 */
double
AnomalyPotThreshold(const double *sorted_scores, int n, double risk, double level)
{
	AnomalyPotFit fit;

	AnomalyPotFitSorted(sorted_scores, n, risk, level, &fit);
	return fit.threshold;
}

/* Name of a fit method, as shown in JSON. */
const char *
AnomalyPotMethodName(AnomalyPotMethod method)
{
	switch (method)
	{
		case ANOMALY_POT_MLE:
			return "mle";
		case ANOMALY_POT_EXPONENTIAL:
			return "exponential";
		case ANOMALY_POT_MOMENTS:
			return "moments";
	}
	return "unknown";
}

/* Sort the state's scores and fit them; false without scores. */
static bool
MetricsPotFit(MetricsState *s, AnomalyPotFit *fit)
{
	if (s == NULL || s->n[0] == 0)
		return false;
	if (s->n[0] > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many scores for a tail fit")));
	MetricsSort(s);
	AnomalyPotFitSorted(s->v[0], (int) s->n[0], s->param[0], s->param[1], fit);
	return true;
}

/*
 * anomaly_pot_threshold_final(internal) returns float8
 */
PG_FUNCTION_INFO_V1(anomaly_pot_threshold_final);
Datum
anomaly_pot_threshold_final(PG_FUNCTION_ARGS)
{
	AnomalyPotFit fit;

	if (!MetricsPotFit(PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0), &fit))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(fit.threshold);
}

/*
 * anomaly_pot_fit_final(internal) returns jsonb
 *	  The threshold with the fit behind it: initial threshold, peaks, shape,
 *	  scale and method.
 */
PG_FUNCTION_INFO_V1(anomaly_pot_fit_final);
Datum
anomaly_pot_fit_final(PG_FUNCTION_ARGS)
{
	AnomalyPotFit fit;
	StringInfoData buf;

	if (!MetricsPotFit(PG_ARGISNULL(0) ? NULL : (MetricsState *) PG_GETARG_POINTER(0), &fit))
		PG_RETURN_NULL();
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"threshold\": ");
	appendStringInfoString(&buf, float8out_internal(fit.threshold));
	appendStringInfoString(&buf, ", \"initial_threshold\": ");
	appendStringInfoString(&buf, float8out_internal(fit.initial));
	appendStringInfo(&buf, ", \"rows\": %d, \"peaks\": %d, \"gamma\": ", fit.n, fit.peaks);
	appendStringInfoString(&buf, float8out_internal(fit.gamma));
	appendStringInfoString(&buf, ", \"sigma\": ");
	appendStringInfoString(&buf, float8out_internal(fit.sigma));
	appendStringInfo(&buf, ", \"method\": \"%s\"}", AnomalyPotMethodName(fit.method));
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* ---------------------------------------------------------------------------
 * Confusion counts: state int8[4] = {tp, fp, tn, fn}
 * ---------------------------------------------------------------------------
 */

/* The four counts of a confusion state array (checked, it is our own). */
static int64 *
ConfusionCounts(ArrayType *a)
{
	if (ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != METRICS_CONFUSION_SLOTS ||
		ARR_HASNULL(a) || ARR_ELEMTYPE(a) != INT8OID)
		elog(ERROR, "invalid anomaly_confusion state");
	return (int64 *) ARR_DATA_PTR(a);
}

/*
 * anomaly_confusion_accum(int8[], flag boolean, label boolean) returns int8[]
 *	  STRICT with an initial state, so rows with a NULL are skipped by the
 *	  executor.  Updates the state in place inside an aggregate (the array
 *	  was copied into the aggregate context), else works on a copy.
 */
PG_FUNCTION_INFO_V1(anomaly_confusion_accum);
Datum
anomaly_confusion_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *a = AggCheckCallContext(fcinfo, NULL) ? PG_GETARG_ARRAYTYPE_P(0) : PG_GETARG_ARRAYTYPE_P_COPY(0);
	int64	   *c = ConfusionCounts(a);
	bool		flag = PG_GETARG_BOOL(1);
	bool		label = PG_GETARG_BOOL(2);

	if (flag)
		c[label ? 0 : 1]++;
	else
		c[label ? 3 : 2]++;
	PG_RETURN_ARRAYTYPE_P(a);
}

/*
 * anomaly_confusion_combine(int8[], int8[]) returns int8[]
 */
PG_FUNCTION_INFO_V1(anomaly_confusion_combine);
Datum
anomaly_confusion_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *a = AggCheckCallContext(fcinfo, NULL) ? PG_GETARG_ARRAYTYPE_P(0) : PG_GETARG_ARRAYTYPE_P_COPY(0);
	int64	   *c1 = ConfusionCounts(a);
	int64	   *c2 = ConfusionCounts(PG_GETARG_ARRAYTYPE_P(1));

	for (int i = 0; i < METRICS_CONFUSION_SLOTS; i++)
		c1[i] += c2[i];
	PG_RETURN_ARRAYTYPE_P(a);
}

/* a / b, or 0 when b is 0 (scikit-learn's zero_division default) */
static double
MetricsRatio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

/*
 * anomaly_confusion_final(int8[]) returns jsonb
 *	  {"tp","fp","tn","fn","precision","recall","f1","accuracy"}; NULL
 *	  without rows.
 */
PG_FUNCTION_INFO_V1(anomaly_confusion_final);
Datum
anomaly_confusion_final(PG_FUNCTION_ARGS)
{
	int64	   *c = ConfusionCounts(PG_GETARG_ARRAYTYPE_P(0));
	int64		tp = c[0];
	int64		fp = c[1];
	int64		tn = c[2];
	int64		fn = c[3];
	StringInfoData buf;

	if (tp + fp + tn + fn == 0)
		PG_RETURN_NULL();
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"tp\": " INT64_FORMAT ", \"fp\": " INT64_FORMAT
					 ", \"tn\": " INT64_FORMAT ", \"fn\": " INT64_FORMAT, tp, fp, tn, fn);
	appendStringInfoString(&buf, ", \"precision\": ");
	appendStringInfoString(&buf, float8out_internal(MetricsRatio(tp, tp + fp)));
	appendStringInfoString(&buf, ", \"recall\": ");
	appendStringInfoString(&buf, float8out_internal(MetricsRatio(tp, tp + fn)));
	appendStringInfoString(&buf, ", \"f1\": ");
	appendStringInfoString(&buf, float8out_internal(MetricsRatio(2.0 * tp, 2.0 * tp + fp + fn)));
	appendStringInfoString(&buf, ", \"accuracy\": ");
	appendStringInfoString(&buf, float8out_internal(MetricsRatio(tp + tn, tp + fp + tn + fn)));
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
