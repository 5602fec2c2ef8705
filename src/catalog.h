/*
 * catalog.h
 *	  Reading and writing anomaly_models / anomaly_weights through SPI, always
 *	  schema-qualified with the extension's own schema.
 */
#ifndef ANOMALY_CATALOG_H
#define ANOMALY_CATALOG_H

#include "anomaly.h"

/* What is stored for a model besides its tensors */
typedef struct AnomalyModelRow
{
	const char *name;
	const char *kind;
	int			n_features;
	char	  **feature_names;
	Jsonb	   *options;
	double		threshold;
	double	   *quantiles;		/* ANOMALY_N_QUANTILES */
	Jsonb	   *metrics;
	int64		rows;			/* rows trained on (history) */
	double		seconds;		/* duration of the run (history) */
} AnomalyModelRow;

extern Oid	AnomalyCatalogNamespace(FunctionCallInfo fcinfo);
extern bool AnomalyCatalogIsOurRelation(Oid relid);
extern void AnomalyCatalogCheckAccess(FunctionCallInfo fcinfo, bool write);
extern bool AnomalyCatalogCheckOwner(Oid nsp, const char *name, bool lock);
extern void AnomalyCatalogForgetRelations(void);
extern AnomalyModel *AnomalyCatalogLoad(Oid nsp, const char *name, bool latest);
extern int	AnomalyCatalogStore(Oid nsp, const AnomalyModelRow *row, List *tensors);
extern bool AnomalyCatalogDrop(Oid nsp, const char *name);

#endif							/* ANOMALY_CATALOG_H */
