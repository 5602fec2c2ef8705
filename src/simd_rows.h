/*
 * simd_rows.h
 *	  Bodies of the row kernels of simd.c (standardize a row, z-score sums,
 *	  squared distances).  Included once per instruction set, with KFN(name)
 *	  giving the function names and KATTR their target attribute; not a
 *	  header for other files.
 *
 * Written with the generic vector types of gcc and clang (v8sf etc.,
 * defined in simd.c), which both lower to whatever the target has: two SSE
 * registers per v8sf in the baseline version, one AVX register in the AVX2
 * version.  simd.c is built with -ffp-contract=off: every operation is
 * lane-wise the IEEE operation of the scalar code, so a standardized value
 * rounds the same whether it is stored (Standardize) or kept in a register
 * (ZSumSqRaw), and every input path gives the same score bit for bit.  Sums
 * are reassociated (partial sums), which changes only their last bits.
 */

/* lane sum of a v4df, in a fixed order */
static inline KATTR double
KFN(Sum4d) (v4df a)
{
	return (a[0] + a[1]) + (a[2] + a[3]);
}

/*
 * Sum of ((x - loc) inv)^2 in double; with raw, x = (v - center) scale is
 * computed here and rounded to float as if it were stored.  Inlined with a
 * constant raw.
 */
static inline KATTR __attribute__((always_inline)) double
KFN(ZSumSqBody) (const float *v, const float *center, const float *scale,
				 const float *loc, const float *inv, int n, bool raw)
{
	v4df		s[2] = {{0}};
	double		sum;
	int			j = 0;

	for (; j + 8 <= n; j += 8)
	{
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++)
		{
			int			i = j + 4 * h;
			v4sf		x = KFN(Load4) (v + i);
			v4sf		z;
			v4df		d;

			if (raw)
				x = (x - KFN(Load4) (center + i)) * KFN(Load4) (scale + i);
			z = (x - KFN(Load4) (loc + i)) * KFN(Load4) (inv + i);
			d = __builtin_convertvector(z, v4df);
			s[h] += d * d;
		}
	}
	sum = KFN(Sum4d) (s[0] + s[1]);
	for (; j < n; j++)
	{
		float		x = raw ? (v[j] - center[j]) * scale[j] : v[j];
		double		z = (x - loc[j]) * inv[j];

		sum += z * z;
	}
	return sum;
}

static KATTR double
KFN(ZSumSq) (const float *x, const float *loc, const float *inv, int n)
{
	return KFN(ZSumSqBody) (x, NULL, NULL, loc, inv, n, false);
}

static KATTR double
KFN(ZSumSqRaw) (const float *v, const float *center, const float *scale,
				const float *loc, const float *inv, int n)
{
	return KFN(ZSumSqBody) (v, center, scale, loc, inv, n, true);
}

static KATTR double
KFN(SqDist) (const float *a, const float *b, int n)
{
	v4df		s0 = {0};
	v4df		s1 = {0};
	double		s;
	int			j = 0;

	for (; j + 8 <= n; j += 8)
	{
		v4df		d0 = __builtin_convertvector(KFN(Load4) (a + j), v4df) -
			__builtin_convertvector(KFN(Load4) (b + j), v4df);
		v4df		d1 = __builtin_convertvector(KFN(Load4) (a + j + 4), v4df) -
			__builtin_convertvector(KFN(Load4) (b + j + 4), v4df);

		s0 += d0 * d0;
		s1 += d1 * d1;
	}
	s = KFN(Sum4d) (s0 + s1);
	for (; j < n; j++)
	{
		double		e = (double) a[j] - b[j];

		s += e * e;
	}
	return s;
}

static KATTR bool
KFN(Standardize) (const float *v, const float *center, const float *inv,
				  float *x, double *raw, int n)
{
	v4si		ok = (v4si) {0} - 1;
	int			okt = 1;
	int			j = 0;

	for (; j + 4 <= n; j += 4)
	{
		v4sf		a = KFN(Load4) (v + j);
		v4sf		z = (a - KFN(Load4) (center + j)) * KFN(Load4) (inv + j);
		v4df		r = __builtin_convertvector(a, v4df);
		v4sf		mag = (v4sf) ((v4si) a & ((v4si) {0} + 0x7fffffff));

		ok &= mag <= FLT_MAX;
		memcpy(x + j, &z, sizeof(z));
		if (raw)
			memcpy(raw + j, &r, sizeof(r));
	}
	for (; j < n; j++)
	{
		if (raw)
			raw[j] = v[j];
		okt &= (fabsf(v[j]) <= FLT_MAX);
		x[j] = (v[j] - center[j]) * inv[j];
	}
	return okt && ok[0] && ok[1] && ok[2] && ok[3];
}


/* y = a + c */
static KATTR void
KFN(AddConst) (const float *a, float c, float *y, int n)
{
	int			j = 0;

	for (; j + 8 <= n; j += 8)
		KFN(Store8) (y + j, KFN(Load8) (a + j) + c);
	for (; j < n; j++)
		y[j] = a[j] + c;
}

/* The first j with v[j] < t, or n; NaN is never below. */
static KATTR int
KFN(FirstBelow) (const float *v, int n, float t)
{
	int			j = 0;

	for (; j + 16 <= n; j += 16)
	{
		v8si		m = (KFN(Load8) (v + j) < t) | (KFN(Load8) (v + j + 8) < t);

		/* any lane set: find it below */
		if (m[0] | m[1] | m[2] | m[3] | m[4] | m[5] | m[6] | m[7])
			break;
	}
	for (; j < n; j++)
		if (v[j] < t)
			return j;
	return n;
}
