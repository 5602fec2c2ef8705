/*
 * gan.c
 *	  A GAN-based detector after GANomaly (Akcay, Atapour-Abarghouei and
 *	  Breckon, "GANomaly: Semi-Supervised Anomaly Detection via Adversarial
 *	  Training", ACCV 2018), with dense networks for tabular rows, and the
 *	  feature-matching anomaly score of EGBAD (Zenati et al., "Efficient
 *	  GAN-Based Anomaly Detection", 2018).
 *
 * Networks (all on nn.c):
 *   generator   encoder G_E: x -> z (latent_dim) and decoder G_D: z -> x^,
 *               an autoencoder, so one forward pass reconstructs a row;
 *   encoder     E: x^ -> z^, which re-encodes the reconstruction;
 *   discriminator  features f: x -> f(x) (one leaky_relu layer) and a linear
 *               head f(x) -> logit of "x is a real row".
 * Defaults: hidden [w] with w = clamp(d, 8, 256), latent_dim clamp(d/2, 1, 64),
 * tanh in the generator and encoder (as in the autoencoder kind).
 *
 * Training alternates, on each minibatch, one generator step and one
 * discriminator step (GANomaly's schedule).  The generator (G_E, G_D and E
 * together) minimizes
 *     w_rec ||x - x^||^2 + w_adv ||f(x) - f(x^)||^2 + w_lat ||z - z^||^2
 * (reconstruction_weight, adversarial_weight, latent_weight; GANomaly's
 * 50 / 1 / 1, with squared instead of absolute error), the adversarial term
 * being feature matching on the discriminator's hidden layer (Salimans et
 * al., 2016).  The discriminator minimizes the logistic loss of telling x
 * from x^.  As in the other deep kinds, the rows of a minibatch that the
 * generator reconstructs worst (the share trim) are left out of the
 * generator's gradient, so the anomalies among the training rows are not
 * learned (nn.c).
 *
 * What keeps it stable (no NaN, no collapse, with default options on every
 * shared dataset): the generator never plays the minimax game directly: it
 * matches feature statistics, a target that does not explode when the
 * discriminator wins; the reconstruction term dominates, so the generator is
 * anchored to the data from the first step and cannot collapse to one mode;
 * Adam with beta1 = 0.5, the usual GAN setting; and, as in GANomaly, the
 * discriminator is re-initialized when its loss falls below 1e-5, so a
 * saturated discriminator cannot freeze the feature-matching gradient.
 * Early stopping (NnTrain) watches the reconstruction error of held-out
 * rows, which, unlike the adversarial losses, decreases when the model
 * improves.
 *
 * Score, in one forward pass: x^ = G_D(G_E(x)) and
 *     score = sum_j (x_j - x^_j)^2 + lambda ||f(x) - f(x^)||^2,
 * the reconstruction error through encoder and generator plus the
 * discriminator's feature-matching error (EGBAD's mix of its two scores).
 * lambda = feature_weight * (mean reconstruction error / mean feature error)
 * on the training rows, so feature_weight is the share of the feature term
 * on a typical row whatever the scale of the discriminator's features.
 * Explanation: feature j gets its squared error plus a share of the feature
 * term proportional to that error, so contributions are non-negative and add
 * up to the score.
 *
 * Tensors: gan.ge.*, gan.gd.*, gan.df.* (nn.c) and gan.lambda; E and the
 * discriminator's head are needed only for training and are not stored.
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "nn.h"
#include "options.h"

#define GAN_MAX_HIDDEN	((NN_MAX_LAYERS - 1) / 2)
#define GAN_D_RESET		1e-5	/* GANomaly: re-initialize D below this loss */

typedef struct GanOptions
{
	int			nhidden;
	int			hidden[GAN_MAX_HIDDEN];
	int			latent;
	double		w_rec;
	double		w_adv;
	double		w_lat;
	double		feature_weight;
	NnOptions	nn;
} GanOptions;

