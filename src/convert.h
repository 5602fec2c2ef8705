/*
 * convert.h
 *	  Turning SQL values (numbers, booleans) into features.
 */
#ifndef ANOMALY_CONVERT_H
#define ANOMALY_CONVERT_H

#include "postgres.h"

/* How one result column becomes features */
typedef enum AnomalyColumnKind
{
	COL_FLOAT4, COL_FLOAT8, COL_INT2, COL_INT4, COL_INT8, COL_NUMERIC, COL_BOOL
} AnomalyColumnKind;

extern bool AnomalyClassifyType(Oid type, AnomalyColumnKind *kind);
extern double AnomalyConvertDatum(Datum v, AnomalyColumnKind kind);

#endif							/* ANOMALY_CONVERT_H */
