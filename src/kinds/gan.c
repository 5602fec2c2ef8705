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
 * Score, in one forward pass: z = G_E(x), x^ = G_D(z) and
 *     score = sum_j (x_j - x^_j)^2 + lambda ||f(x) - f(x^)||^2
 *             + code_lambda ||W (z - m)||^2,
 * the reconstruction error through encoder and generator, the
 * discriminator's feature-matching error (EGBAD's mix of its two scores),
 * and the squared Mahalanobis distance of the row's code from the codes of
 * the training rows (m their mean, W the inverse of the Cholesky factor of
 * their covariance, ridged by 1e-3 of the mean variance).
 * lambda = feature_weight * (mean reconstruction error / mean feature error)
 * and code_lambda = code_weight * (mean reconstruction error / mean code
 * distance) on the training rows, so each weight is the share of its term
 * on a typical row whatever the scale of the discriminator's features or of
 * the code.  m and W are estimated robustly: a first estimate on all
 * training rows, then one concentration step of MCD (Rousseeuw and Van
 * Driessen, 1999) on the share 1 - trim of them closest to it (the trim of
 * the trimmed loss; all rows with robust_loss "none"), so the anomalies
 * among the training rows do not widen the covariance.
 *
 * Why the code term (added after the first version, which scored only the
 * first two terms).  The first two terms measure how far a row lies off
 * what the generator reproduces: the residual subspace.  A row far out
 * ALONG the data (large but typical-looking in its correlations) is
 * reproduced well by a generator with a code of d/2 dimensions and scores
 * low on both; its code, though, is far from the others.  Process
 * monitoring has the same split for PCA, the residual Q (SPE) statistic and
 * Hotelling's T^2 in the kept subspace, and combines them, each divided by
 * a typical value (the combined index of Yue and Qin, 2001); code_weight 1
 * does the same with the training means, and was not tuned.  The VAE kind
 * gets the same information from its KL term.  Measured on the failing
 * sets (ROC-AUC, ANCHORS protocol, seed 42), each term alone:
 *                     vowel  letter shuttle  wine
 *     reconstruction   .559   .546   .834   .752
 *     feature match    .500   .565   .808   .638
 *     code distance    .916   .703   .930   .903
 * Before -> after (means of five splits): shared data (data/) 0.8291
 * -> 0.8397 (ae_torch 0.7704, np_zscore 0.7819); unseen data
 * (test/bench/unseen) 0.7165 -> 0.7745 (np_zscore 0.7453), per set digits
 * .343 -> .347, iris 1 -> 1, letter .555 -> .663, satellite .999 -> .999,
 * shuttle .831 -> .929, sonar .595 -> .609, vehicle .863 -> .802, vowel
 * .541 -> .804, wine .721 -> .818.  With seeds 1 and 2 the unseen mean goes
 * 0.732 -> 0.789 and 0.733 -> 0.790, the shared 0.818 -> 0.837 and
 * 0.838 -> 0.835.  Without the concentration step (plain mean and
 * covariance): shared 0.8270, unseen 0.7611.  Training on 100,000 x 32 takes
 * 4.2 s (4.1 s without the code term); scoring those rows takes about 10%
 * longer (one L x L sgemv per row, L = 16 there).
 * Explanation: feature j gets its squared error plus a share of the
 * feature and code terms proportional to that error, so contributions are
 * non-negative and add up to the score.
 *
 * Tensors: gan.ge.*, gan.gd.*, gan.df.* (nn.c), gan.lambda, and
 * gan.code_lambda, gan.code_mean (L), gan.code_whiten (L x L) when the code
 * term is on (a model without them, such as one imported from a file
 * without a code term, scores with the first two terms); E and the
 * discriminator's head are needed only for training and are not stored.
 */
#include "postgres.h"

#include <math.h>
#include "anomaly.h"
#include "nn.h"
#include "options.h"
#include "simd.h"

#define GAN_MAX_HIDDEN	((NN_MAX_LAYERS - 1) / 2)
#define GAN_D_RESET		1e-5	/* GANomaly: re-initialize D below this loss */
#define GAN_CODE_RIDGE	1e-3	/* ridge of the code covariance, times its mean variance */

typedef struct GanOptions
{
	int			nhidden;
	int			hidden[GAN_MAX_HIDDEN];
	int			latent;
	double		w_rec;
	double		w_adv;
	double		w_lat;
	double		feature_weight;
	double		code_weight;
	NnOptions	nn;
} GanOptions;