typedef struct GanState
{
	NnNet	   *ge;
	NnNet	   *gd;
	NnNet	   *df;
	float		lambda;
} GanState;

/*
 * Read the GAN's options.
 */
static void *
gan_parse_options(AnomalyOptions *opts, int d)
{
	GanOptions *o = palloc0(sizeof(GanOptions));

	o->nhidden = AnomalyOptIntList(opts, "hidden", o->hidden, GAN_MAX_HIDDEN, 1, NN_MAX_WIDTH);
	if (o->nhidden < 0)
	{
		o->nhidden = 1;
		o->hidden[0] = Min(Max(d, 8), 256);
		AnomalyOptRecordIntList(opts, "hidden", o->hidden, o->nhidden);
	}
	o->latent = AnomalyOptInt(opts, "latent_dim", Min(Max(d / 2, 1), 64), 1, NN_MAX_WIDTH);
	o->w_rec = AnomalyOptReal(opts, "reconstruction_weight", 50.0, 0.0, 1e6, false);
	o->w_adv = AnomalyOptReal(opts, "adversarial_weight", 1.0, 0.0, 1e6, false);
	o->w_lat = AnomalyOptReal(opts, "latent_weight", 1.0, 0.0, 1e6, false);
	o->feature_weight = AnomalyOptReal(opts, "feature_weight", 0.5, 0.0, 1e6, false);
	NnReadOptions(opts, &o->nn, "tanh");
	if (o->w_rec == 0.0 && o->w_adv == 0.0 && o->w_lat == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reconstruction_weight, adversarial_weight and latent_weight cannot all be 0"),
				 errhint("Keep reconstruction_weight positive.")));
	return o;
}

/* Generator encoder d -> hidden -> L, generator decoder L -> hidden reversed -> d */
static NnNet *
GanEncoder(const GanOptions *o, int d)
{
	return NnCreateMLP(d, o->nhidden, o->hidden, o->latent, o->nn.activation, NN_IDENTITY);
}

static NnNet *
GanDecoder(const GanOptions *o, int d)
{
	int			rev[GAN_MAX_HIDDEN];

	for (int i = 0; i < o->nhidden; i++)
		rev[i] = o->hidden[o->nhidden - 1 - i];
	return NnCreateMLP(o->latent, o->nhidden, rev, d, o->nn.activation, NN_IDENTITY);
}

/* Discriminator features: one leaky_relu layer as wide as the first hidden layer */
static NnNet *
GanFeatures(const GanOptions *o, int d)
{
	int			widths[2] = {d, o->nhidden > 0 ? o->hidden[0] : Min(Max(d, 8), 256)};
	NnActivation act = NN_LEAKY_RELU;

	return NnCreate(1, widths, &act);
}

/* log(1 + exp(x)) without overflow */
static inline double
GanSoftplus(double x)
{
	return Max(x, 0.0) + log1p(exp(-fabs(x)));
}

/* Training state handed to the NnTrain callbacks */
typedef struct GanTrain
{
	NnNet	   *ge;
	NnNet	   *gd;
	NnNet	   *e;
	NnNet	   *df;
	NnNet	   *dh;
	NnNet	   *best_ge;
	NnNet	   *best_gd;
	NnNet	   *best_df;
	NnAdam		adam;
	const GanOptions *o;
	pg_prng_state *rng;
	float	   *XX;				/* 2B x d: real rows, then reconstructions */
	float	   *dF;				/* 2B x w */
	float	   *dIn;			/* 2B x d */
	float	   *dXh;			/* B x d */
	float	   *dXe;			/* B x d */
	float	   *dZh;			/* B x L */
	float	   *dZ;				/* B x L */
	float	   *dZl;			/* B x L */
	float	   *dS;				/* 2B */
	double	   *rowloss;		/* B */
	float	   *weight;			/* B */
	double		trim;			/* current trim (ramped by NnTrain) */
	double		d_loss;			/* discriminator loss summed over the epoch */
	int			d_resets;
} GanTrain;

