/*
 * metrics.h
 *	  Evaluation and threshold helpers shared with training: the empirical
 *	  quantile used for thresholds, and the peaks-over-threshold (SPOT) fit.
 */
#ifndef ANOMALY_METRICS_H
#define ANOMALY_METRICS_H

#include "postgres.h"

/* Defaults of the POT threshold (Siffer et al., KDD 2017) */
#define ANOMALY_POT_DEFAULT_RISK	1e-4
#define ANOMALY_POT_DEFAULT_LEVEL	0.98
#define ANOMALY_POT_MIN_PEAKS		3	/* fewer: no fit at all (error) */
#define ANOMALY_POT_MLE_MIN_PEAKS	10	/* fewer: method of moments */

/* How the generalized Pareto tail was fitted */
typedef enum AnomalyPotMethod
{
	ANOMALY_POT_MLE,			/* Grimshaw's maximum likelihood, shape != 0 */
	ANOMALY_POT_EXPONENTIAL,	/* shape 0 had the highest likelihood */
	ANOMALY_POT_MOMENTS			/* method of moments (few peaks, or no usable MLE) */
} AnomalyPotMethod;

/* The result of a POT fit */
typedef struct AnomalyPotFit
{
	double		threshold;		/* z_q: exceeded with probability risk */
	double		initial;		/* t: the level quantile of the scores */
	int			peaks;			/* scores above t */
	int			n;				/* scores */
	double		gamma;			/* GPD shape (> 0 heavy tail, < 0 bounded) */
	double		sigma;			/* GPD scale */
	AnomalyPotMethod method;
} AnomalyPotFit;

extern double AnomalySortedQuantile(const double *sorted, int64 n, double p);
extern void AnomalyPotFitSorted(const double *sorted_scores, int n, double risk, double level,
								AnomalyPotFit *fit);
extern double AnomalyPotThreshold(const double *sorted_scores, int n, double risk, double level);
extern const char *AnomalyPotMethodName(AnomalyPotMethod method);

#endif							/* ANOMALY_METRICS_H */
