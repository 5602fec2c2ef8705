/*
 * vae.c
 *	  The variational autoencoder detector (Kingma and Welling, 2014;
 *	  An and Cho, 2015, for its use in anomaly detection).
 *
 * Networks.  The encoder maps a standardized row x (d features) through the
 * hidden layers to 2L outputs, the mean mu and the log-variance lv of a
 * diagonal Gaussian q(z|x) over an L-dimensional code (L = latent_dim); the
 * decoder maps a code through the hidden layers in reverse order back to d
 * outputs.  Defaults: one hidden layer of w = clamp(d, 8, 256) units on each
 * side, L = clamp(d/2, 1, 64), tanh, as for the autoencoder.
 *
 * Training minimizes, per row, the squared reconstruction error of a code
 * sampled with the reparameterization z = mu + exp(lv/2) eps, eps ~ N(0, I),
 * plus beta times KL(q(z|x) || N(0, I)) =
 * 1/2 sum_k (mu_k^2 + exp(lv_k) - 1 - lv_k); beta = 1 is the usual VAE
 * bound (with the squared error as the reconstruction term), beta > 1 the
 * beta-VAE of Higgins et al. (2017).  The gradient reaches the encoder
 * through z: dL/dmu = dL/dz + beta mu, dL/dlv = dL/dz eps exp(lv/2)/2 +
 * beta (exp(lv) - 1)/2.  lv is clamped to [-10, 10] before the exponential
 * (with no gradient through the clamp) so that a stray unit cannot overflow.
 * The noise comes from the model's seeded pg_prng, so training is
 * reproducible bit for bit; the loop (validation split, early stopping on
 * the validation score, Adam, and the trimmed loss that keeps the worst
 * rows of each minibatch out of the gradient) is NnTrain in nn.c.
 *
 * Score, deterministic: the row is encoded, decoded from its mean code
 * (no sampling), and
 *     score = sum_j (x_j - dec(mu)_j)^2 + beta KL(q(z|x) || N(0, I)),
 * the reconstruction error of the mean code plus the KL term.  The KL term
 * adds how unusual the row's code is to how badly it is reconstructed.
 * Explanation: feature j gets its squared error plus a share of the KL term
 * proportional to that error (the KL term has no per-feature form), so the
 * contributions are non-negative and add up to the score.
 *
 * Tensors: vae.enc.* and vae.dec.* (nn.c), vae.beta.
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "nn.h"
#include "options.h"
#include "simd.h"

#define VAE_MAX_HIDDEN	(NN_MAX_LAYERS - 1)
#define VAE_MAX_LOGVAR	10.0f

typedef struct VaeOptions
{
	int			nhidden;
	int			hidden[VAE_MAX_HIDDEN];
	int			latent;
	double		beta;
	NnOptions	nn;
} VaeOptions;

typedef struct VaeState
{
	NnNet	   *enc;
	NnNet	   *dec;
	int			latent;
	float		beta;
} VaeState;

/*
 * Read the VAE's options: hidden (encoder layers; the decoder mirrors them),
 * latent_dim, beta, and the common training options.
 */
static void *
vae_parse_options(AnomalyOptions *opts, int d)
{
	VaeOptions *o = palloc0(sizeof(VaeOptions));

	o->nhidden = AnomalyOptIntList(opts, "hidden", o->hidden, VAE_MAX_HIDDEN / 2, 1, NN_MAX_WIDTH);
	if (o->nhidden < 0)
	{
		o->nhidden = 1;
		o->hidden[0] = Min(Max(d, 8), 256);
		AnomalyOptRecordIntList(opts, "hidden", o->hidden, o->nhidden);
	}
	o->latent = AnomalyOptInt(opts, "latent_dim", Min(Max(d / 2, 1), 64), 1, NN_MAX_WIDTH / 2);
	o->beta = AnomalyOptReal(opts, "beta", 1.0, 0.0, 1000.0, false);
	NnReadOptions(opts, &o->nn, "tanh");
	return o;
}

/* The encoder: d -> hidden... -> 2L (identity) */
static NnNet *
VaeEncoder(const VaeOptions *o, int d)
{
	return NnCreateMLP(d, o->nhidden, o->hidden, 2 * o->latent, o->nn.activation, NN_IDENTITY);
}

