/*
 * autoencoder.c
 *	  The autoencoder detector: a dense encoder/decoder trained to reproduce
 *	  the standardized rows; the anomaly score is the reconstruction error.
 *
 * Network.  d -> hidden[0] -> ... -> hidden[k-1] -> d, the activation after
 * every hidden layer and a linear output (nn.c).  The default hidden layers
 * are [w, b, w] with w = clamp(d, 8, 256) and the bottleneck
 * b = clamp(d/2, 1, 64), narrower than the input for every d >= 2, so the
 * network cannot learn the identity and must summarize the data.  (Wider
 * outer layers, 2d or 4d, and deeper stacks scored the same or slightly
 * worse on the shared benchmark and cost more; a bottleneck of d/3 or d/4
 * lost several points: too narrow, it reconstructs normal rows badly too.)  The default
 * activation is tanh: its bounded units saturate on rows far outside the
 * training data, so such rows are reconstructed toward the data instead of
 * extrapolated linearly, and their error grows with their distance (a relu
 * network extrapolates and partly reconstructs extreme rows).  On the shared
 * benchmark this choice is worth several points of ROC-AUC over relu.
 *
 * Training.  Loss = mean over rows of the summed squared error, minimized by
 * Adam on shuffled minibatches (batch_size, learning_rate, decoupled
 * weight_decay); the rows of a minibatch with the largest errors (the share
 * trim, default 0.3) are left out of its gradient, so that the anomalies
 * among the training rows are not learned (nn.c explains the trimmed loss;
 * it raised the mean ROC-AUC on the shared and on unshipped datasets).  validation_fraction of the rows (seeded choice) is held
 * out; after each epoch the validation loss is measured, the best weights are
 * kept, and training stops after patience epochs without improvement; the
 * best weights are the ones stored (the loop is NnTrain in nn.c).  When
 * epochs is not given it is chosen from the number of training rows so that
 * small tables get enough updates and large ones stay fast:
 * clamp(2,000,000 / rows, 10, 200).  Everything
 * random (initialization, the validation split, the shuffles) comes from one
 * pg_prng seeded with the model's seed, so the same data and seed give
 * bit-identical weights.
 *
 * Score.  sum_j (x_j - r_j)^2 where r is the reconstruction of the
 * standardized row x; feature j's contribution is its own term, so the
 * contributions are non-negative and add up to the score.  Tensors: ae.w<l>,
 * ae.b<l>, ae.act (nn.c).
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "miscadmin.h"
#include "nn.h"
#include "options.h"
#include "simd.h"

#define AE_MAX_HIDDEN		(NN_MAX_LAYERS - 1)

typedef struct AeOptions
{
	int			nhidden;
	int			hidden[AE_MAX_HIDDEN];
	NnOptions	nn;
} AeOptions;

typedef struct AeState
{
	NnNet	   *net;
} AeState;

/*
 * The default hidden layers for d features: [w, b, w] (see the file header).
 */
static int
AeDefaultHidden(int d, int *hidden)
{
	int			w = Min(Max(d, 8), 256);
	int			b = Min(Max(d / 2, 1), 64);

	hidden[0] = w;
	hidden[1] = b;
	hidden[2] = w;
	return 3;
}

/*
 * Read the autoencoder's options.
 */
static void *
ae_parse_options(AnomalyOptions *opts, int d)
{
	AeOptions  *o = palloc0(sizeof(AeOptions));

	o->nhidden = AnomalyOptIntList(opts, "hidden", o->hidden, AE_MAX_HIDDEN, 1, NN_MAX_WIDTH);
	if (o->nhidden == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"hidden\" must list at least one layer width"),
				 errhint("For example \"hidden\": [16, 4, 16].")));
	if (o->nhidden < 0)
	{
		o->nhidden = AeDefaultHidden(d, o->hidden);
		AnomalyOptRecordIntList(opts, "hidden", o->hidden, o->nhidden);
	}
	NnReadOptions(opts, &o->nn, "tanh");
	return o;
}

/* Training state handed to the NnTrain callbacks */
typedef struct AeTrain
{
	NnNet	   *net;
	NnNet	   *best;
	NnAdam		adam;
	float	   *dOut;			/* batch x d */
	double	   *rowloss;		/* batch */
	float	   *weight;			/* batch */
	double		trim;
	int			robust;
} AeTrain;

/*
 * One Adam step on B rows; returns their summed squared error.
 */
static double
AeStep(void *arg, int B, const float *Xb)
{
	AeTrain    *t = arg;
	int			d = t->net->in;
	const float *Y = NnForward(t->net, B, Xb);
	double		sum = 0.0;
	double		norm;
	float		scale;

	for (int r = 0; r < B; r++)
	{
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			float		e = Y[(Size) r * d + j] - Xb[(Size) r * d + j];

			s += (double) e * e;
		}
		t->rowloss[r] = s;
		sum += s;
	}
	norm = NnRowWeights(t->rowloss, B, t->trim, t->robust, t->weight);
	scale = (float) (2.0 / norm);
	for (int r = 0; r < B; r++)
	{
		float		c = t->weight[r] * scale;

		for (int j = 0; j < d; j++)
		{
			Size		k = (Size) r * d + j;

			t->dOut[k] = c * (Y[k] - Xb[k]);
		}
	}
	NnBackward(t->net, B, Xb, t->dOut, NULL);
	NnAdamStep(t->net, &t->adam);
	return sum;
}

