/*
 * zscore.c
 *	  The z-score detector: per-feature location and scale.
 *
 * Score = sum over features of ((x_j - loc_j) / scale_j)^2, the squared
 * Euclidean length of the standardized row (a diagonal Mahalanobis distance).
 * The contribution of feature j is its own term, so contributions add up to
 * the score.  With the option robust, loc is the median and scale the median
 * absolute deviation times 1.4826 (consistent with the standard deviation
 * for normal data), which a few extreme training rows cannot inflate.
 *
 * The trainer receives rows already standardized by the scaler, so without
 * robust the fitted loc/scale are 0/1; they are still stored so the kind is
 * complete on its own (also with standardize off).
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "options.h"
#include "simd.h"

typedef struct ZscoreOptions
{
	bool		robust;
} ZscoreOptions;

typedef struct ZscoreState
{
	const float *loc;
	float	   *inv_scale;
} ZscoreState;

static void *
zscore_parse_options(AnomalyOptions *opts, int d)
{
	ZscoreOptions *o = palloc(sizeof(ZscoreOptions));

	o->robust = AnomalyOptBool(opts, "robust", false);
	return o;
}

static int
CompareFloat(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

static double
Median(float *v, int n)
{
	qsort(v, n, sizeof(float), CompareFloat);
	return (n % 2) ? v[n / 2] : 0.5 * ((double) v[n / 2 - 1] + v[n / 2]);
}

static void
zscore_train(const AnomalyTrainData *data, void *options, AnomalyTrainResult *result)
{
	ZscoreOptions *o = options;
	int			n = data->n;
	int			d = data->d;
	float	   *loc = palloc(d * sizeof(float));
	float	   *scale = palloc(d * sizeof(float));
	float	   *col = palloc((Size) n * sizeof(float));

	for (int j = 0; j < d; j++)
	{
		double		l;
		double		s;

		for (int i = 0; i < n; i++)
			col[i] = data->X[(Size) i * d + j];
		if (o->robust)
		{
			l = Median(col, n);
			for (int i = 0; i < n; i++)
				col[i] = fabsf(col[i] - (float) l);
			s = 1.4826 * Median(col, n);
			if (!(s > 1e-6))
			{
				/* more than half the rows share one value: fall back to the mean deviation */
				double		mad = 0.0;

				for (int i = 0; i < n; i++)
					mad += col[i];
				s = 1.2533 * mad / n;
			}
		}
		else
		{
			double		sum = 0.0;
			double		ss = 0.0;

			for (int i = 0; i < n; i++)
				sum += col[i];
			l = sum / n;
			for (int i = 0; i < n; i++)
				ss += (col[i] - l) * (col[i] - l);
			s = sqrt(ss / n);
		}
		if (!(s > 1e-6))
			s = 1.0;
		loc[j] = (float) l;
		scale[j] = (float) s;
	}
	AnomalyTensorAdd1(result, "zscore.loc", d, loc);
	AnomalyTensorAdd1(result, "zscore.scale", d, scale);
}

static void
zscore_load(AnomalyModel *model)
{
	int			d = model->n_features;
	ZscoreState *st = palloc(sizeof(ZscoreState));
	const float *scale = AnomalyModelTensor1(model, "zscore.scale", d);

	st->loc = AnomalyModelTensor1(model, "zscore.loc", d);
	st->inv_scale = palloc(d * sizeof(float));
	for (int j = 0; j < d; j++)
	{
		if (!(scale[j] > 0.0f))
			AnomalyCorrupt(model, "zscore.scale[%d] is not positive", j + 1);
		st->inv_scale[j] = 1.0f / scale[j];
	}
	model->state = st;
}

static double
zscore_score(const AnomalyModel *model, const float *x, float *work)
{
	const ZscoreState *st = model->state;
	int			d = model->n_features;

	return anomaly_kernels.zsumsq(x, st->loc, st->inv_scale, d);
}

/*
 * The real[] fast path: standardizing with the model's scaler and with
 * loc/scale in one pass, rounded as the two passes would round.
 */
static double
zscore_score_real(const AnomalyModel *model, const float *v, float *work)
{
	const ZscoreState *st = model->state;

	return anomaly_kernels.zsumsq_raw(v, model->center, model->inv_scale,
									  st->loc, st->inv_scale, model->n_features);
}

static double
zscore_explain(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	const ZscoreState *st = model->state;
	double		s = 0.0;

	for (int j = 0; j < model->n_features; j++)
	{
		double		z = (x[j] - st->loc[j]) * st->inv_scale[j];

		contrib[j] = z * z;
		s += contrib[j];
	}
	return s;
}

const AnomalyKind anomaly_kind_zscore = {
	.name = "zscore",
	.description = "per-feature z-scores; score is the sum of squared standardized deviations",
	.parse_options = zscore_parse_options,
	.train = zscore_train,
	.load = zscore_load,
	.score = zscore_score,
	.explain = zscore_explain,
	.score_real = zscore_score_real,
};