/* The decoder: L -> hidden reversed... -> d (identity) */
static NnNet *
VaeDecoder(const VaeOptions *o, int d)
{
	int			rev[VAE_MAX_HIDDEN];

	for (int i = 0; i < o->nhidden; i++)
		rev[i] = o->hidden[o->nhidden - 1 - i];
	return NnCreateMLP(o->latent, o->nhidden, rev, d, o->nn.activation, NN_IDENTITY);
}

/* lv clamped for the exponential */
static inline float
VaeClampLogvar(float lv)
{
	return lv > VAE_MAX_LOGVAR ? VAE_MAX_LOGVAR : (lv < -VAE_MAX_LOGVAR ? -VAE_MAX_LOGVAR : lv);
}

/*
 * KL(N(mu, exp(lv)) || N(0, I)) of one code; h holds mu then lv.
 */
static double
VaeKl(const float *h, int L)
{
	double		kl = 0.0;

	for (int k = 0; k < L; k++)
	{
		double		mu = h[k];
		double		lv = VaeClampLogvar(h[L + k]);

		kl += 0.5 * (mu * mu + exp(lv) - 1.0 - lv);
	}
	return kl;
}

/* Training state handed to the NnTrain callbacks */
typedef struct VaeTrain
{
	NnNet	   *enc;
	NnNet	   *dec;
	NnNet	   *best_enc;
	NnNet	   *best_dec;
	NnAdam		adam;
	int			L;
	float		beta;
	pg_prng_state *rng;
	float	   *eps;			/* batch x L */
	float	   *Z;				/* batch x L */
	float	   *dR;				/* batch x d */
	float	   *dZ;				/* batch x L */
	float	   *dH;				/* batch x 2L */
	double	   *rowloss;		/* batch */
	float	   *weight;			/* batch */
	double		trim;
	int			robust;
} VaeTrain;

/*
 * One Adam step of both networks on B rows; returns the summed loss
 * (squared error of the sampled reconstruction plus beta KL).
 */
static double
VaeStep(void *arg, int B, const float *Xb)
{
	VaeTrain   *t = arg;
	int			L = t->L;
	int			d = t->enc->in;
	const float *H;
	const float *R;
	float		inv;
	double		loss = 0.0;

	H = NnForward(t->enc, B, Xb);
	for (int r = 0; r < B; r++)
	{
		const float *h = H + (Size) r * 2 * L;

		for (int k = 0; k < L; k++)
		{
			float		e = (float) NnRandNormal(t->rng);

			t->eps[(Size) r * L + k] = e;
			t->Z[(Size) r * L + k] = h[k] + expf(0.5f * VaeClampLogvar(h[L + k])) * e;
		}
		t->rowloss[r] = t->beta * VaeKl(h, L);
	}
	R = NnForward(t->dec, B, t->Z);
	for (int r = 0; r < B; r++)
	{
		double		s = 0.0;

		for (int j = 0; j < d; j++)
		{
			float		e = R[(Size) r * d + j] - Xb[(Size) r * d + j];

			s += (double) e * e;
		}
		t->rowloss[r] += s;
		loss += t->rowloss[r];
	}
	inv = (float) (1.0 / NnRowWeights(t->rowloss, B, t->trim, t->robust, t->weight));
	for (int r = 0; r < B; r++)
	{
		float		c = t->weight[r] * 2.0f * inv;

		for (int j = 0; j < d; j++)
		{
			Size		k = (Size) r * d + j;

			t->dR[k] = c * (R[k] - Xb[k]);
		}
	}
	NnBackward(t->dec, B, t->Z, t->dR, t->dZ);
	for (int r = 0; r < B; r++)
	{
		const float *h = H + (Size) r * 2 * L;
		float	   *dh = t->dH + (Size) r * 2 * L;
		float		kb = t->weight[r] * t->beta * inv;

		for (int k = 0; k < L; k++)
		{
			float		dz = t->dZ[(Size) r * L + k];
			float		lv = h[L + k];
			float		lvc = VaeClampLogvar(lv);
			float		sd = expf(0.5f * lvc);

			dh[k] = dz + kb * h[k];
			dh[L + k] = (lv == lvc) ?
				dz * t->eps[(Size) r * L + k] * 0.5f * sd + kb * 0.5f * (sd * sd - 1.0f) :
				0.0f;
		}
	}
	NnBackward(t->enc, B, Xb, t->dH, NULL);
	NnAdamStep(t->dec, &t->adam);
	NnAdamStep(t->enc, &t->adam);
	return loss;
}

