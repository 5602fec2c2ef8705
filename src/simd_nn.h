/*
 * simd_nn.h
 *	  Bodies of the network kernels of simd_nn.c (activations, one dense
 *	  layer on one row).  Included once per instruction set, with KFN(name)
 *	  and KATTR as in simd_rows.h; not a header for other files.
 *
 * simd_nn.c is built with multiply-adds fused where the target has them
 * (-ffp-contract=fast), so the AVX2 version rounds a little differently
 * from the baseline one.  Training (NnActivate) and scoring use the same
 * activation code, so on one machine they agree bit for bit.
 */

/* activations and the dense block on 8-wide vectors: Exp8, Act8, DenseBlock8... */
#define AV v8sf
#define AI v8si
#define AW 8
#define AFN(name) KFN(name##8)
#include "simd_vec.h"
#undef AV
#undef AI
#undef AW
#undef AFN

/* the loop of Activate for one activation code (inlined per code) */
static inline KATTR __attribute__((always_inline)) void
KFN(ActivateLoop) (int act, float *v, Size n)
{
	Size		i = 0;

	/* two independent groups per iteration: the exp chains overlap */
	for (; i + 16 <= n; i += 16)
	{
		v8sf		a = KFN(Act8) (act, KFN(Load8) (v + i));
		v8sf		b = KFN(Act8) (act, KFN(Load8) (v + i + 8));

		KFN(Store8) (v + i, a);
		KFN(Store8) (v + i + 8, b);
	}
	for (; i + 8 <= n; i += 8)
		KFN(Store8) (v + i, KFN(Act8) (act, KFN(Load8) (v + i)));
	if (i < n)
	{
		float		tail[8] = {0};

		memcpy(tail, v + i, (n - i) * sizeof(float));
		KFN(Store8) (tail, KFN(Act8) (act, KFN(Load8) (tail)));
		memcpy(v + i, tail, (n - i) * sizeof(float));
	}
}

KATTR void
KFN(AnomalyActivate) (int act, float *v, Size n)
{
	/* one loop per code, each with the code constant */
#define ANOMALY_ACT_CASE(c) case c: KFN(ActivateLoop) (c, v, n); break;
	switch (act)
	{
			ANOMALY_ACT_CASE(1)
			ANOMALY_ACT_CASE(2)
			ANOMALY_ACT_CASE(3)
			ANOMALY_ACT_CASE(4)
		default:
			break;
	}
#undef ANOMALY_ACT_CASE
}

/*
 * One dense layer on one row from the transposed weights: each column of W
 * (a row of WT) is added, times x[j], to a block of outputs kept in
 * registers, so there is no horizontal sum and no call overhead.  A
 * multiply-add waits about four cycles for the previous one on the same
 * register and a core can start two per cycle, so every block keeps eight
 * independent sums: 64 outputs, or fewer outputs with the inputs split
 * between two or four partial sums that are added at the end.  The
 * activation is applied to the sums before they are stored.
 */
static inline KATTR __attribute__((always_inline)) void
KFN(DenseRowFrom) (const float *WT, const float *b, int in, int out, int o, int act,
				   const float *x, float *y)
{
	for (; o + 64 <= out; o += 64)
		KFN(DenseBlock8) (WT + o, b + o, in, out, x, y + o, 8, 1, act);
	for (; o + 32 <= out; o += 32)
		KFN(DenseBlock8) (WT + o, b + o, in, out, x, y + o, 4, 2, act);
	for (; o + 16 <= out; o += 16)
		KFN(DenseBlock8) (WT + o, b + o, in, out, x, y + o, 2, 4, act);
	for (; o + 8 <= out; o += 8)
		KFN(DenseBlock8) (WT + o, b + o, in, out, x, y + o, 1, 4, act);
	if (o < out)
		KFN(DenseTail8) (WT + o, b + o, in, out, out - o, x, y + o, act,
						 (Size) in * out - o);
}

static inline KATTR __attribute__((always_inline)) void
KFN(DenseRowAct) (const float *WT, const float *b, int in, int out, int act,
				  const float *x, float *y)
{
	KFN(DenseRowFrom) (WT, b, in, out, 0, act, x, y);
}

#ifndef ANOMALY_DENSE_ROW_BY_ACT
/*
 * The body of an exported dense-row kernel: rowact(WT, b, in, out, act, x,
 * y) inlined once per activation code, so the activation is straight-line
 * code.
 */
#define ANOMALY_DENSE_ROW_BY_ACT(rowact) \
	switch (act) \
	{ \
		case 1: rowact(WT, b, in, out, 1, x, y); break; \
		case 2: rowact(WT, b, in, out, 2, x, y); break; \
		case 3: rowact(WT, b, in, out, 3, x, y); break; \
		case 4: rowact(WT, b, in, out, 4, x, y); break; \
		default: rowact(WT, b, in, out, 0, x, y); break; \
	}
#endif

KATTR void
KFN(AnomalyDenseRow) (const float *WT, const float *b, int in, int out, int act,
					  const float *x, float *y)
{
	ANOMALY_DENSE_ROW_BY_ACT(KFN(DenseRowAct));
}
