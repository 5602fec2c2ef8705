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

/*
 * exp(x) in single precision, within about 2 ulp of expf() on the range the
 * activations need, with no calls or branches (glibc's tanhf was most of
 * the training time).  x is clamped to [-87, 88] (NaN passes), x = k ln2 + r
 * with |r| <= ln2/2 (Cody-Waite: ln2 split in a part exact in k * hi and a
 * remainder), exp(r) by its degree-6 Taylor polynomial (error below 2e-7
 * relative on that interval), times 2^k built in the exponent bits.  k is
 * rounded with the 1.5 * 2^23 trick, exact under round-to-nearest.  A NaN x
 * (a far-out row can overflow to one) leaves k NaN, and converting NaN to an
 * integer is undefined: 0 is converted instead; the result stays NaN.
 */
static inline KATTR v8sf
KFN(Exp8) (v8sf x)
{
	const float ln2_hi = 0.693359375f;
	const float ln2_lo = -2.12194440e-4f;
	v8si		lo = x < -87.0f;
	v8si		hi = x > 88.0f;
	v8sf		k;
	v8sf		r;
	v8sf		p;
	v8si		ki;

	x = (v8sf) (((v8si) x & ~lo) | ((v8si) ((v8sf) {0} + -87.0f) & lo));
	x = (v8sf) (((v8si) x & ~hi) | ((v8si) ((v8sf) {0} + 88.0f) & hi));
	k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	r = (x - k * ln2_hi) - k * ln2_lo;
	p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
	/* NaN k converts as 0 (the scalar code's select) */
	k = (v8sf) ((v8si) k & (k == k));
	ki = (__builtin_convertvector(k, v8si) + 127) << 23;
	return p * (v8sf) ki;
}

/*
 * tanh(x) = x P(x^2) / Q(x^2) on x clamped to [-9, 9] (beyond, tanh is 1
 * in single precision), P of degree 5 and Q of degree 3 in x^2: a rational
 * approximation fitted for this project (weighted least squares on the
 * relative error, iterated towards minimax; test/fit_tanh.py).  Its error
 * is below 6e-8 relative in double; evaluated in float, below 3.4e-7
 * absolute and 4 ulp below 0.5 - what a network needs, at half the
 * instructions of the exp-based form (9 multiply-adds and one division,
 * against the exponential's range reduction and polynomial).  NaN passes.
 */
static inline KATTR v8sf
KFN(Tanh8) (v8sf x)
{
	v8si		hi = x > 9.0f;
	v8si		lo = x < -9.0f;
	v8sf		u;
	v8sf		p;
	v8sf		q;

	x = (v8sf) (((v8si) x & ~hi) | ((v8si) ((v8sf) {0} + 9.0f) & hi));
	x = (v8sf) (((v8si) x & ~lo) | ((v8si) ((v8sf) {0} - 9.0f) & lo));
	u = x * x;
	p = 1.826085538e-11f * u - 1.278272244e-08f;
	p = p * u + 9.268209297e-06f;
	p = p * u + 2.920850409e-03f;
	p = p * u + 1.291931176e-01f;
	p = p * u + 9.999999417e-01f;
	q = 2.281123103e-04f * u + 2.376353392e-02f;
	q = q * u + 4.625259578e-01f;
	q = q * u + 1.0f;
	return x * p / q;
}

/* activation of 8 values; codes as NnActivation */
static inline KATTR __attribute__((always_inline)) v8sf
KFN(Act8) (int act, v8sf v)
{
	switch (act)
	{
		case 1:					/* relu */
			return (v8sf) ((v8si) v & (v > 0.0f));
		case 2:					/* leaky relu */
			{
				v8si		m = v > 0.0f;
				v8sf		s = NN_LEAKY_SLOPE * v;

				return (v8sf) (((v8si) v & m) | ((v8si) s & ~m));
			}
		case 3:					/* tanh: see KFN(Tanh8) */
			return KFN(Tanh8) (v);
		case 4:					/* sigmoid */
			return 1.0f / (1.0f + KFN(Exp8) (-v));
		default:
			return v;
	}
}

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
 * nv x 8 outputs of a layer (WT, b and y point at the first), the inputs
 * split between np partial sums; nv * np <= 8.  Inlined with constant nv
 * and np, so the sums stay in registers.
 */
static inline KATTR __attribute__((always_inline)) void
KFN(DenseBlock) (const float *w, const float *b, int in, int out,
				 const float *x, float *y, int nv, int np, int act)
{
	v8sf		a[4][4] = {{{0}}};
	int			j = 0;

	for (; j + np <= in; j += np, w += (Size) np * out)
	{
#pragma GCC unroll 4
		for (int p = 0; p < np; p++)
		{
			v8sf		xp = KFN(Bcast) (x[j + p]);

#pragma GCC unroll 4
			for (int k = 0; k < nv; k++)
				a[p][k] += xp * KFN(Load8) (w + (Size) p * out + 8 * k);
		}
	}
	for (; j < in; j++, w += out)
	{
		v8sf		xj = KFN(Bcast) (x[j]);

#pragma GCC unroll 4
		for (int k = 0; k < nv; k++)
			a[0][k] += xj * KFN(Load8) (w + 8 * k);
	}
#pragma GCC unroll 4
	for (int k = 0; k < nv; k++)
	{
		v8sf		s = a[0][k];

#pragma GCC unroll 4
		for (int p = 1; p < np; p++)
			s += a[p][k];
		KFN(Store8) (y + 8 * k, KFN(Act8) (act, KFN(Load8) (b + 8 * k) + s));
	}
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
KATTR void
KFN(AnomalyDenseRow) (const float *WT, const float *b, int in, int out, int act,
			   const float *x, float *y)
{
	int			o = 0;

	for (; o + 64 <= out; o += 64)
	{
		v8sf		a[8];
		const float *w = WT + o;

#pragma GCC unroll 8
		for (int k = 0; k < 8; k++)
			a[k] = KFN(Load8) (b + o + 8 * k);
		for (int j = 0; j < in; j++, w += out)
		{
			v8sf		xj = KFN(Bcast) (x[j]);

#pragma GCC unroll 8
			for (int k = 0; k < 8; k++)
				a[k] += xj * KFN(Load8) (w + 8 * k);
		}
#pragma GCC unroll 8
		for (int k = 0; k < 8; k++)
			KFN(Store8) (y + o + 8 * k, KFN(Act8) (act, a[k]));
	}
	for (; o + 32 <= out; o += 32)
		KFN(DenseBlock) (WT + o, b + o, in, out, x, y + o, 4, 2, act);
	for (; o + 16 <= out; o += 16)
		KFN(DenseBlock) (WT + o, b + o, in, out, x, y + o, 2, 4, act);
	for (; o + 8 <= out; o += 8)
		KFN(DenseBlock) (WT + o, b + o, in, out, x, y + o, 1, 4, act);
	for (; o < out; o++)
	{
		float		s = b[o];

		for (int j = 0; j < in; j++)
			s += x[j] * WT[(Size) j * out + o];
		y[o] = s;
		KFN(AnomalyActivate) (act, y + o, 1);
	}
}