/*
 * The deterministic scores of n rows into out (encode, decode the mean
 * code, squared error plus beta KL); per-feature errors into err (n x d) if
 * not NULL.
 */
static void
VaeScoreRows(const NnNet *enc, const NnNet *dec, int L, float beta,
			 int n, const float *X, double *out)
{
	int			d = enc->in;
	float	   *H = palloc_extended((Size) n * 2 * L * sizeof(float), MCXT_ALLOC_HUGE);
	float	   *M = palloc_extended((Size) n * L * sizeof(float), MCXT_ALLOC_HUGE);
	float	   *R = palloc_extended((Size) n * d * sizeof(float), MCXT_ALLOC_HUGE);

	NnPredict(enc, n, X, H);
	for (int r = 0; r < n; r++)
		memcpy(M + (Size) r * L, H + (Size) r * 2 * L, L * sizeof(float));
	NnPredict(dec, n, M, R);
	for (int r = 0; r < n; r++)
	{
		double		s = beta * VaeKl(H + (Size) r * 2 * L, L);

		for (int j = 0; j < d; j++)
		{
			double		e = (double) X[(Size) r * d + j] - R[(Size) r * d + j];

			s += e * e;
		}
		out[r] = s;
	}
	pfree(H);
	pfree(M);
	pfree(R);
}

/*
 * Deterministic score of each of n validation rows.
 */
static void
VaeValidate(void *arg, int n, const float *Xv, double *loss)
{
	VaeTrain   *t = arg;

	VaeScoreRows(t->enc, t->dec, t->L, t->beta, n, Xv, loss);
}

static void
VaeKeepBest(void *arg)
{
	VaeTrain   *t = arg;

	NnCopyParams(t->best_enc, t->enc);
	NnCopyParams(t->best_dec, t->dec);
}

static void
VaeRestoreBest(void *arg)
{
	VaeTrain   *t = arg;

	NnCopyParams(t->enc, t->best_enc);
	NnCopyParams(t->dec, t->best_dec);
}

/*
 * Train the VAE (see the file header).
 */
static void
vae_train(const AnomalyTrainData *data, void *options, AnomalyTrainResult *result)
{
	VaeOptions *o = options;
	int			d = data->d;
	int			L = o->latent;
	pg_prng_state rng;
	VaeTrain	vt;
	NnTrainer	tr;
	int			B = NnTrainBatch(data->n, o->nn.validation_fraction, o->nn.batch_size);
	float		beta = (float) o->beta;

	pg_prng_seed(&rng, data->seed);
	vt.enc = VaeEncoder(o, d);
	vt.dec = VaeDecoder(o, d);
	NnInit(vt.enc, &rng);
	NnInit(vt.dec, &rng);
	NnPrepareTraining(vt.enc, B);
	NnPrepareTraining(vt.dec, B);
	vt.best_enc = VaeEncoder(o, d);
	vt.best_dec = VaeDecoder(o, d);
	NnAdamInit(&vt.adam, o->nn.learning_rate, o->nn.weight_decay);
	vt.L = L;
	vt.beta = beta;
	vt.rng = &rng;
	vt.eps = palloc((Size) B * L * sizeof(float));
	vt.Z = palloc((Size) B * L * sizeof(float));
	vt.dZ = palloc((Size) B * L * sizeof(float));
	vt.dH = palloc((Size) B * 2 * L * sizeof(float));
	vt.dR = palloc((Size) B * d * sizeof(float));
	vt.rowloss = palloc(B * sizeof(double));
	vt.weight = palloc(B * sizeof(float));
	vt.trim = o->nn.trim;
	vt.robust = o->nn.robust;

	NnTrainerInit(&tr, "vae", data, &o->nn, &rng, &vt);
	tr.trim_now = &vt.trim;
	tr.step = VaeStep;
	tr.validate = VaeValidate;
	tr.keep_best = VaeKeepBest;
	tr.restore_best = VaeRestoreBest;
	NnTrain(&tr);

	NnSave(vt.enc, result, "vae.enc");
	NnSave(vt.dec, result, "vae.dec");
	AnomalyTensorAdd1(result, "vae.beta", 1, &beta);
	NnTrainMetrics(&tr, &result->metrics);
}

