/*
 * knn.c
 *	  The k-nearest-neighbours detector.
 *
 * The model is a reference set of training rows (all of them, or a seeded
 * uniform sample of sample_size rows, default 10000, kept in their original
 * order).  A row's score is the Euclidean distance to its k-th nearest
 * reference row (method 'largest', default, k = 5: the kNN detector of
 * Ramaswamy et al. 2000 and PyOD's default), or the mean ('mean') or median
 * ('median') of the distances to its k nearest.
 *
 * Cost.  Scoring one row reads the whole reference set: m x d multiply-adds,
 * about 320k for the default 10000 rows of 32 features, and the model stores
 * m x d floats (1.25 MB there).  sample_size trades the two against accuracy
 * on large tables; on small ones every row is kept.
 *
 * Distances.  Candidates are found with BLAS, using
 * ||x - r||^2 = ||r||^2 - 2 x.r + ||x||^2 (sgemv for one row, sgemm for a
 * block of rows in score_batch, the reference norms computed once at load),
 * and the k best are kept in a bounded max-heap.  That identity loses digits
 * when two rows are close, so the chosen neighbours' distances are then
 * recomputed exactly from the differences (in double) and sorted; equal rows
 * get distance exactly 0, as with a direct computation.
 *
 * Training rows.  score_batch is how the trainer scores the training rows to
 * set the threshold and quantiles, and a training row that is in the
 * reference set would find itself at distance 0.  Like PyOD, which drops the
 * first neighbour when it scores its training data, score_batch looks for
 * k + 1 neighbours and drops one at distance exactly 0 (the row itself, or an
 * identical row) when there is one.  Training scores then follow the
 * distribution of scores of new rows, which is what the threshold is for.
 * anomaly_score() never drops a neighbour: a new row identical to a
 * reference row is at distance 0 from it.  Consequently k must be smaller
 * than the number of reference rows.
 *
 * Explanation.  The contribution of feature j is its share of the squared
 * distances to the k neighbours used, sum_i (x_j - r_ij)^2 / sum_i ||x - r_i||^2,
 * times the score: non-negative, and the contributions add up to the score.
 *
 * Tensors: knn.reference [m, d] and knn.params [2] = {k, method}.
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "blas.h"
#include "kinds.h"
#include "knn.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "options.h"
#include "simd.h"
#include "utils/memutils.h"

#define KNN_MAX_K			1000
#define KNN_MAX_SAMPLE		10000000
#define KNN_BATCH_ROWS		64	/* query rows per sgemm in score_batch */

typedef enum KnnMethod
{
	KNN_LARGEST = 0,
	KNN_MEAN = 1,
	KNN_MEDIAN = 2
} KnnMethod;

static const char *const knn_methods[] = {"largest", "mean", "median", NULL};

typedef struct KnnOptions
{
	int			k;
	KnnMethod	method;
	int			sample_size;
} KnnOptions;

typedef struct KnnState
{
	int			m;				/* reference rows */
	int			k;
	KnnMethod	method;
	const float *ref;			/* m x d */
	float	   *norms;			/* m: ||r||^2 */
} KnnState;

/*
 * k, method, sample_size.
 */
static void *
knn_parse_options(AnomalyOptions *opts, int d)
{
	KnnOptions *o = palloc0(sizeof(KnnOptions));
	const char *method;

	o->k = AnomalyOptInt(opts, "k", 5, 1, KNN_MAX_K);
	method = AnomalyOptEnum(opts, "method", "largest", knn_methods);
	for (int i = 0; knn_methods[i] != NULL; i++)
		if (strcmp(method, knn_methods[i]) == 0)
			o->method = (KnnMethod) i;
	o->sample_size = AnomalyOptInt(opts, "sample_size", 10000, 2, KNN_MAX_SAMPLE);
	return o;
}

