/*
 * anomaly.h
 *	  Types shared by every part of the extension: the in-memory model, its
 *	  tensors, and the interface each detector kind implements.
 *
 * A model is decoded once per backend from anomaly_models/anomaly_weights
 * (see model.c) into an AnomalyModel: the scaler, the kind and a list of
 * float tensors.  Kinds see rows already standardized with the training
 * statistics, so train/score/explain work in one space and the scaler is
 * applied in exactly one place (AnomalyModelPrepareInput).
 */
#ifndef ANOMALY_H
#define ANOMALY_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#define ANOMALY_MAX_FEATURES	16384	/* columns in a row */
#define ANOMALY_MAX_NDIM		4	/* dimensions of one tensor */
#define ANOMALY_MAX_NAME_BYTES	1024	/* model name; the catalog's btree keys hold ~2700 */
#define ANOMALY_N_QUANTILES		1001	/* training-score quantiles kept */
#define ANOMALY_DEFAULT_SEED	42

struct AnomalyOptions;

/* One named float tensor of a model (weights, scaler statistics, trees...) */
typedef struct AnomalyTensor
{
	char	   *name;
	int			ndim;
	int			shape[ANOMALY_MAX_NDIM];
	int64		size;			/* product of shape */
	float	   *data;
} AnomalyTensor;

/* What the training framework hands a kind: standardized rows */
typedef struct AnomalyTrainData
{
	int			n;				/* rows */
	int			d;				/* features */
	const float *X;				/* n x d, row-major, standardized */
	uint64		seed;
} AnomalyTrainData;

/* What a kind hands back: tensors to store and metrics to report */
typedef struct AnomalyTrainResult
{
	List	   *tensors;		/* of AnomalyTensor * */
	StringInfoData metrics;		/* JSON members ("k": v, ...) without braces */
} AnomalyTrainResult;

struct AnomalyModel;

/*
 * The interface of one detector kind.  Every callback gets rows in the
 * standardized space.  "work" is a scratch buffer of workspace() floats,
 * allocated once per query (score path) so that scoring does not allocate.
 */
typedef struct AnomalyKind
{
	const char *name;
	const char *description;

	/* read and validate options (before any data is read); returns private struct */
	void	   *(*parse_options) (struct AnomalyOptions *opts, int d);
	/* train on data; fill result->tensors and metrics */
	void		(*train) (const AnomalyTrainData *data, void *options, AnomalyTrainResult *result);
	/* decode tensors into model->state, checking every shape (corruption) */
	void		(*load) (struct AnomalyModel *model);
	/* floats of scratch space score/explain need */
	Size		(*workspace) (const struct AnomalyModel *model);
	/* score of one standardized row; higher is more anomalous */
	double		(*score) (const struct AnomalyModel *model, const float *x, float *work);
	/* scores of n rows (optional; falls back to score) */
	void		(*score_batch) (const struct AnomalyModel *model, int n, const float *X, double *out);
	/* non-negative per-feature contributions of one row; returns the score */
	double		(*explain) (const struct AnomalyModel *model, const float *x, float *work, double *contrib);

	/*
	 * score of one row of real values as the user gave them (optional, the
	 * fast path of real[] input): not standardized and not checked.  Must
	 * equal score() of the standardized row bit for bit, and return a
	 * non-finite value when the row has one (the caller then takes the
	 * checked path, which reports it).
	 */
	double		(*score_real) (const struct AnomalyModel *model, const float *v, float *work);
} AnomalyKind;

/* A decoded model, living in its own memory context */
typedef struct AnomalyModel
{
	char	   *name;
	const AnomalyKind *kind;
	int			n_features;
	char	  **feature_names;
	double		threshold;
	double	   *quantiles;		/* ANOMALY_N_QUANTILES training-score quantiles */
	float	   *center;			/* scaler: x_std = (x - center) * inv_scale */
	float	   *inv_scale;
	List	   *tensors;		/* of AnomalyTensor * */
	void	   *state;			/* kind-specific, set by load() */
	Size		workspace;		/* floats, from kind->workspace() */
	MemoryContext mcxt;
} AnomalyModel;

/* kinds.c: the registry */
extern const AnomalyKind *AnomalyFindKind(const char *name, bool missing_ok);
extern int	AnomalyKindCount(void);
extern const AnomalyKind *AnomalyKindAt(int i);

/* tensor.c: building and reading tensors */
extern AnomalyTensor *AnomalyTensorAdd(AnomalyTrainResult *result, const char *name,
									   int ndim, const int *shape, const float *data);
extern AnomalyTensor *AnomalyTensorAdd1(AnomalyTrainResult *result, const char *name,
										int n, const float *data);
extern AnomalyTensor *AnomalyTensorAdd2(AnomalyTrainResult *result, const char *name,
										int rows, int cols, const float *data);
extern float *AnomalyModelTensor(const AnomalyModel *model, const char *name,
								 int ndim, const int *shape);
extern float *AnomalyModelTensor1(const AnomalyModel *model, const char *name, int n);
extern float *AnomalyModelTensor2(const AnomalyModel *model, const char *name, int rows, int cols);
extern AnomalyTensor *AnomalyModelFindTensor(const AnomalyModel *model, const char *name);
extern void AnomalyCorrupt(const AnomalyModel *model, const char *fmt,...) pg_attribute_printf(2, 3) pg_attribute_noreturn();

/*
 * Memory for the per-row kernels' operands, aligned to a cache line so that
 * no vector load of it straddles two lines (palloc aligns to 8 bytes only).
 * Freed with its context, never with pfree.
 */
#define ANOMALY_CACHE_LINE 64
static inline void *
AnomalyAllocAligned(MemoryContext cxt, Size size)
{
	char	   *p = MemoryContextAllocHuge(cxt, size + ANOMALY_CACHE_LINE - 1);

	return (void *) TYPEALIGN(ANOMALY_CACHE_LINE, p);
}

/* n floats rounded up to whole cache lines: offsets of scratch buffers */
#define ANOMALY_ALIGN_FLOATS(n) \
	((Size) TYPEALIGN(ANOMALY_CACHE_LINE / sizeof(float), (Size) (n)))

/* anomaly.c: qsort comparator of doubles, ascending */
extern int	AnomalyCompareDouble(const void *a, const void *b);

/* anomaly.c: settings */
extern char *anomaly_default_model;

/* json helpers (anomaly.c) */
extern void AnomalyJsonNumber(StringInfo buf, double v);
extern void AnomalyJsonMember(StringInfo buf, const char *key);

#endif							/* ANOMALY_H */
