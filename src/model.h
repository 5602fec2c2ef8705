/*
 * model.h
 *	  The per-backend model cache and the per-query scoring handle.
 */
#ifndef ANOMALY_MODEL_H
#define ANOMALY_MODEL_H

#include "anomaly.h"
#include "utils/array.h"

/*
 * Per-query state of a scoring function, kept in fn_extra: the model it last
 * used, the cache generation it was valid for, and scratch buffers sized for
 * that model so that scoring a row allocates nothing.
 */
typedef struct AnomalyHandle
{
	char	   *name;			/* model name the handle resolved */
	int			name_len;
	AnomalyModel *model;
	uint64		generation;		/* cache generation when resolved */
	float	   *x;				/* standardized input row, n_features */
	float	   *work;			/* kind workspace */
	double	   *contrib;		/* per-feature contributions (explain) */
	Size		x_cap;
	Size		work_cap;
} AnomalyHandle;

extern void AnomalyModelCacheInit(void);
extern AnomalyHandle *AnomalyGetHandle(FunctionCallInfo fcinfo, const char *name, int name_len);
extern AnomalyHandle *AnomalyGetHandleText(FunctionCallInfo fcinfo, text *name);
extern const float *AnomalyReadInput(AnomalyHandle *h, ArrayType *features);
extern double AnomalyModelScore(AnomalyHandle *h, const float *x);
extern double AnomalyQuantileThreshold(const AnomalyModel *model, double contamination);
extern void AnomalyModelFinish(AnomalyModel *model);
extern void AnomalyCheckFinite(const float *x, int n, const char *what);

#endif							/* ANOMALY_MODEL_H */