/*
 * Rebuild both networks; the latent width comes from the decoder's input.
 */
static void
vae_load(AnomalyModel *model)
{
	VaeState   *st = palloc(sizeof(VaeState));
	int			d = model->n_features;
	AnomalyTensor *w0 = AnomalyModelFindTensor(model, "vae.dec.w0");

	if (w0 == NULL || w0->ndim != 2 || w0->shape[1] < 1 || w0->shape[1] > NN_MAX_WIDTH / 2)
		AnomalyCorrupt(model, "tensor \"vae.dec.w0\" is missing or has a bad shape");
	st->latent = w0->shape[1];
	st->enc = NnLoad(model, "vae.enc", d, 2 * st->latent);
	st->dec = NnLoad(model, "vae.dec", st->latent, d);
	st->beta = *AnomalyModelTensor1(model, "vae.beta", 1);
	if (!(st->beta >= 0.0f) || isinf(st->beta))
		AnomalyCorrupt(model, "vae.beta is not a non-negative number");
	model->state = st;
}

/*
 * Scratch floats: encoder output, reconstruction, and the larger of the two
 * networks' row workspaces.
 */
static Size
vae_workspace(const AnomalyModel *model)
{
	const VaeState *st = model->state;

	return ANOMALY_ALIGN_FLOATS(2 * st->latent) + ANOMALY_ALIGN_FLOATS(model->n_features) +
		Max(NnRowWorkspace(st->enc), NnRowWorkspace(st->dec));
}

/*
 * Score of one row (see the file header); per-feature contributions into
 * contrib if not NULL.  Allocates nothing.
 */
static double
VaeRow(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	const VaeState *st = model->state;
	int			d = model->n_features;
	int			L = st->latent;
	float	   *h = work;
	float	   *rec = work + ANOMALY_ALIGN_FLOATS(2 * L);
	float	   *scratch = rec + ANOMALY_ALIGN_FLOATS(d);
	double		sse = 0.0;
	double		kl;

	NnForwardRow(st->enc, x, h, scratch);
	NnForwardRow(st->dec, h, rec, scratch); /* the mean code: first L of h */
	kl = st->beta * VaeKl(h, L);
	if (contrib == NULL)
		sse = anomaly_kernels.sqdist(x, rec, d);	/* the same sum, vectorized */
	else
		for (int j = 0; j < d; j++)
		{
			double		e = (double) x[j] - rec[j];

			contrib[j] = e * e;
			sse += e * e;
		}
	if (contrib)
	{
		for (int j = 0; j < d; j++)
			contrib[j] += (sse > 0.0) ? kl * contrib[j] / sse : kl / d;
	}
	return sse + kl;
}

static double
vae_score(const AnomalyModel *model, const float *x, float *work)
{
	return VaeRow(model, x, work, NULL);
}

static double
vae_explain(const AnomalyModel *model, const float *x, float *work, double *contrib)
{
	return VaeRow(model, x, work, contrib);
}

static void
vae_score_batch(const AnomalyModel *model, int n, const float *X, double *out)
{
	const VaeState *st = model->state;

	VaeScoreRows(st->enc, st->dec, st->latent, st->beta, n, X, out);
}

const AnomalyKind anomaly_kind_vae = {
	.name = "vae",
	.description = "variational autoencoder; score is the reconstruction error of the mean code plus the KL term",
	.parse_options = vae_parse_options,
	.train = vae_train,
	.load = vae_load,
	.workspace = vae_workspace,
	.score = vae_score,
	.score_batch = vae_score_batch,
	.explain = vae_explain,
};