/* qsort comparator for row numbers */
static int
CompareInt(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/*
 * Keep the reference set: every row, or a seeded uniform sample (partial
 * Fisher-Yates shuffle) in the original row order.
 */
static void
knn_train(const AnomalyTrainData *data, void *options, AnomalyTrainResult *result)
{
	KnnOptions *o = options;
	int			n = data->n;
	int			d = data->d;
	int			m = Min(n, o->sample_size);
	float	   *ref;
	float		params[2];

	if (m <= o->k)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"k\" must be less than the number of reference rows (%d)", m),
				 errhint("Lower k, raise sample_size, or train on more rows.")));
	if ((Size) m * d > MaxAllocSize / sizeof(float))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a reference set of %d rows x %d features is too large", m, d),
				 errhint("Lower the option sample_size.")));

	if (m == n)
		AnomalyTensorAdd2(result, "knn.reference", m, d, data->X);
	else
	{
		int		   *idx = palloc((Size) n * sizeof(int));
		pg_prng_state rng;

		pg_prng_seed(&rng, data->seed);
		for (int i = 0; i < n; i++)
			idx[i] = i;
		for (int i = 0; i < m; i++)
		{
			int			j = i + (int) pg_prng_uint64_range(&rng, 0, n - 1 - i);
			int			t = idx[i];

			idx[i] = idx[j];
			idx[j] = t;
		}
		qsort(idx, m, sizeof(int), CompareInt);
		ref = palloc((Size) m * d * sizeof(float));
		for (int i = 0; i < m; i++)
			memcpy(ref + (Size) i * d, data->X + (Size) idx[i] * d, d * sizeof(float));
		AnomalyTensorAdd2(result, "knn.reference", m, d, ref);
		pfree(ref);
		pfree(idx);
	}
	params[0] = (float) o->k;
	params[1] = (float) o->method;
	AnomalyTensorAdd1(result, "knn.params", 2, params);
	appendStringInfo(&result->metrics, "\"reference_rows\": %d", m);
}

/*
 * Decode and check the tensors; compute the reference norms.
 */
static void
knn_load(AnomalyModel *model)
{
	int			d = model->n_features;
	KnnState   *st = palloc0(sizeof(KnnState));
	AnomalyTensor *rt = AnomalyModelFindTensor(model, "knn.reference");
	const float *params = AnomalyModelTensor1(model, "knn.params", 2);

	if (rt == NULL)
		AnomalyCorrupt(model, "tensor \"knn.reference\" is missing");
	if (rt->ndim != 2 || rt->shape[1] != d || rt->shape[0] < 2)
		AnomalyCorrupt(model, "tensor \"knn.reference\" must have shape [rows, %d] with at least 2 rows", d);
	st->m = rt->shape[0];
	st->ref = rt->data;
	if (params[0] != floorf(params[0]) || params[0] < 1 || params[0] >= st->m || params[0] > KNN_MAX_K)
		AnomalyCorrupt(model, "knn.params holds an invalid k");
	if (params[1] != KNN_LARGEST && params[1] != KNN_MEAN && params[1] != KNN_MEDIAN)
		AnomalyCorrupt(model, "knn.params holds an invalid method");
	st->k = (int) params[0];
	st->method = (KnnMethod) (int) params[1];
	st->norms = palloc(st->m * sizeof(float));
	for (int i = 0; i < st->m; i++)
	{
		const float *r = st->ref + (Size) i * d;
		double		s = 0.0;

		for (int j = 0; j < d; j++)
			s += (double) r[j] * r[j];
		st->norms[i] = (float) s;
	}
	model->state = st;
}

/* approximate distances (m), then a heap of k + 1 values and indices */
static Size
knn_workspace(const AnomalyModel *model)
{
	const KnnState *st = model->state;

	return (Size) st->m + 2 * (Size) (st->k + 1);
}

/* Restore the max-heap property below position i. */
static inline void
KnnSiftDown(float *hv, int32 *hi, int len, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1;
		int			big = i;
		float		tv;
		int32		ti;

		if (l < len && hv[l] > hv[big])
			big = l;
		if (l + 1 < len && hv[l + 1] > hv[big])
			big = l + 1;
		if (big == i)
			return;
		tv = hv[i];
		hv[i] = hv[big];
		hv[big] = tv;
		ti = hi[i];
		hi[i] = hi[big];
		hi[big] = ti;
		i = big;
	}
}

