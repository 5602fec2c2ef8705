/*
 * simd_instantiate.h
 *	  Compile the kernel template SIMD_TEMPLATE (a file name) once for the
 *	  baseline instruction set (names ending in Generic) and, on x86-64, once
 *	  for AVX2+FMA (names ending in Avx2).  Used by simd.c and simd_nn.c;
 *	  not a header for other files.
 */

/* the generic vector types the templates are written in */
typedef float v8sf __attribute__((vector_size(32)));
typedef int32 v8si __attribute__((vector_size(32)));
typedef float v4sf __attribute__((vector_size(16)));
typedef int32 v4si __attribute__((vector_size(16)));
typedef double v4df __attribute__((vector_size(32)));

#define KFN(name) name##Generic
#define KATTR
#include "simd_common.h"
#include SIMD_TEMPLATE
#undef KFN
#undef KATTR

#ifdef ANOMALY_HAVE_AVX2_KERNELS
#define KFN(name) name##Avx2
#define KATTR ANOMALY_AVX2_TARGET
#include "simd_common.h"
#include SIMD_TEMPLATE
#undef KFN
#undef KATTR
#endif