/*
 * One generator step and one discriminator step on B rows; returns the
 * summed squared reconstruction error of the rows (before the step).
 */
static double
GanStep(void *arg, int B, const float *Xb)
{
	GanTrain   *t = arg;
	const GanOptions *o = t->o;
	int			d = t->ge->in;
	int			L = o->latent;
	int			w = t->df->out;
	const float *Z;
	const float *Xh;
	const float *Zh;
	const float *F;
	const float *S;
	float		inv = 1.0f / B;
	float		c_rec;
	float		c_adv;
	float		c_lat;
	double		norm;
	double		sse = 0.0;
	double		dl = 0.0;

	/* generator forward: z = G_E(x), x^ = G_D(z), z^ = E(x^) */
	Z = NnForward(t->ge, B, Xb);
	Xh = NnForward(t->gd, B, Z);
	Zh = NnForward(t->e, B, Xh);
	memcpy(t->XX, Xb, (Size) B * d * sizeof(float));
	memcpy(t->XX + (Size) B * d, Xh, (Size) B * d * sizeof(float));
	F = NnForward(t->df, 2 * B, t->XX);

	/* trimmed loss: the rows reconstructed worst do not train the generator */
	for (int r = 0; r < B; r++)
	{
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			float		e = Xh[(Size) r * d + j] - Xb[(Size) r * d + j];

			s += (double) e * e;
		}
		t->rowloss[r] = s;
		sse += s;
	}
	norm = NnRowWeights(t->rowloss, B, t->trim, o->nn.robust, t->weight);
	c_rec = (float) (2.0 * o->w_rec / norm);
	c_adv = (float) (2.0 * o->w_adv / norm);
	c_lat = (float) (2.0 * o->w_lat / norm);

	/* feature matching: gradient at f(x^) only, through the discriminator to x^ */
	memset(t->dF, 0, (Size) B * w * sizeof(float));
	for (int r = 0; r < B; r++)
	{
		float		c = t->weight[r] * c_adv;

		for (int k = 0; k < w; k++)
			t->dF[(Size) (B + r) * w + k] = c * (F[(Size) (B + r) * w + k] - F[(Size) r * w + k]);
	}
	NnBackward(t->df, 2 * B, t->XX, t->dF, t->dIn);
	for (int r = 0; r < B; r++)
	{
		float		c = t->weight[r] * c_rec;

		for (int j = 0; j < d; j++)
		{
			Size		k = (Size) r * d + j;

			t->dXh[k] = t->dIn[(Size) B * d + k] + c * (Xh[k] - Xb[k]);
		}
	}
	/* latent consistency: both z and z^ receive its gradient */
	for (int r = 0; r < B; r++)
	{
		float		c = t->weight[r] * c_lat;

		for (int k = 0; k < L; k++)
		{
			Size		i = (Size) r * L + k;
			float		e = Zh[i] - Z[i];

			t->dZh[i] = c * e;
			t->dZl[i] = -c * e;
		}
	}
	NnBackward(t->e, B, Xh, t->dZh, t->dXe);
	for (Size k = 0; k < (Size) B * d; k++)
		t->dXh[k] += t->dXe[k];
	NnBackward(t->gd, B, Z, t->dXh, t->dZ);
	for (Size k = 0; k < (Size) B * L; k++)
		t->dZ[k] += t->dZl[k];
	NnBackward(t->ge, B, Xb, t->dZ, NULL);
	NnAdamStep(t->ge, &t->adam);
	NnAdamStep(t->gd, &t->adam);
	NnAdamStep(t->e, &t->adam);

	/*
	 * discriminator step on the same real rows and reconstructions; its
	 * features F are still those of this batch (its weights did not change)
	 */
	S = NnForward(t->dh, 2 * B, F);
	for (int r = 0; r < 2 * B; r++)
	{
		double		s = S[r];
		double		p = 1.0 / (1.0 + exp(-s));

		if (r < B)
		{
			dl += GanSoftplus(-s);
			t->dS[r] = (float) ((p - 1.0) * inv);
		}
		else
		{
			dl += GanSoftplus(s);
			t->dS[r] = (float) (p * inv);
		}
	}
	NnBackward(t->dh, 2 * B, F, t->dS, t->dF);
	NnBackward(t->df, 2 * B, t->XX, t->dF, NULL);
	NnAdamStep(t->dh, &t->adam);
	NnAdamStep(t->df, &t->adam);
	t->d_loss += dl;
	if (dl / (2 * B) < GAN_D_RESET)
	{
		NnInit(t->df, t->rng);
		NnInit(t->dh, t->rng);
		NnAdamReset(t->df);
		NnAdamReset(t->dh);
		t->d_resets++;
	}
	return sse;
}

