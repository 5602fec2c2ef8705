/*
 * blas.h: the BLAS routines the extension calls, loaded on first use.
 *
 * Training, batch scoring, and the kinds whose rows meet a large matrix
 * (knn's reference set, pca) multiply matrices; scoring one row of the
 * other kinds runs the kernels of simd.h.  OpenBLAS is therefore opened with dlopen() the
 * first time a matrix product is needed rather than linked into anomaly.so:
 * every parallel worker of a session that has loaded anomaly.so loads it
 * again, and OpenBLAS (with libgfortran) costs about 7 ms of CPU to load
 * and initialize -- more than a parallel worker's share of many scoring
 * queries.  The same reasoning makes PostgreSQL load llvmjit.so only when a
 * query is compiled.
 */
#ifndef ANOMALY_BLAS_H
#define ANOMALY_BLAS_H

#include <cblas.h>				/* prototypes and enums only */

typedef struct AnomalyBlas
{
	__typeof__(cblas_sgemm) *sgemm;
	__typeof__(cblas_sgemv) *sgemv;
	__typeof__(cblas_dsyrk) *dsyrk;
	/* LAPACK's symmetric eigen-solver (Fortran calling convention) */
	void		(*dsyev) (const char *jobz, const char *uplo, const int *n,
						  double *a, const int *lda, double *w, double *work,
						  const int *lwork, int *info);
	void		(*set_num_threads) (int nthreads);	/* optional */
} AnomalyBlas;

extern AnomalyBlas anomaly_blas;

/* anomaly.blas_library: the library to open instead of the default ones */
extern char *anomaly_blas_library;

/* opens the library or raises an error; a no-op once it is open */
extern void AnomalyBlasLoad(void);

/* anomaly.blas_threads: applied now if the library is open, else on opening */
extern void AnomalyBlasSetThreads(int nthreads);

/* is the library open in this process (for tests and the bench) */
extern bool AnomalyBlasLoaded(void);

static inline const AnomalyBlas *
AnomalyBlasGet(void)
{
	if (unlikely(anomaly_blas.sgemm == NULL))
		AnomalyBlasLoad();
	return &anomaly_blas;
}

#define anomaly_sgemm (AnomalyBlasGet()->sgemm)
#define anomaly_sgemv (AnomalyBlasGet()->sgemv)
#define anomaly_dsyrk (AnomalyBlasGet()->dsyrk)
#define anomaly_dsyev (AnomalyBlasGet()->dsyev)

#endif							/* ANOMALY_BLAS_H */
