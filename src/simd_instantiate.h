/*
 * simd_instantiate.h
 *	  Compile the kernel template SIMD_TEMPLATE (a file name) once for the
 *	  baseline instruction set (names ending in Generic) and, on x86-64, once
 *	  for AVX2+FMA (names ending in Avx2).  Used by simd.c and simd_nn.c;
 *	  not a header for other files.
 */
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