/*
 * Reconstruction errors (and feature-matching errors, if fm is not NULL) of
 * n rows.
 */
static void
GanErrors(const NnNet *ge, const NnNet *gd, const NnNet *df, int n, const float *X,
		  double *sse, double *fm)
{
	int			d = ge->in;
	int			w = df->out;
	float	   *Z = palloc_extended((Size) n * ge->out * sizeof(float), MCXT_ALLOC_HUGE);
	float	   *R = palloc_extended((Size) n * d * sizeof(float), MCXT_ALLOC_HUGE);

	NnPredict(ge, n, X, Z);
	NnPredict(gd, n, Z, R);
	for (int i = 0; i < n; i++)
	{
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			double		e = (double) X[(Size) i * d + j] - R[(Size) i * d + j];

			s += e * e;
		}
		sse[i] = s;
	}
	if (fm)
	{
		float	   *Fx = palloc_extended((Size) n * w * sizeof(float), MCXT_ALLOC_HUGE);
		float	   *Fr = palloc_extended((Size) n * w * sizeof(float), MCXT_ALLOC_HUGE);

		NnPredict(df, n, X, Fx);
		NnPredict(df, n, R, Fr);
		for (int i = 0; i < n; i++)
		{
			double		s = 0.0;

			for (int k = 0; k < w; k++)
			{
				double		e = (double) Fx[(Size) i * w + k] - Fr[(Size) i * w + k];

				s += e * e;
			}
			fm[i] = s;
		}
		pfree(Fx);
		pfree(Fr);
	}
	pfree(Z);
	pfree(R);
}

/*
 * Reconstruction error of each of n validation rows.
 */
static void
GanValidate(void *arg, int n, const float *Xv, double *loss)
{
	GanTrain   *t = arg;

	GanErrors(t->ge, t->gd, t->df, n, Xv, loss, NULL);
}

static void
GanKeepBest(void *arg)
{
	GanTrain   *t = arg;

	NnCopyParams(t->best_ge, t->ge);
	NnCopyParams(t->best_gd, t->gd);
	NnCopyParams(t->best_df, t->df);
}

static void
GanRestoreBest(void *arg)
{
	GanTrain   *t = arg;

	NnCopyParams(t->ge, t->best_ge);
	NnCopyParams(t->gd, t->best_gd);
	NnCopyParams(t->df, t->best_df);
}

/*
 * Train the GAN (see the file header), then set lambda from the training
 * rows.
 */
