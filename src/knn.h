/*
 * knn.h
 *	  What the kNN kind (src/kinds/knn.c) shares with the ensemble: one
 *	  neighbour search serving several kNN members with the same reference
 *	  set (the default ensemble is kNN at four k, trained on the same rows
 *	  with the same seed, so their reference sets are equal).
 */
#ifndef ANOMALY_KNN_H
#define ANOMALY_KNN_H

#include "anomaly.h"

/* true if a and b are loaded kNN models with equal reference sets */
extern bool AnomalyKnnSameReference(const AnomalyModel *a, const AnomalyModel *b);

/*
 * Scores of one standardized row by n kNN models that share models[0]'s
 * reference set: the distances once, the nearest max(k) once, each model's
 * k and method from them.  work: the workspace of the model with the
 * largest k.
 */
extern void AnomalyKnnScoreShared(const AnomalyModel *const *models, int n,
								  const float *x, float *work, double *out);

#endif							/* ANOMALY_KNN_H */
