/*
 * train.h
 *	  Pieces of the training pipeline that anomaly_import() reuses: reading a
 *	  query's rows and the distribution of a model's scores.
 */
#ifndef ANOMALY_TRAIN_H
#define ANOMALY_TRAIN_H

#include "anomaly.h"

extern int	AnomalyReadQueryRows(const char *name, const char *query, int d, int64 max_rows,
								 uint64 seed, float **X, char ***names, int64 *rows_read);
extern double *AnomalyScoreDistribution(AnomalyModel *model, int n, const float *X, double *quantiles);

#endif							/* ANOMALY_TRAIN_H */