/* Offer (v, i) to a max-heap keeping the cap smallest values. */
static inline void
KnnHeapPush(float *hv, int32 *hi, int *len, int cap, float v, int32 i)
{
	if (*len < cap)
	{
		int			c = (*len)++;

		while (c > 0 && hv[(c - 1) / 2] < v)
		{
			hv[c] = hv[(c - 1) / 2];
			hi[c] = hi[(c - 1) / 2];
			c = (c - 1) / 2;
		}
		hv[c] = v;
		hi[c] = i;
	}
	else if (v < hv[0])
	{
		hv[0] = v;
		hi[0] = i;
		KnnSiftDown(hv, hi, *len, 0);
	}
}

/*
 * Given approximate squared distances dist[0..m-1] of row x, fill hv/hi with
 * the cap nearest reference rows, their exact squared distances in ascending
 * order.  Returns how many (min(cap, m)).
 */
static int
KnnNearest(const KnnState *st, int d, const float *x, const float *dist,
		   int cap, float *hv, int32 *hi)
{
	int			len = 0;
	int			i = 0;

	/* fill the heap, then offer only values below its largest */
	for (; i < st->m && len < cap; i++)
		KnnHeapPush(hv, hi, &len, cap, dist[i], i);
	while (i < st->m)
	{
		i += anomaly_kernels.first_below(dist + i, st->m - i, hv[0]);
		if (i >= st->m)
			break;
		KnnHeapPush(hv, hi, &len, cap, dist[i], i);
		i++;
	}

	/* exact distances, then heapsort ascending */
	for (int c = 0; c < len; c++)
	{
		const float *r = st->ref + (Size) hi[c] * d;
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			double		t = (double) x[j] - r[j];

			s += t * t;
		}
		hv[c] = (float) s;
	}
	for (int c = len / 2 - 1; c >= 0; c--)
		KnnSiftDown(hv, hi, len, c);
	for (int end = len - 1; end > 0; end--)
	{
		float		tv = hv[0];
		int32		ti = hi[0];

		hv[0] = hv[end];
		hi[0] = hi[end];
		hv[end] = tv;
		hi[end] = ti;
		KnnSiftDown(hv, hi, end, 0);
	}
	return len;
}

/* The score from k ascending squared distances. */
static double
KnnCombine(const KnnState *st, const float *d2)
{
	int			k = st->k;
	double		s = 0.0;

	switch (st->method)
	{
		case KNN_LARGEST:
			return sqrt(d2[k - 1]);
		case KNN_MEAN:
			for (int i = 0; i < k; i++)
				s += sqrt(d2[i]);
			return s / k;
		case KNN_MEDIAN:
			if (k % 2)
				return sqrt(d2[k / 2]);
			return 0.5 * (sqrt(d2[k / 2 - 1]) + sqrt(d2[k / 2]));
	}
	return 0.0;
}

/* Approximate squared distances of x to every reference row, into dist. */
static void
KnnDistances(const KnnState *st, int d, const float *x, float *dist)
{
	double		xx = 0.0;

	for (int j = 0; j < d; j++)
		xx += (double) x[j] * x[j];
	/* dist = -2 R x + norms + ||x||^2 */
	anomaly_kernels.add_const(st->norms, (float) xx, dist, st->m);
	anomaly_sgemv(CblasRowMajor, CblasNoTrans, st->m, d, -2.0f, st->ref, d, x, 1, 1.0f, dist, 1);
}

/* The score of one row: all distances with sgemv, then the k nearest. */
static double
knn_score(const AnomalyModel *model, const float *x, float *work)
{
	const KnnState *st = model->state;
	float	   *dist = work;
	float	   *hv = work + st->m;
	int32	   *hi = (int32 *) (hv + st->k + 1);

	KnnDistances(st, model->n_features, x, dist);
	KnnNearest(st, model->n_features, x, dist, st->k, hv, hi);
	return KnnCombine(st, hv);
}

/*
 * AnomalyKnnSameReference: both kNN, same rows in the same order.
 */
bool
AnomalyKnnSameReference(const AnomalyModel *a, const AnomalyModel *b)
{
	const KnnState *sa = a->state;
	const KnnState *sb = b->state;

	if (a->kind != &anomaly_kind_knn || b->kind != &anomaly_kind_knn ||
		a->n_features != b->n_features || sa->m != sb->m)
		return false;
	return sa->ref == sb->ref ||
		memcmp(sa->ref, sb->ref, (Size) sa->m * a->n_features * sizeof(float)) == 0;
}

