/*
 * nn.h
 *	  A small dense neural-network module shared by the deep kinds
 *	  (autoencoder, vae, gan): layers, activations, forward and backward
 *	  passes on OpenBLAS, Adam, and storing layers as model tensors.
 */
#ifndef ANOMALY_NN_H
#define ANOMALY_NN_H

#include "anomaly.h"
#include "common/pg_prng.h"

#define NN_MAX_LAYERS	16		/* dense layers in one network */
#define NN_MAX_WIDTH	4096	/* units in one layer */
#define NN_ROW_KERNEL_MAX	(1024 * 1024)	/* largest in x out given a transposed copy */
#define NN_LEAKY_SLOPE	0.2f	/* slope of leaky_relu below zero */

/*
 * Activations.  The numeric values are stored with a model (tensor
 * prefix.act), so they must never be renumbered; add new ones at the end.
 */
typedef enum NnActivation
{
	NN_IDENTITY = 0,
	NN_RELU = 1,
	NN_LEAKY_RELU = 2,
	NN_TANH = 3,
	NN_SIGMOID = 4,
	NN_N_ACTIVATIONS
} NnActivation;

/* names accepted by the "activation" options (NULL-terminated, for AnomalyOptEnum) */
extern const char *const nn_activation_names[];

/* One dense layer: out = act(W in + b), W is out x in, row-major */
typedef struct NnLayer
{
	int			in;
	int			out;
	NnActivation act;
	float	   *W;
	float	   *b;
	float	   *WT;				/* W transposed (in x out) for NnForwardRow; loaded nets */
	/* training only (NULL in a loaded network) */
	float	   *gW;				/* gradients of the last backward pass */
	float	   *gb;
	float	   *mW;				/* Adam first and second moments */
	float	   *vW;
	float	   *mb;
	float	   *vb;
} NnLayer;

/* A stack of dense layers */
typedef struct NnNet
{
	int			nlayers;
	NnLayer		layers[NN_MAX_LAYERS];
	int			in;				/* input width */
	int			out;			/* output width */
	int			max_width;		/* widest of input and layer outputs */
	/* training buffers (NnPrepareTraining) */
	int			batch_cap;
	float	   *A[NN_MAX_LAYERS];	/* A[l]: output of layer l, batch_cap x layers[l].out */
	float	   *delta[2];		/* gradient ping-pong, batch_cap x max_width */
	int			adam_t;			/* Adam steps taken */
} NnNet;

/* Adam settings (weight decay is decoupled, AdamW-style, weights only) */
typedef struct NnAdam
{
	float		lr;
	float		beta1;
	float		beta2;
	float		eps;
	float		weight_decay;
} NnAdam;

/*
 * The minibatch training loop shared by the deep kinds (NnTrain): a seeded
 * validation split, shuffled minibatches, early stopping on the validation
 * loss with the best parameters restored, divergence detection, and the
 * metrics every deep kind reports.  The kind supplies the update and the
 * validation loss as callbacks.
 */
#define NN_HISTORY		10		/* loss history entries reported */
#define NN_ROW_BUDGET	2000000.0	/* rows seen by the default epochs */
#define NN_MIN_EPOCHS	10
#define NN_MAX_EPOCHS	200		/* default epochs for small tables */
#define NN_DEFAULT_TRIM	0.3		/* default of the option trim (see nn.c) */
#define NN_TRIM_RAMP	0.25	/* share of the epochs over which trimming ramps up */

/* how the rows of a minibatch with the largest losses are treated (option robust_loss) */
#define NN_ROBUST_NONE		0	/* plain mean loss */
#define NN_ROBUST_TRIMMED	1	/* left out of the gradient */
#define NN_ROBUST_HUBER		2	/* their gradient capped at the threshold's */

typedef struct NnTrainer
{
	/* set by the caller */
	const char *what;			/* kind name, for messages */
	int			n;				/* rows of X */
	int			d;				/* columns of X */
	const float *X;
	int			epochs;			/* 0: NN_ROW_BUDGET / rows, within [NN_MIN_EPOCHS, NN_MAX_EPOCHS] */
	int			batch_size;
	int			patience;
	double		validation_fraction;
	double		trim;			/* share of rows left out of validation losses */
	double	   *trim_now;		/* if set, the kind's minibatch trim, ramped up by NnTrain */
	pg_prng_state *rng;
	void	   *arg;
	/* one update on B rows (B x d); returns the summed training loss of the rows */
	double		(*step) (void *arg, int B, const float *Xb);
	/* validation loss of each of n rows (n x d) into loss[] */
	void		(*validate) (void *arg, int n, const float *Xv, double *loss);
	/* remember the current parameters as the best; put the best back */
	void		(*keep_best) (void *arg);
	void		(*restore_best) (void *arg);
	/* results */
	int			batch;			/* minibatch rows used */
	int			n_val;
	int			epochs_planned;
	int			epochs_run;
	int			best_epoch;
	double		train_loss;		/* mean per row, last epoch */
	double		best_val;
	double	   *history;		/* train loss per epoch */
} NnTrainer;

/* The training options every deep kind reads (NnReadOptions) */
typedef struct NnOptions
{
	NnActivation activation;
	int			epochs;			/* 0 when not given: chosen by NnTrain */
	int			batch_size;
	double		learning_rate;
	double		weight_decay;
	double		validation_fraction;
	int			patience;
	double		trim;			/* share of each minibatch treated as suspect */
	int			robust;			/* NN_ROBUST_* */
} NnOptions;

struct AnomalyOptions;
extern void NnReadOptions(struct AnomalyOptions *opts, NnOptions *o, const char *default_activation);
extern void NnTrainerInit(NnTrainer *t, const char *what, const AnomalyTrainData *data,
						  const NnOptions *o, pg_prng_state *rng, void *arg);
extern int	NnTrainBatch(int n, double validation_fraction, int batch_size);
extern double NnRowWeights(const double *loss, int B, double trim, int robust, float *w);
extern void NnTrain(NnTrainer *t);
extern void NnTrainMetrics(const NnTrainer *t, StringInfo metrics);

extern NnActivation NnActivationFromName(const char *name);
extern NnNet *NnCreate(int nlayers, const int *widths, const NnActivation *acts);
extern NnNet *NnCreateMLP(int in, int nhidden, const int *hidden, int out,
						  NnActivation hidden_act, NnActivation out_act);
extern void NnInit(NnNet *net, pg_prng_state *rng);
extern void NnPrepareTraining(NnNet *net, int batch_cap);
extern const float *NnForward(NnNet *net, int B, const float *X);
extern void NnBackward(NnNet *net, int B, const float *X, const float *dOut, float *dX);
extern void NnAdamInit(NnAdam *opt, double lr, double weight_decay);
extern void NnAdamStep(NnNet *net, const NnAdam *opt);
extern void NnAdamReset(NnNet *net);
extern void NnCopyParams(NnNet *dst, const NnNet *src);
extern Size NnRowWorkspace(const NnNet *net);
extern void NnForwardRow(const NnNet *net, const float *x, float *y, float *work);
extern void NnPredict(const NnNet *net, int n, const float *X, float *Y);
extern bool NnAllFinite(const NnNet *net);
extern void NnSave(const NnNet *net, AnomalyTrainResult *result, const char *prefix);
extern NnNet *NnLoad(const AnomalyModel *model, const char *prefix, int in, int out);
extern double NnRandNormal(pg_prng_state *rng);
extern void NnShuffle(int *idx, int n, pg_prng_state *rng);

#endif							/* ANOMALY_NN_H */
