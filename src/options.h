/*
 * options.h
 *	  Reading training options from jsonb with type and range checks.
 */
#ifndef ANOMALY_OPTIONS_H
#define ANOMALY_OPTIONS_H

#include "anomaly.h"

typedef struct AnomalyOptions
{
	Jsonb	   *in;				/* what the user passed (an object) */
	List	   *used;			/* keys read so far (char *) */
	StringInfoData out;			/* JSON members of the options as used */
} AnomalyOptions;

extern void AnomalyOptionsInit(AnomalyOptions *opts, Jsonb *in);
extern bool AnomalyOptGiven(AnomalyOptions *opts, const char *key);
extern int	AnomalyOptInt(AnomalyOptions *opts, const char *key, int def, int min, int max);
extern int64 AnomalyOptInt64(AnomalyOptions *opts, const char *key, int64 def, int64 min, int64 max);
extern double AnomalyOptReal(AnomalyOptions *opts, const char *key, double def,
							 double min, double max, bool min_exclusive);
extern bool AnomalyOptBool(AnomalyOptions *opts, const char *key, bool def);
extern bool AnomalyOptFlag(AnomalyOptions *opts, const char *key, bool def);
extern const char *AnomalyOptEnum(AnomalyOptions *opts, const char *key, const char *def,
								  const char *const *allowed);
extern int	AnomalyOptIntList(AnomalyOptions *opts, const char *key, int *out, int maxlen,
							  int min, int max);
extern void AnomalyOptRecordIntList(AnomalyOptions *opts, const char *key, const int *v, int n);
extern int	AnomalyOptStringList(AnomalyOptions *opts, const char *key, char **out, int maxlen);
extern void AnomalyOptRecordStringList(AnomalyOptions *opts, const char *key, char *const *v, int n);
extern void AnomalyOptNestedBegin(AnomalyOptions *opts, const char *key, AnomalyOptions *sub);
extern void AnomalyOptNestedEnd(AnomalyOptions *opts, const char *key, AnomalyOptions *sub);
extern void AnomalyOptNestedArrayBegin(AnomalyOptions *opts, const char *key, int n,
									   AnomalyOptions *subs);
extern void AnomalyOptNestedArrayEnd(AnomalyOptions *opts, const char *key, int n,
									 AnomalyOptions *subs);
extern void AnomalyOptCheckUnused(AnomalyOptions *opts);
extern Jsonb *AnomalyOptionsUsed(AnomalyOptions *opts);

#endif							/* ANOMALY_OPTIONS_H */