static void
gan_train(const AnomalyTrainData *data, void *options, AnomalyTrainResult *result)
{
	GanOptions *o = options;
	int			n = data->n;
	int			d = data->d;
	int			L = o->latent;
	pg_prng_state rng;
	GanTrain	gt;
	NnTrainer	tr;
	int			B = NnTrainBatch(n, o->nn.validation_fraction, o->nn.batch_size);
	int			w;
	double	   *sse;
	double	   *fm;
	double		sum_sse = 0.0;
	double		sum_fm = 0.0;
	float		lambda;

	memset(&gt, 0, sizeof(gt));
	pg_prng_seed(&rng, data->seed);
	gt.o = o;
	gt.rng = &rng;
	gt.ge = GanEncoder(o, d);
	gt.gd = GanDecoder(o, d);
	gt.e = GanEncoder(o, d);
	gt.df = GanFeatures(o, d);
	w = gt.df->out;
	{
		int			widths[2] = {w, 1};
		NnActivation act = NN_IDENTITY;

		gt.dh = NnCreate(1, widths, &act);
	}
	NnInit(gt.ge, &rng);
	NnInit(gt.gd, &rng);
	NnInit(gt.e, &rng);
	NnInit(gt.df, &rng);
	NnInit(gt.dh, &rng);
	NnPrepareTraining(gt.ge, B);
	NnPrepareTraining(gt.gd, B);
	NnPrepareTraining(gt.e, B);
	NnPrepareTraining(gt.df, 2 * B);
	NnPrepareTraining(gt.dh, 2 * B);
	gt.best_ge = GanEncoder(o, d);
	gt.best_gd = GanDecoder(o, d);
	gt.best_df = GanFeatures(o, d);
	NnAdamInit(&gt.adam, o->nn.learning_rate, o->nn.weight_decay);
	gt.adam.beta1 = 0.5f;
	gt.XX = palloc((Size) 2 * B * d * sizeof(float));
	gt.dF = palloc((Size) 2 * B * w * sizeof(float));
	gt.dIn = palloc((Size) 2 * B * d * sizeof(float));
	gt.dXh = palloc((Size) B * d * sizeof(float));
	gt.dXe = palloc((Size) B * d * sizeof(float));
	gt.dZh = palloc((Size) B * L * sizeof(float));
	gt.dZ = palloc((Size) B * L * sizeof(float));
	gt.dZl = palloc((Size) B * L * sizeof(float));
	gt.dS = palloc((Size) 2 * B * sizeof(float));
	gt.rowloss = palloc(B * sizeof(double));
	gt.weight = palloc(B * sizeof(float));

	NnTrainerInit(&tr, "gan", data, &o->nn, &rng, &gt);
	tr.trim_now = &gt.trim;
	tr.step = GanStep;
	tr.validate = GanValidate;
	tr.keep_best = GanKeepBest;
	tr.restore_best = GanRestoreBest;
	NnTrain(&tr);

	/* lambda: feature_weight times the ratio of the mean errors */
	sse = palloc_extended((Size) n * sizeof(double), MCXT_ALLOC_HUGE);
	fm = palloc_extended((Size) n * sizeof(double), MCXT_ALLOC_HUGE);
	GanErrors(gt.ge, gt.gd, gt.df, n, data->X, sse, fm);
	for (int i = 0; i < n; i++)
	{
		sum_sse += sse[i];
		sum_fm += fm[i];
	}
	lambda = (sum_fm > 0.0 && isfinite(sum_fm)) ? (float) (o->feature_weight * sum_sse / sum_fm) : 0.0f;

	NnSave(gt.ge, result, "gan.ge");
	NnSave(gt.gd, result, "gan.gd");
	NnSave(gt.df, result, "gan.df");
	AnomalyTensorAdd1(result, "gan.lambda", 1, &lambda);
	NnTrainMetrics(&tr, &result->metrics);
	AnomalyJsonMember(&result->metrics, "discriminator_loss");
	AnomalyJsonNumber(&result->metrics,
					  tr.epochs_run > 0 ? gt.d_loss / ((double) 2 * tr.epochs_run * (n - tr.n_val)) : 0.0);
	AnomalyJsonMember(&result->metrics, "discriminator_resets");
	appendStringInfo(&result->metrics, "%d", gt.d_resets);
	AnomalyJsonMember(&result->metrics, "lambda");
	AnomalyJsonNumber(&result->metrics, lambda);
}

/*
 * Rebuild the generator and the discriminator's features.
 */