typedef struct GanState
{
	NnNet	   *ge;
	NnNet	   *gd;
	NnNet	   *df;
	float		lambda;
	float		code_lambda;	/* 0: no code term */
	const float *zmean;			/* L */
	const float *zwhite;		/* L x L, lower triangular */
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
	o->code_weight = AnomalyOptReal(opts, "code_weight", 1.0, 0.0, 1e6, false);
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
 * Squared Mahalanobis distance ||zwhite (z - zmean)||^2 of a code (zwhite is
 * any L x L matrix: lower triangular when trained here, whatever an imported
 * file holds); scratch has room for 2L floats.  A plain loop (L x L is a
 * few hundred multiply-adds; a BLAS call would cost more, and would load
 * OpenBLAS into every parallel worker), the same for one row and for many,
 * so both paths give the same score.
 */
static double
GanCodeDistance(const float *z, int L, const float *zmean, const float *zwhite, float *scratch)
{
	float	   *c = scratch;
	double		t2 = 0.0;

	for (int k = 0; k < L; k++)
		c[k] = z[k] - zmean[k];
	for (int i = 0; i < L; i++)
	{
		const float *w = zwhite + (Size) i * L;
		double		y = 0.0;

		for (int k = 0; k < L; k++)
			y += (double) w[k] * c[k];
		t2 += y * y;
	}
	return t2;
}

/*
 * Mean (L) and whitening matrix (L x L, lower triangular) of the codes Z
 * (n x L) of the rows with keep[i] (all rows if keep is NULL): zwhite is
 * the inverse of the Cholesky factor of their covariance, ridged by
 * GAN_CODE_RIDGE times the mean variance, so that ||zwhite (z - zmean)||^2
 * is the squared Mahalanobis distance of a code.
 */
static void
GanFitCodes(const float *Z, int n, int L, const bool *keep, float *zmean, float *zwhite)
{
	double	   *m = palloc0(L * sizeof(double));
	double	   *C = palloc0((Size) L * L * sizeof(double));
	double	   *R = palloc0((Size) L * L * sizeof(double));
	double	   *Ri = palloc0((Size) L * L * sizeof(double));
	double		tr = 0.0;
	int			cnt = 0;

	for (int i = 0; i < n; i++)
	{
		if (keep && !keep[i])
			continue;
		cnt++;
		for (int k = 0; k < L; k++)
			m[k] += Z[(Size) i * L + k];
	}
	for (int k = 0; k < L; k++)
		m[k] /= Max(cnt, 1);
	for (int i = 0; i < n; i++)
	{
		const float *z = Z + (Size) i * L;

		if (keep && !keep[i])
			continue;
		for (int a = 0; a < L; a++)
			for (int b = 0; b <= a; b++)
				C[a * L + b] += (z[a] - m[a]) * (z[b] - m[b]);
	}
	for (int a = 0; a < L; a++)
	{
		for (int b = 0; b <= a; b++)
			C[a * L + b] /= Max(cnt, 1);
		tr += C[a * L + a];
	}
	for (int a = 0; a < L; a++)
		C[a * L + a] += GAN_CODE_RIDGE * tr / L + 1e-12;
	/* Cholesky C = R R^T */
	for (int a = 0; a < L; a++)
	{
		for (int b = 0; b <= a; b++)
		{
			double		s = C[a * L + b];

			for (int k = 0; k < b; k++)
				s -= R[a * L + k] * R[b * L + k];
			if (a == b)
				R[a * L + a] = sqrt(Max(s, 1e-12));
			else
				R[a * L + b] = s / R[b * L + b];
		}
	}
	/* Ri = R^-1, lower triangular, by forward substitution */
	for (int c = 0; c < L; c++)
	{
		for (int a = c; a < L; a++)
		{
			double		s = (a == c) ? 1.0 : 0.0;

			for (int k = c; k < a; k++)
				s -= R[a * L + k] * Ri[k * L + c];
			Ri[a * L + c] = s / R[a * L + a];
		}
	}
	for (int k = 0; k < L; k++)
		zmean[k] = (float) m[k];
	for (Size k = 0; k < (Size) L * L; k++)
		zwhite[k] = (float) Ri[k];
	pfree(m);
	pfree(C);
	pfree(R);
	pfree(Ri);
}

/*
 * Code statistics of the n training rows (GanFitCodes); with trim > 0, one
 * concentration step of MCD follows: the share trim of the rows farthest
 * from the first estimate is left out of the second.  t2 gets every
 * training row's squared distance.
 */
static void
GanCodeStats(const NnNet *ge, int n, const float *X, double trim,
			 float *zmean, float *zwhite, double *t2)
{
	int			L = ge->out;
	float	   *Z = palloc_extended((Size) n * L * sizeof(float), MCXT_ALLOC_HUGE);
	float	   *scratch = palloc(2 * L * sizeof(float));

	NnPredict(ge, n, X, Z);
	GanFitCodes(Z, n, L, NULL, zmean, zwhite);
	for (int i = 0; i < n; i++)
		t2[i] = GanCodeDistance(Z + (Size) i * L, L, zmean, zwhite, scratch);
	if (trim > 0.0)
	{
		double	   *sorted = palloc_extended((Size) n * sizeof(double), MCXT_ALLOC_HUGE);
		bool	   *keep = palloc_extended((Size) n * sizeof(bool), MCXT_ALLOC_HUGE);
		int			h = Min(n - 1, Max(0, (int) ((1.0 - trim) * n)));
		double		cut;

		memcpy(sorted, t2, (Size) n * sizeof(double));
		qsort(sorted, n, sizeof(double), AnomalyCompareDouble);
		cut = sorted[h];
		for (int i = 0; i < n; i++)
			keep[i] = t2[i] <= cut;
		GanFitCodes(Z, n, L, keep, zmean, zwhite);
		for (int i = 0; i < n; i++)
			t2[i] = GanCodeDistance(Z + (Size) i * L, L, zmean, zwhite, scratch);
		pfree(sorted);
		pfree(keep);
	}
	pfree(Z);
	pfree(scratch);
}

/*
 * Reconstruction errors (and feature-matching errors, if fm is not NULL) of
 * n rows.
 */
static void
GanErrors(const NnNet *ge, const NnNet *gd, const NnNet *df, int n, const float *X,
		  double *sse, double *fm, const float *zmean, const float *zwhite, double *t2)
{
	int			d = ge->in;
	int			w = df->out;
	float	   *Z = palloc_extended((Size) n * ge->out * sizeof(float), MCXT_ALLOC_HUGE);
	float	   *R = palloc_extended((Size) n * d * sizeof(float), MCXT_ALLOC_HUGE);

	NnPredict(ge, n, X, Z);
	NnPredict(gd, n, Z, R);
	if (t2)
	{
		float	   *scratch = palloc(2 * ge->out * sizeof(float));

		for (int i = 0; i < n; i++)
			t2[i] = GanCodeDistance(Z + (Size) i * ge->out, ge->out, zmean, zwhite, scratch);
		pfree(scratch);
	}
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

	GanErrors(t->ge, t->gd, t->df, n, Xv, loss, NULL, NULL, NULL, NULL);
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
	double		sum_t2 = 0.0;
	float		lambda;
	float		code_lambda;
	float	   *zmean;
	float	   *zwhite;

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
	GanErrors(gt.ge, gt.gd, gt.df, n, data->X, sse, fm, NULL, NULL, NULL);
	for (int i = 0; i < n; i++)
	{
		sum_sse += sse[i];
		sum_fm += fm[i];
	}
	lambda = (sum_fm > 0.0 && isfinite(sum_fm)) ? (float) (o->feature_weight * sum_sse / sum_fm) : 0.0f;
	zmean = palloc(L * sizeof(float));
	zwhite = palloc((Size) L * L * sizeof(float));
	GanCodeStats(gt.ge, n, data->X, o->nn.robust == NN_ROBUST_NONE ? 0.0 : o->nn.trim,
				 zmean, zwhite, fm);
	for (int i = 0; i < n; i++)
		sum_t2 += fm[i];
	code_lambda = (sum_t2 > 0.0 && isfinite(sum_t2)) ? (float) (o->code_weight * sum_sse / sum_t2) : 0.0f;

	NnSave(gt.ge, result, "gan.ge");
	NnSave(gt.gd, result, "gan.gd");
	NnSave(gt.df, result, "gan.df");
	AnomalyTensorAdd1(result, "gan.lambda", 1, &lambda);
	if (code_lambda > 0.0f)
	{
		AnomalyTensorAdd1(result, "gan.code_lambda", 1, &code_lambda);
		AnomalyTensorAdd1(result, "gan.code_mean", L, zmean);
		AnomalyTensorAdd2(result, "gan.code_whiten", L, L, zwhite);
	}
	NnTrainMetrics(&tr, &result->metrics);
	AnomalyJsonMember(&result->metrics, "discriminator_loss");
	AnomalyJsonNumber(&result->metrics,
					  tr.epochs_run > 0 ? gt.d_loss / ((double) 2 * tr.epochs_run * (n - tr.n_val)) : 0.0);
	AnomalyJsonMember(&result->metrics, "discriminator_resets");
	appendStringInfo(&result->metrics, "%d", gt.d_resets);
	AnomalyJsonMember(&result->metrics, "lambda");
	AnomalyJsonNumber(&result->metrics, lambda);
	AnomalyJsonMember(&result->metrics, "code_lambda");
	AnomalyJsonNumber(&result->metrics, code_lambda);
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
	st->code_lambda = 0.0f;
	st->zmean = NULL;
	st->zwhite = NULL;
	if (AnomalyModelFindTensor(model, "gan.code_lambda") != NULL)
	{
		int			L = st->ge->out;

		st->code_lambda = *AnomalyModelTensor1(model, "gan.code_lambda", 1);
		if (!(st->code_lambda >= 0.0f) || isinf(st->code_lambda))
			AnomalyCorrupt(model, "gan.code_lambda is not a non-negative number");
		st->zmean = AnomalyModelTensor1(model, "gan.code_mean", L);
		st->zwhite = AnomalyModelTensor2(model, "gan.code_whiten", L, L);
	}
	model->state = st;
}

/*
 * Scratch floats: code, reconstruction, two feature vectors, and the
 * largest row workspace (at least 2L, for the code term).
 */
static Size
gan_workspace(const AnomalyModel *model)
{
	const GanState *st = model->state;
	Size		nw = Max(NnRowWorkspace(st->ge), Max(NnRowWorkspace(st->gd), NnRowWorkspace(st->df)));

	nw = Max(nw, (Size) 2 * st->ge->out);	/* GanCodeDistance */
	return ANOMALY_ALIGN_FLOATS(st->ge->out) + ANOMALY_ALIGN_FLOATS(model->n_features) +
		2 * ANOMALY_ALIGN_FLOATS(st->df->out) + nw;
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
	float	   *rec = z + ANOMALY_ALIGN_FLOATS(st->ge->out);
	float	   *fx = rec + ANOMALY_ALIGN_FLOATS(d);
	float	   *fr = fx + ANOMALY_ALIGN_FLOATS(w);
	float	   *scratch = fr + ANOMALY_ALIGN_FLOATS(w);
	double		sse = 0.0;
	double		fm;

	NnForwardRow(st->ge, x, z, scratch);
	NnForwardRow(st->gd, z, rec, scratch);
	NnForwardRow(st->df, x, fx, scratch);
	NnForwardRow(st->df, rec, fr, scratch);
	if (contrib == NULL)
		sse = anomaly_kernels.sqdist(x, rec, d);	/* the same sum, vectorized */
	else
		for (int j = 0; j < d; j++)
		{
			double		e = (double) x[j] - rec[j];

			contrib[j] = e * e;
			sse += e * e;
		}
	fm = anomaly_kernels.sqdist(fx, fr, w) * st->lambda;
	if (st->code_lambda > 0.0f)
		fm += st->code_lambda * GanCodeDistance(z, st->ge->out, st->zmean, st->zwhite, scratch);
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
	double	   *t2 = NULL;

	if (st->code_lambda > 0.0f)
		t2 = palloc_extended((Size) n * sizeof(double), MCXT_ALLOC_HUGE);
	GanErrors(st->ge, st->gd, st->df, n, X, out, fm, st->zmean, st->zwhite, t2);
	for (int i = 0; i < n; i++)
		out[i] += st->lambda * fm[i] + (t2 ? st->code_lambda * t2[i] : 0.0);
	pfree(fm);
	if (t2)
		pfree(t2);
}

const AnomalyKind anomaly_kind_gan = {
	.name = "gan",
	.description = "GANomaly-style adversarial autoencoder; score is the reconstruction error plus the discriminator's feature-matching error and the Mahalanobis distance of the code",
	.parse_options = gan_parse_options,
	.train = gan_train,
	.load = gan_load,
	.workspace = gan_workspace,
	.score = gan_score,
	.score_batch = gan_score_batch,
	.explain = gan_explain,
};
