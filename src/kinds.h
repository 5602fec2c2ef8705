/*
 * kinds.h
 *	  The registry of detector kinds.  Adding a kind means adding its file
 *	  under src/kinds/ and one X(...) line here.
 */
#ifndef ANOMALY_KINDS_H
#define ANOMALY_KINDS_H

#include "anomaly.h"

#define ANOMALY_KINDS(X) \
	X(anomaly_kind_zscore) \
	X(anomaly_kind_pca) \
	X(anomaly_kind_iforest) \
	X(anomaly_kind_knn) \
	X(anomaly_kind_autoencoder) \
	X(anomaly_kind_vae) \
	X(anomaly_kind_gan) \
	X(anomaly_kind_ensemble)

#define ANOMALY_KIND_DECLARE(sym) extern const AnomalyKind sym;
ANOMALY_KINDS(ANOMALY_KIND_DECLARE)

#endif							/* ANOMALY_KINDS_H */
