/*
 * simd_nn.c
 *	  The network kernels (activations, one dense layer on one row) in a
 *	  baseline and an AVX2+FMA version; simd.c picks one.
 *
 * Apart from simd.c because it is built with multiply-adds fused where the
 * target has them (-ffp-contract=fast): one instruction and one rounding
 * instead of two halves the arithmetic of a layer.  The row kernel sums in
 * another order than the sgemm of batch scoring anyway, so the two paths
 * agree to the last bits, not bit for bit, with or without fusion.
 */
#include "postgres.h"

#include "nn.h"
#include "simd.h"

#define SIMD_TEMPLATE "simd_nn.h"
#include "simd_instantiate.h"

#ifdef ANOMALY_HAVE_AVX512_KERNELS
/*
 * The dense-layer kernel again with 16-wide vectors, for CPUs with
 * AVX-512: half the multiply-adds and activation instructions of the AVX2
 * version, which is most of what a row of an autoencoder costs.  Blocks of
 * 64, 32 and 16 outputs keep eight independent sums each (the inputs split
 * between 2, 4 or 8 partial sums); outputs past the last multiple of 16 go
 * through the AVX2 version's code, inlined.  The kernel is compiled once
 * per activation code, so the activation is straight-line code.
 */
typedef float v16sf __attribute__((vector_size(64)));
typedef int32 v16si __attribute__((vector_size(64)));

static inline ANOMALY_AVX512_TARGET v16sf
Load16Avx512(const float *p)
{
	v16sf		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline ANOMALY_AVX512_TARGET void
Store16Avx512(float *p, v16sf v)
{
	memcpy(p, &v, sizeof(v));
}

static inline ANOMALY_AVX512_TARGET v16sf
Bcast16Avx512(float x)
{
	return (v16sf) {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}

/* Exp16Avx512, Tanh16Avx512, Act16Avx512, DenseBlock16Avx512 */
#define KFN(name) name##Avx512
#define KATTR ANOMALY_AVX512_TARGET
#define AV v16sf
#define AI v16si
#define AW 16
#define AFN(name) KFN(name##16)
#include "simd_vec.h"
#undef AV
#undef AI
#undef AW
#undef AFN
#undef KFN
#undef KATTR

/* 16-wide blocks, then the AVX2 version's code from the first output left */
static inline ANOMALY_AVX512_TARGET __attribute__((always_inline)) void
DenseRowActAvx512(const float *WT, const float *b, int in, int out, int act,
				  const float *x, float *y)
{
	int			o = 0;

	for (; o + 64 <= out; o += 64)
		DenseBlock16Avx512(WT + o, b + o, in, out, x, y + o, 4, 2, act);
	for (; o + 32 <= out; o += 32)
		DenseBlock16Avx512(WT + o, b + o, in, out, x, y + o, 2, 4, act);
	for (; o + 16 <= out; o += 16)
		DenseBlock16Avx512(WT + o, b + o, in, out, x, y + o, 1, 8, act);
	DenseRowFromAvx2(WT, b, in, out, o, act, x, y);
}

ANOMALY_AVX512_TARGET void
AnomalyDenseRowAvx512(const float *WT, const float *b, int in, int out, int act,
					  const float *x, float *y)
{
	ANOMALY_DENSE_ROW_BY_ACT(DenseRowActAvx512);
}
#endif
