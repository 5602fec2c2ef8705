/*
 * simd.c
 *	  The per-row arithmetic of the scoring path, vectorized, with an AVX2
 *	  version picked once per backend.
 *
 * Why.  A scoring query calls the kind once per row, and a row is a few
 * dozen floats: at that size the fixed costs decide.  cblas_sgemv checks
 * its arguments and dispatches before it does 2 x 32 x 64 flops, and the
 * compiler's baseline x86-64 code (SSE2) neither keeps a running sum in a
 * register across a loop with several accumulators nor uses the 256-bit
 * units that every x86 server since 2013 has.  On 1,000,000 rows x 32
 * features (test/bench/speed) these kernels took zscore from 3.6 to about
 * 1.4 times the scan floor and the 32-64-16-64-32 autoencoder from about
 * 21 to about 4.6 (README, Performance).
 *
 * How.  The kernels are written once, with the generic vector types of gcc
 * and clang (v8sf: eight floats), in templates: simd_rows.h (standardize a
 * row, z-score sums, squared distances; this file) and simd_nn.h
 * (activations and the dense-layer row kernel; simd_nn.c, built with fused
 * multiply-adds).  Each template is included twice: as the baseline
 * version, and on x86-64 with the target attribute "avx2,fma" (which only
 * lets the compiler use those instructions).  The dense layer has a third
 * version, 16 wide, for AVX-512 (simd_nn.c): a network row is mostly its
 * multiply-adds, and they halve.  AnomalySimdSelect(), called from _PG_init
 * and by the setting anomaly.simd, asks the CPU (cpuid via
 * __builtin_cpu_supports) and fills anomaly_kernels; anomaly.simd = 'avx2'
 * stops short of AVX-512 (some CPUs lower their clock for it) and
 * 'generic' forces the baseline version (for testing it on an AVX2
 * machine).
 *
 * The dense-layer kernel works on transposed weights (in x out, built by
 * NnLoad): each input value is broadcast and multiplied into a block of
 * outputs held in registers, so a layer is in x out / 8 vector
 * multiply-adds with no horizontal sums, and the activation is applied
 * before the block is stored.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "nn.h"
#include "simd.h"

#define SIMD_TEMPLATE "simd_rows.h"
#include "simd_instantiate.h"

AnomalyKernels anomaly_kernels = {
	AnomalyDenseRowGeneric, AnomalyActivateGeneric, ZSumSqGeneric, ZSumSqRawGeneric, SqDistGeneric,
	StandardizeGeneric, AddConstGeneric, FirstBelowGeneric, "generic"
};

static const AnomalyKernels generic_kernels = {
	AnomalyDenseRowGeneric, AnomalyActivateGeneric, ZSumSqGeneric, ZSumSqRawGeneric, SqDistGeneric,
	StandardizeGeneric, AddConstGeneric, FirstBelowGeneric, "generic"
};

#ifdef ANOMALY_HAVE_AVX2_KERNELS
static const AnomalyKernels avx2_kernels = {
	AnomalyDenseRowAvx2, AnomalyActivateAvx2, ZSumSqAvx2, ZSumSqRawAvx2, SqDistAvx2,
	StandardizeAvx2, AddConstAvx2, FirstBelowAvx2, "avx2"
};
#endif

/*
 * Pick the kernels for this CPU, up to the level asked for.
 */
void
AnomalySimdSelect(AnomalySimdLevel level)
{
	anomaly_kernels = generic_kernels;
#ifdef ANOMALY_HAVE_AVX2_KERNELS
	if (level == ANOMALY_SIMD_GENERIC)
		return;
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
		return;
	anomaly_kernels = avx2_kernels;
#ifdef ANOMALY_HAVE_AVX512_KERNELS
	if (level == ANOMALY_SIMD_AUTO &&
		__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
	{
		anomaly_kernels.dense_row = AnomalyDenseRowAvx512;
		anomaly_kernels.name = "avx512";
	}
#endif
#endif
}
