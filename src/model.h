/*
 * model.h
 *	  The per-backend model cache and the per-query scoring handle.
 */
#ifndef ANOMALY_MODEL_H
#define ANOMALY_MODEL_H

#include "anomaly.h"
#include "access/htup.h"
#include "convert.h"
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
	double	   *raw;			/* input row as given, n_features */
	float	   *x;				/* standardized input row, n_features */
	float	   *work;			/* kind workspace */
	double	   *contrib;		/* per-feature contributions (explain) */
	bool		want_raw;		/* fill raw from real[] input too (explain) */
	Size		x_cap;
	Size		work_cap;

	/* row input: where the model's features are in the last row type seen */
	Oid			row_typid;
	int32		row_typmod;
	int		   *row_attnum;		/* per feature, 0-based attribute index */
	AnomalyColumnKind *row_kind;	/* per feature */
	Datum	   *row_values;
	bool	   *row_nulls;
	int			row_natts;
} AnomalyHandle;

extern void AnomalyModelCacheInit(void);
extern AnomalyHandle *AnomalyGetHandle(FunctionCallInfo fcinfo, const char *name, int name_len);
extern AnomalyHandle *AnomalyGetHandleText(FunctionCallInfo fcinfo, text *name);
extern const float *AnomalyReadInput(AnomalyHandle *h, ArrayType *features);
extern const float *AnomalyReadRow(AnomalyHandle *h, HeapTupleHeader row);
extern double AnomalyModelScore(AnomalyHandle *h, const float *x);
extern double AnomalyScoreArray(AnomalyHandle *h, ArrayType *features);
extern double AnomalyQuantileThreshold(const AnomalyModel *model, double contamination);
extern void AnomalyModelFinish(AnomalyModel *model);

#endif							/* ANOMALY_MODEL_H */
