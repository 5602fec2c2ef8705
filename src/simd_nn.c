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
