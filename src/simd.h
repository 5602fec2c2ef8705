/*
 * simd.h
 *	  The per-row arithmetic kernels of the scoring path, with versions for
 *	  CPUs with AVX2 and (the dense layer) AVX-512 chosen at load time.
 *
 * See simd.c for why and how.
 */
#ifndef ANOMALY_SIMD_H
#define ANOMALY_SIMD_H

#include "postgres.h"

typedef struct AnomalyKernels
{
	/* y[o] = act(b[o] + sum_j x[j] WT[j out + o]), o < out (WT is in x out) */
	void		(*dense_row) (const float *WT, const float *b, int in, int out, int act,
							  const float *x, float *y);
	/* v[i] = act(v[i]) for an NnActivation code */
	void		(*activate) (int act, float *v, Size n);
	/* sum of ((x - loc) inv)^2, the squares summed in double */
	double		(*zsumsq) (const float *x, const float *loc, const float *inv, int n);
	/* zsumsq of x = (v - center) scale, computed as if x were stored */
	double		(*zsumsq_raw) (const float *v, const float *center, const float *scale,
							   const float *loc, const float *inv, int n);
	/* sum of (a - b)^2 in double */
	double		(*sqdist) (const float *a, const float *b, int n);
	/*
	 * x = (v - center) inv and raw = v (as double; raw may be NULL); false
	 * if some v is not finite
	 */
	bool		(*standardize) (const float *v, const float *center, const float *inv,
								float *x, double *raw, int n);
	/* y = a + c */
	void		(*add_const) (const float *a, float c, float *y, int n);
	/* the first j < n with v[j] < t, or n (NaN is never below) */
	int			(*first_below) (const float *v, int n, float t);
	const char *name;
} AnomalyKernels;

extern AnomalyKernels anomaly_kernels;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ANOMALY_HAVE_AVX2_KERNELS 1
#define ANOMALY_AVX2_TARGET __attribute__((target("avx2,fma")))
/* the dense-layer kernel only; see simd_nn.c */
#define ANOMALY_HAVE_AVX512_KERNELS 1
#define ANOMALY_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
#endif

/* simd_nn.c */
extern void AnomalyDenseRowGeneric(const float *WT, const float *b, int in, int out, int act,
								   const float *x, float *y);
extern void AnomalyActivateGeneric(int act, float *v, Size n);
#ifdef ANOMALY_HAVE_AVX2_KERNELS
extern void AnomalyDenseRowAvx2(const float *WT, const float *b, int in, int out, int act,
								const float *x, float *y);
extern void AnomalyActivateAvx2(int act, float *v, Size n);
#endif
#ifdef ANOMALY_HAVE_AVX512_KERNELS
extern void AnomalyDenseRowAvx512(const float *WT, const float *b, int in, int out, int act,
								  const float *x, float *y);
#endif



/* values of anomaly.simd */
typedef enum AnomalySimdLevel
{
	ANOMALY_SIMD_AUTO,			/* the widest the CPU has */
	ANOMALY_SIMD_GENERIC,		/* the baseline kernels */
	ANOMALY_SIMD_AVX2,			/* at most AVX2 */
} AnomalySimdLevel;

extern void AnomalySimdSelect(AnomalySimdLevel level);

#endif							/* ANOMALY_SIMD_H */
