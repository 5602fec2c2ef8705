/*
 * blas.c: open the BLAS library on first use (see blas.h for why).
 *
 * The library is looked up by its soname, so the dynamic loader's search
 * path and Debian's alternatives (libopenblas.so.0 may be the pthread,
 * openmp or serial build) decide which file it is, exactly as linking
 * would have.  libblas.so.3 is tried next: on Debian it is the
 * alternatives' choice of BLAS, and it exports the CBLAS interface too;
 * the eigen-solver then comes from liblapack.so.3 (OpenBLAS has both).
 * The setting anomaly.blas_library (superuser) names another library
 * instead, tried alone: any with the CBLAS interface and dsyev_.
 */
#include "postgres.h"

#include <dlfcn.h>

#include "blas.h"
#include "lib/stringinfo.h"

#ifndef ANOMALY_BLAS_LIBRARY
#define ANOMALY_BLAS_LIBRARY "libopenblas.so.0"
#endif

AnomalyBlas anomaly_blas;
char	   *anomaly_blas_library = NULL;

static int	blas_threads = 1;

static const char *const blas_libraries[] = {
	ANOMALY_BLAS_LIBRARY,
	"libblas.so.3",
};

void
AnomalyBlasLoad(void)
{
	StringInfoData tried;
	void	   *handle = NULL;
	AnomalyBlas b;

	if (anomaly_blas.sgemm != NULL)
		return;

	initStringInfo(&tried);
	for (int i = 0; i < lengthof(blas_libraries); i++)
	{
		const char *name = blas_libraries[i];
		const char *err;

		if (anomaly_blas_library != NULL && anomaly_blas_library[0] != '\0')
		{
			if (i > 0)
				break;
			name = anomaly_blas_library;
		}
		handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
		if (handle != NULL)
		{
			b.sgemm = (__typeof__(b.sgemm)) dlsym(handle, "cblas_sgemm");
			b.sgemv = (__typeof__(b.sgemv)) dlsym(handle, "cblas_sgemv");
			b.dsyrk = (__typeof__(b.dsyrk)) dlsym(handle, "cblas_dsyrk");
			b.dsyev = (__typeof__(b.dsyev)) dlsym(handle, "dsyev_");
			b.set_num_threads = (__typeof__(b.set_num_threads)) dlsym(handle, "openblas_set_num_threads");
			if (b.sgemm != NULL && b.sgemv != NULL && b.dsyrk != NULL && b.dsyev == NULL)
			{
				/* a plain BLAS: the eigen-solver from LAPACK */
				void	   *lapack = dlopen("liblapack.so.3", RTLD_NOW | RTLD_LOCAL);

				if (lapack != NULL)
				{
					b.dsyev = (__typeof__(b.dsyev)) dlsym(lapack, "dsyev_");
					if (b.dsyev == NULL)
						dlclose(lapack);
				}
			}
			if (b.sgemm != NULL && b.sgemv != NULL && b.dsyrk != NULL && b.dsyev != NULL)
				break;
			appendStringInfo(&tried, "%s%s: it lacks one of cblas_sgemm, cblas_sgemv, cblas_dsyrk, dsyev_ (LAPACK)",
							 tried.len > 0 ? "; " : "", name);
			dlclose(handle);
			handle = NULL;
		}
		else
		{
			/* dlerror() names the file */
			err = dlerror();
			appendStringInfo(&tried, "%s%s", tried.len > 0 ? "; " : "",
							 err ? err : name);
		}
	}
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load a BLAS library for anomaly"),
				 errdetail("%s", tried.data),
				 errhint("Install OpenBLAS (on Debian: apt-get install libopenblas0) on the database server, or name a BLAS library with CBLAS and LAPACK in anomaly.blas_library.")));
	pfree(tried.data);

	if (b.set_num_threads != NULL)
		b.set_num_threads(blas_threads);
	/* publish last: AnomalyBlasGet() tests sgemm */
	anomaly_blas = b;
}

void
AnomalyBlasSetThreads(int nthreads)
{
	blas_threads = nthreads;
	if (anomaly_blas.set_num_threads != NULL)
		anomaly_blas.set_num_threads(nthreads);
}

bool
AnomalyBlasLoaded(void)
{
	return anomaly_blas.sgemm != NULL;
}
