/*
 * simd_vec.h
 *	  The network kernels written once for any vector width: activations of
 *	  one vector and a block of a dense layer.  Included by simd_nn.h (8
 *	  wide) and by simd_nn.c's AVX-512 part (16 wide) with AV (the float
 *	  vector type), AI (the int32 vector of that width), AW (the width) and
 *	  AFN(name) (name, width and instruction set: Tanh8Avx2) defined, and
 *	  AFN(Load), AFN(Store), AFN(Bcast) already defined.  Not a header for
 *	  other files.
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
static inline KATTR AV
AFN(Exp) (AV x)
{
	const float ln2_hi = 0.693359375f;
	const float ln2_lo = -2.12194440e-4f;
	AI		lo = x < -87.0f;
	AI		hi = x > 88.0f;
	AV		k;
	AV		r;
	AV		p;
	AI		ki;

	x = (AV) (((AI) x & ~lo) | ((AI) ((AV) {0} + -87.0f) & lo));
	x = (AV) (((AI) x & ~hi) | ((AI) ((AV) {0} + 88.0f) & hi));
	k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	r = (x - k * ln2_hi) - k * ln2_lo;
	p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
	/* NaN k converts as 0 (the scalar code's select) */
	k = (AV) ((AI) k & (k == k));
	ki = (__builtin_convertvector(k, AI) + 127) << 23;
	return p * (AV) ki;
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
static inline KATTR AV
AFN(Tanh) (AV x)
{
	AI		hi = x > 9.0f;
	AI		lo = x < -9.0f;
	AV		u;
	AV		p;
	AV		q;

	x = (AV) (((AI) x & ~hi) | ((AI) ((AV) {0} + 9.0f) & hi));
	x = (AV) (((AI) x & ~lo) | ((AI) ((AV) {0} - 9.0f) & lo));
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

/* activation of a vector of values; codes as NnActivation */
static inline KATTR __attribute__((always_inline)) AV
AFN(Act) (int act, AV v)
{
	switch (act)
	{
		case 1:					/* relu */
			return (AV) ((AI) v & (v > 0.0f));
		case 2:					/* leaky relu */
			{
				AI		m = v > 0.0f;
				AV		s = NN_LEAKY_SLOPE * v;

				return (AV) (((AI) v & m) | ((AI) s & ~m));
			}
		case 3:					/* tanh: see AFN(Tanh) */
			return AFN(Tanh) (v);
		case 4:					/* sigmoid */
			return 1.0f / (1.0f + AFN(Exp) (-v));
		default:
			return v;
	}
}

/*
 * nv x AW outputs of a layer (WT, b and y point at the first), the inputs
 * split between np partial sums; nv * np <= 8.  Inlined with constant nv
 * and np, so the sums stay in registers.
 */
static inline KATTR __attribute__((always_inline)) void
AFN(DenseBlock) (const float *w, const float *b, int in, int out,
				 const float *x, float *y, int nv, int np, int act)
{
	AV			a[8][8] = {{{0}}};
	int			j = 0;

	for (; j + np <= in; j += np, w += (Size) np * out)
	{
#pragma GCC unroll 8
		for (int p = 0; p < np; p++)
		{
			AV			xp = AFN(Bcast) (x[j + p]);

#pragma GCC unroll 8
			for (int k = 0; k < nv; k++)
				a[p][k] += xp * AFN(Load) (w + (Size) p * out + AW * k);
		}
	}
	for (; j < in; j++, w += out)
	{
		AV			xj = AFN(Bcast) (x[j]);

#pragma GCC unroll 8
		for (int k = 0; k < nv; k++)
			a[0][k] += xj * AFN(Load) (w + AW * k);
	}
#pragma GCC unroll 8
	for (int k = 0; k < nv; k++)
	{
		AV			s = a[0][k];

#pragma GCC unroll 8
		for (int p = 1; p < np; p++)
			s += a[p][k];
		AFN(Store) (y + AW * k, AFN(Act) (act, AFN(Load) (b + AW * k) + s));
	}
}

/*
 * The last r < AW outputs of a layer (w, b and y point at the first): rows
 * of w are loaded AW wide while the load stays inside the matrix (avail
 * floats from w on; the lanes past the layer's last output hold the next
 * row's first values and are dropped), the rows left one output at a time.
 * Four partial sums, as in the blocks: a chain of in dependent scalar
 * multiply-adds per output made this tail most of a pca row.
 */
static inline KATTR __attribute__((always_inline)) void
AFN(DenseTail) (const float *w, const float *b, int in, int out, int r,
				const float *x, float *y, int act, Size avail)
{
	AV			a[4] = {{0}};
	float		t[AW];
	int			jv = avail >= AW ? (int) Min((Size) in, (avail - AW) / out + 1) : 0;
	int			j = 0;

	for (; j + 4 <= jv; j += 4)
	{
#pragma GCC unroll 4
		for (int p = 0; p < 4; p++)
			a[p] += AFN(Bcast) (x[j + p]) * AFN(Load) (w + (Size) (j + p) * out);
	}
	for (; j < jv; j++)
		a[0] += AFN(Bcast) (x[j]) * AFN(Load) (w + (Size) j * out);
	AFN(Store) (t, (a[0] + a[1]) + (a[2] + a[3]));
	for (; j < in; j++)
		for (int l = 0; l < r; l++)
			t[l] += x[j] * w[(Size) j * out + l];
	for (int l = 0; l < r; l++)
		t[l] += b[l];
	AFN(Store) (t, AFN(Act) (act, AFN(Load) (t)));
	memcpy(y, t, r * sizeof(float));
}
