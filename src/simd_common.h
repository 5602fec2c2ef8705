/*
 * simd_common.h
 *	  Small inline helpers of the kernel templates (simd_rows.h, simd_nn.h):
 *	  unaligned loads and stores of generic vectors.  Included with KFN and
 *	  KATTR defined, like the templates; not a header for other files.
 */

static inline KATTR v8sf
KFN(Load8) (const float *p)
{
	v8sf		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline KATTR v8sf
KFN(Bcast8) (float x)
{
	return (v8sf) {x, x, x, x, x, x, x, x};
}

static inline KATTR void
KFN(Store8) (float *p, v8sf v)
{
	memcpy(p, &v, sizeof(v));
}

static inline KATTR v4sf
KFN(Load4) (const float *p)
{
	v4sf		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