/*
 * Squared reconstruction error of each of n rows.
 */
static void
AeValidate(void *arg, int n, const float *Xv, double *loss)
{
	AeTrain    *t = arg;
	int			d = t->net->in;
	float	   *rec = palloc_extended((Size) n * d * sizeof(float), MCXT_ALLOC_HUGE);

	NnPredict(t->net, n, Xv, rec);
	for (int i = 0; i < n; i++)
	{
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			double		e = (double) rec[(Size) i * d + j] - Xv[(Size) i * d + j];

			s += e * e;
		}
		loss[i] = s;
	}
	pfree(rec);
}

static void
AeKeepBest(void *arg)
{
	AeTrain    *t = arg;

	NnCopyParams(t->best, t->net);
}

static void
AeRestoreBest(void *arg)
{
	AeTrain    *t = arg;

	NnCopyParams(t->net, t->best);
}

/*
 * Train the autoencoder (see the file header).
 */
static void
ae_train(const AnomalyTrainData *data, void *options, AnomalyTrainResult *result)
{
	AeOptions  *o = options;
	int			d = data->d;
	pg_prng_state rng;
	AeTrain		at;
	NnTrainer	tr;
	int			B = NnTrainBatch(data->n, o->nn.validation_fraction, o->nn.batch_size);

	pg_prng_seed(&rng, data->seed);
	at.net = NnCreateMLP(d, o->nhidden, o->hidden, d, o->nn.activation, NN_IDENTITY);
	NnInit(at.net, &rng);
	NnPrepareTraining(at.net, B);
	at.best = NnCreateMLP(d, o->nhidden, o->hidden, d, o->nn.activation, NN_IDENTITY);
	NnAdamInit(&at.adam, o->nn.learning_rate, o->nn.weight_decay);
	at.dOut = palloc((Size) B * d * sizeof(float));
	at.rowloss = palloc(B * sizeof(double));
	at.weight = palloc(B * sizeof(float));
	at.trim = o->nn.trim;
	at.robust = o->nn.robust;

	NnTrainerInit(&tr, "autoencoder", data, &o->nn, &rng, &at);
	tr.trim_now = &at.trim;
	tr.step = AeStep;
	tr.validate = AeValidate;
	tr.keep_best = AeKeepBest;
	tr.restore_best = AeRestoreBest;
	NnTrain(&tr);

	NnSave(at.net, result, "ae");
	NnTrainMetrics(&tr, &result->metrics);
}

/*
 * Rebuild the network from its tensors.
 */
static void
ae_load(AnomalyModel *model)
{
	AeState    *st = palloc(sizeof(AeState));

	st->net = NnLoad(model, "ae", model->n_features, model->n_features);
	model->state = st;
}

/*
 * Scratch floats: the reconstruction plus the network's row workspace.
 */
static Size
ae_workspace(const AnomalyModel *model)
{
	const AeState *st = model->state;

	return ANOMALY_ALIGN_FLOATS(model->n_features) + NnRowWorkspace(st->net);
}

/*
 * Squared reconstruction error of one row, per feature into contrib (if
 * not NULL); returns the sum.
 */
static double
AeRowError(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	const AeState *st = model->state;
	int			d = model->n_features;
	float	   *rec = work;
	double		s = 0.0;

	NnForwardRow(st->net, x, rec, work + ANOMALY_ALIGN_FLOATS(d));
	if (contrib == NULL)
		return anomaly_kernels.sqdist(x, rec, d);
	for (int j = 0; j < d; j++)
	{
		double		e = (double) x[j] - rec[j];

		if (contrib)
			contrib[j] = e * e;
		s += e * e;
	}
	return s;
}

static double
ae_score(const AnomalyModel *model, const float *x, float *work)
{
	return AeRowError(model, x, work, NULL);
}

static double
ae_explain(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	return AeRowError(model, x, work, contrib);
}

/*
 * Scores of n rows with sgemm (used for the training-score quantiles).
 */
static void
ae_score_batch(const AnomalyModel *model, int n, const float *X, double *out)
{
	const AeState *st = model->state;
	int			d = model->n_features;
	float	   *rec = palloc_extended((Size) n * d * sizeof(float), MCXT_ALLOC_HUGE);

	NnPredict(st->net, n, X, rec);
	/* the row path's sum (ae_score), so training scores add up the same way */
	for (int i = 0; i < n; i++)
		out[i] = anomaly_kernels.sqdist(X + (Size) i * d, rec + (Size) i * d, d);
	pfree(rec);
}

const AnomalyKind anomaly_kind_autoencoder = {
	.name = "autoencoder",
	.description = "dense autoencoder; score is the squared reconstruction error of the standardized row",
	.parse_options = ae_parse_options,
	.train = ae_train,
	.load = ae_load,
	.workspace = ae_workspace,
	.score = ae_score,
	.score_batch = ae_score_batch,
	.explain = ae_explain,
};