static void
gan_load(AnomalyModel *model)
{
	GanState   *st = palloc(sizeof(GanState));
	int			d = model->n_features;
	AnomalyTensor *w0 = AnomalyModelFindTensor(model, "gan.gd.w0");
	AnomalyTensor *f0 = AnomalyModelFindTensor(model, "gan.df.w0");

	if (w0 == NULL || w0->ndim != 2 || w0->shape[1] < 1 || w0->shape[1] > NN_MAX_WIDTH)
		AnomalyCorrupt(model, "tensor \"gan.gd.w0\" is missing or has a bad shape");
	if (f0 == NULL || f0->ndim != 2 || f0->shape[0] < 1 || f0->shape[0] > NN_MAX_WIDTH)
		AnomalyCorrupt(model, "tensor \"gan.df.w0\" is missing or has a bad shape");
	st->ge = NnLoad(model, "gan.ge", d, w0->shape[1]);
	st->gd = NnLoad(model, "gan.gd", w0->shape[1], d);
	st->df = NnLoad(model, "gan.df", d, f0->shape[0]);
	st->lambda = *AnomalyModelTensor1(model, "gan.lambda", 1);
	if (!(st->lambda >= 0.0f) || isinf(st->lambda))
		AnomalyCorrupt(model, "gan.lambda is not a non-negative number");
	model->state = st;
}

/*
 * Scratch floats: code, reconstruction, two feature vectors, and the
 * largest row workspace.
 */
static Size
gan_workspace(const AnomalyModel *model)
{
	const GanState *st = model->state;
	Size		nw = Max(NnRowWorkspace(st->ge), Max(NnRowWorkspace(st->gd), NnRowWorkspace(st->df)));

	return st->ge->out + model->n_features + 2 * st->df->out + nw;
}

/*
 * Score of one row (see the file header); contributions into contrib if not
 * NULL.  Allocates nothing.
 */
static double
GanRow(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	const GanState *st = model->state;
	int			d = model->n_features;
	int			w = st->df->out;
	float	   *z = work;
	float	   *rec = z + st->ge->out;
	float	   *fx = rec + d;
	float	   *fr = fx + w;
	float	   *scratch = fr + w;
	double		sse = 0.0;
	double		fm = 0.0;

	NnForwardRow(st->ge, x, z, scratch);
	NnForwardRow(st->gd, z, rec, scratch);
	NnForwardRow(st->df, x, fx, scratch);
	NnForwardRow(st->df, rec, fr, scratch);
	for (int j = 0; j < d; j++)
	{
		double		e = (double) x[j] - rec[j];

		if (contrib)
			contrib[j] = e * e;
		sse += e * e;
	}
	for (int k = 0; k < w; k++)
	{
		double		e = (double) fx[k] - fr[k];

		fm += e * e;
	}
	fm *= st->lambda;
	if (contrib)
	{
		for (int j = 0; j < d; j++)
			contrib[j] += (sse > 0.0) ? fm * contrib[j] / sse : fm / d;
	}
	return sse + fm;
}

static double
gan_score(const AnomalyModel *model, const float *x, float *work)
{
	return GanRow(model, x, work, NULL);
}

static double
gan_explain(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	return GanRow(model, x, work, contrib);
}

static void
gan_score_batch(const AnomalyModel *model, int n, const float *X, double *out)
{
	const GanState *st = model->state;
	double	   *fm = palloc_extended((Size) n * sizeof(double), MCXT_ALLOC_HUGE);

	GanErrors(st->ge, st->gd, st->df, n, X, out, fm);
	for (int i = 0; i < n; i++)
		out[i] += st->lambda * fm[i];
	pfree(fm);
}

const AnomalyKind anomaly_kind_gan = {
	.name = "gan",
	.description = "GANomaly-style adversarial autoencoder; score is the reconstruction error plus the discriminator's feature-matching error",
	.parse_options = gan_parse_options,
	.train = gan_train,
	.load = gan_load,
	.workspace = gan_workspace,
	.score = gan_score,
	.score_batch = gan_score_batch,
	.explain = gan_explain,
};