/*
 * AnomalyKnnScoreShared: one pass of distances and one heap of the largest
 * k.  Each model's k nearest are the first k of those (the candidates are
 * chosen by the approximate distances, so at a near-tie the k-th neighbour
 * can differ from knn_score's in the last bits of its distance).
 */
void
AnomalyKnnScoreShared(const AnomalyModel *const *models, int n,
					  const float *x, float *work, double *out)
{
	const KnnState *st = models[0]->state;
	int			d = models[0]->n_features;
	int			kmax = 0;
	float	   *dist = work;
	float	   *hv;
	int32	   *hi;

	for (int i = 0; i < n; i++)
		kmax = Max(kmax, ((const KnnState *) models[i]->state)->k);
	hv = work + st->m;
	hi = (int32 *) (hv + kmax + 1);
	KnnDistances(st, d, x, dist);
	KnnNearest(st, d, x, dist, kmax, hv, hi);
	for (int i = 0; i < n; i++)
		out[i] = KnnCombine(models[i]->state, hv);
}

/*
 * Scores of the training rows: blocks of rows against the reference set in
 * one sgemm each, dropping one neighbour at distance 0 (the row itself).
 */
static void
knn_score_batch(const AnomalyModel *model, int n, const float *X, double *out)
{
	const KnnState *st = model->state;
	int			d = model->n_features;
	int			m = st->m;
	int			block = Max(1, Min(Min(n, KNN_BATCH_ROWS), (int) (MaxAllocSize / sizeof(float) / m)));
	float	   *G = palloc((Size) block * m * sizeof(float));
	float	   *hv = palloc((st->k + 1) * sizeof(float));
	int32	   *hi = palloc((st->k + 1) * sizeof(int32));

	for (int start = 0; start < n; start += block)
	{
		int			b = Min(block, n - start);
		const float *Xb = X + (Size) start * d;

		/* G = -2 Xb R^T, then + ||r||^2 + ||x||^2 */
		anomaly_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, m, d,
					-2.0f, Xb, d, st->ref, d, 0.0f, G, m);
		for (int q = 0; q < b; q++)
		{
			const float *x = Xb + (Size) q * d;
			float	   *g = G + (Size) q * m;
			double		xx = 0.0;
			int			len;

			for (int j = 0; j < d; j++)
				xx += (double) x[j] * x[j];
			for (int i = 0; i < m; i++)
				g[i] += st->norms[i] + (float) xx;
			len = KnnNearest(st, d, x, g, st->k + 1, hv, hi);
			Assert(len == st->k + 1);
			(void) len;
			out[start + q] = KnnCombine(st, hv[0] == 0.0f ? hv + 1 : hv);
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(G);
	pfree(hv);
	pfree(hi);
}

/*
 * Contributions: each feature's share of the squared distances to the k
 * neighbours, scaled to add up to the score.
 */
static double
knn_explain(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	const KnnState *st = model->state;
	int			d = model->n_features;
	float	   *dist = work;
	float	   *hv = work + st->m;
	int32	   *hi = (int32 *) (hv + st->k + 1);
	double		score;
	double		total = 0.0;

	KnnDistances(st, d, x, dist);
	KnnNearest(st, d, x, dist, st->k, hv, hi);
	score = KnnCombine(st, hv);

	for (int j = 0; j < d; j++)
		contrib[j] = 0.0;
	for (int c = 0; c < st->k; c++)
	{
		const float *r = st->ref + (Size) hi[c] * d;

		for (int j = 0; j < d; j++)
		{
			double		t = (double) x[j] - r[j];

			contrib[j] += t * t;
		}
	}
	for (int j = 0; j < d; j++)
		total += contrib[j];
	for (int j = 0; j < d; j++)
		contrib[j] = total > 0.0 ? score * contrib[j] / total : 0.0;
	return score;
}

const AnomalyKind anomaly_kind_knn = {
	.name = "knn",
	.description = "k nearest neighbours; score is the distance to the k-th nearest training row (or the mean or median of k)",
	.parse_options = knn_parse_options,
	.train = knn_train,
	.load = knn_load,
	.workspace = knn_workspace,
	.score = knn_score,
	.score_batch = knn_score_batch,
	.explain = knn_explain,
};
