/*
 * convert.c
 *	  Turning SQL values into features: the types a feature may have (real,
 *	  double precision, smallint, integer, bigint, numeric, boolean and domains
 *	  over them) and their conversion to double.  Shared by training (query
 *	  columns, array elements) and by row input on the scoring path.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "convert.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/lsyscache.h"

/*
 * The feature kind of SQL type "type" (domains resolved); false when it is
 * not a number or boolean.
 */
bool
AnomalyClassifyType(Oid type, AnomalyColumnKind *kind)
{
	switch (getBaseType(type))
	{
		case FLOAT4OID:
			*kind = COL_FLOAT4;
			return true;
		case FLOAT8OID:
			*kind = COL_FLOAT8;
			return true;
		case INT2OID:
			*kind = COL_INT2;
			return true;
		case INT4OID:
			*kind = COL_INT4;
			return true;
		case INT8OID:
			*kind = COL_INT8;
			return true;
		case NUMERICOID:
			*kind = COL_NUMERIC;
			return true;
		case BOOLOID:
			*kind = COL_BOOL;
			return true;
		default:
			return false;
	}
}

/*
 * A feature value as double (numeric NaN/Infinity pass through; callers
 * reject non-finite values).
 */
double
AnomalyConvertDatum(Datum v, AnomalyColumnKind kind)
{
	switch (kind)
	{
		case COL_FLOAT4:
			return DatumGetFloat4(v);
		case COL_FLOAT8:
			return DatumGetFloat8(v);
		case COL_INT2:
			return DatumGetInt16(v);
		case COL_INT4:
			return DatumGetInt32(v);
		case COL_INT8:
			return (double) DatumGetInt64(v);
		case COL_NUMERIC:
			{
				double		r = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, v));

				/*
				 * A finite numeric beyond double's range (1e400) comes back
				 * as +-Infinity; keep it finite so that callers report it as
				 * out of range, not as an infinite value.
				 */
				if (isinf(r) && !numeric_is_inf(DatumGetNumeric(v)))
					r = r > 0 ? DBL_MAX : -DBL_MAX;
				return r;
			}
		case COL_BOOL:
			return DatumGetBool(v) ? 1.0 : 0.0;
	}
	return 0.0;
}
