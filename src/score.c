/*
 * score.c
 *	  The scoring functions: anomaly_score, anomaly_is_anomaly, anomaly_explain.
 *
 * Each resolves its model through the handle in fn_extra (model.c), so the
 * per-row cost is input validation, standardization and the kind's
 * arithmetic; the catalog is read once per backend per model version.
 */
#include "postgres.h"

#include <math.h>

#include "anomaly.h"
#include "catalog/pg_type.h"
#include "model.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The model named by anomaly.model, or an error saying how to set it. */
static const char *
DefaultModelName(void)
{
	if (anomaly_default_model == NULL || anomaly_default_model[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no model given and anomaly.model is not set"),
				 errhint("Name the model, as in anomaly_score('payments', features), or run SET anomaly.model = 'payments'.")));
	return anomaly_default_model;
}

static void
CheckContamination(double c)
{
	if (isnan(c) || c <= 0.0 || c >= 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("contamination must be greater than 0 and less than 1, got %g", c)));
}

/*
 * Resolve the model named by argument 0 and read the features of argument 1,
 * a composite value whose fields are picked by name.
 */
static AnomalyHandle *
ReadRowArgs(FunctionCallInfo fcinfo, const float **x)
{
	AnomalyHandle *h = AnomalyGetHandleText(fcinfo, PG_GETARG_TEXT_PP(0));

	*x = AnomalyReadRow(h, PG_GETARG_HEAPTUPLEHEADER(1));
	return h;
}

/*
 * Score argument 1, an array, with the model named by argument 0.
 */
static inline double
ScoreArgs(FunctionCallInfo fcinfo, AnomalyHandle **hp)
{
	AnomalyHandle *h = AnomalyGetHandleText(fcinfo, PG_GETARG_TEXT_PP(0));

	*hp = h;
	return AnomalyScoreArray(h, PG_GETARG_ARRAYTYPE_P(1));
}

/*
 * anomaly_score(model text, features real[] | float8[]) returns float8
 */
PG_FUNCTION_INFO_V1(anomaly_score);
Datum
anomaly_score(PG_FUNCTION_ARGS)
{
	AnomalyHandle *h;

	PG_RETURN_FLOAT8(ScoreArgs(fcinfo, &h));
}

/*
 * anomaly_score(model text, row record) returns float8
 */
PG_FUNCTION_INFO_V1(anomaly_score_row);
Datum
anomaly_score_row(PG_FUNCTION_ARGS)
{
	const float *x;
	AnomalyHandle *h = ReadRowArgs(fcinfo, &x);

	PG_RETURN_FLOAT8(AnomalyModelScore(h, x));
}

/*
 * anomaly_score(features real[] | float8[]) returns float8, model from anomaly.model
 */
PG_FUNCTION_INFO_V1(anomaly_score_default);
Datum
anomaly_score_default(PG_FUNCTION_ARGS)
{
	const char *name = DefaultModelName();
	AnomalyHandle *h = AnomalyGetHandle(fcinfo, name, strlen(name));

	PG_RETURN_FLOAT8(AnomalyScoreArray(h, PG_GETARG_ARRAYTYPE_P(0)));
}

/*
 * anomaly_is_anomaly(model text, features) returns boolean
 */
PG_FUNCTION_INFO_V1(anomaly_is_anomaly);
Datum
anomaly_is_anomaly(PG_FUNCTION_ARGS)
{
	AnomalyHandle *h;
	double		s = ScoreArgs(fcinfo, &h);

	PG_RETURN_BOOL(s > h->model->threshold);
}

/*
 * anomaly_is_anomaly(model text, row record) returns boolean
 */
PG_FUNCTION_INFO_V1(anomaly_is_anomaly_row);
Datum
anomaly_is_anomaly_row(PG_FUNCTION_ARGS)
{
	const float *x;
	AnomalyHandle *h = ReadRowArgs(fcinfo, &x);

	PG_RETURN_BOOL(AnomalyModelScore(h, x) > h->model->threshold);
}

/*
 * anomaly_is_anomaly(model text, features, contamination float8) returns boolean
 *
 * The threshold is the training-score quantile at 1 - contamination.
 */
PG_FUNCTION_INFO_V1(anomaly_is_anomaly_rate);
Datum
anomaly_is_anomaly_rate(PG_FUNCTION_ARGS)
{
	double		c = PG_GETARG_FLOAT8(2);
	AnomalyHandle *h;
	double		s;

	CheckContamination(c);
	s = ScoreArgs(fcinfo, &h);
	PG_RETURN_BOOL(s > AnomalyQuantileThreshold(h->model, c));
}

/* qsort_arg comparator: contributions descending, then feature order */
static int
CompareContrib(const void *a, const void *b, void *arg)
{
	const double *c = arg;
	int			i = *(const int *) a;
	int			j = *(const int *) b;

	if (c[i] > c[j])
		return -1;
	if (c[i] < c[j])
		return 1;
	return i - j;
}

/* Push an object key. */
static void
PushKey(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

/*
 * Push "key": number.  The number keeps float8's shortest exact decimal
 * form; a non-finite value (JSON has none) becomes null.
 */
static void
PushNumber(JsonbParseState **state, const char *key, double v)
{
	JsonbValue	n;

	PushKey(state, key);
	if (isnan(v) || isinf(v))
		n.type = jbvNull;
	else
	{
		n.type = jbvNumeric;
		n.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															CStringGetDatum(float8out_internal(v)),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));
	}
	pushJsonbValue(state, WJB_VALUE, &n);
}

/*
 * anomaly_explain(model text, features) returns jsonb
 *
 * {"score", "threshold", "is_anomaly", "features": [{"name", "value",
 * "contribution"}...]} with features sorted by contribution, largest first.
 */
static Datum
Explain(AnomalyHandle *h, const float *x)
{
	AnomalyModel *model = h->model;
	int			d = model->n_features;
	int		   *order = palloc(d * sizeof(int));
	double		score;
	JsonbParseState *state = NULL;
	JsonbValue *result;

	score = model->kind->explain(model, x, h->work, h->contrib);
	if (isnan(score))
		score = get_float8_infinity();
	for (int i = 0; i < d; i++)
	{
		if (isnan(h->contrib[i]) || h->contrib[i] < 0)
			h->contrib[i] = isnan(h->contrib[i]) ? get_float8_infinity() : 0.0;
		order[i] = i;
	}
	qsort_arg(order, d, sizeof(int), CompareContrib, h->contrib);

	/* build the Jsonb directly: no JSON text to print and parse again */
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushNumber(&state, "score", score);
	PushNumber(&state, "threshold", model->threshold);
	PushKey(&state, "is_anomaly");
	{
		JsonbValue	v;

		v.type = jbvBool;
		v.val.boolean = score > model->threshold;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	PushKey(&state, "features");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int k = 0; k < d; k++)
	{
		int			i = order[k];
		JsonbValue	v;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		PushKey(&state, "name");
		v.type = jbvString;
		v.val.string.val = model->feature_names[i];
		v.val.string.len = strlen(model->feature_names[i]);
		pushJsonbValue(&state, WJB_VALUE, &v);
		PushNumber(&state, "value", h->raw[i]);
		PushNumber(&state, "contribution", h->contrib[i]);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

PG_FUNCTION_INFO_V1(anomaly_explain);
Datum
anomaly_explain(PG_FUNCTION_ARGS)
{
	AnomalyHandle *h = AnomalyGetHandleText(fcinfo, PG_GETARG_TEXT_PP(0));
	const float *x;

	h->want_raw = true;			/* the explanation shows the values given */
	x = AnomalyReadInput(h, PG_GETARG_ARRAYTYPE_P(1));

	PG_RETURN_DATUM(Explain(h, x));
}

/*
 * anomaly_explain(model text, row record) returns jsonb
 */
PG_FUNCTION_INFO_V1(anomaly_explain_row);
Datum
anomaly_explain_row(PG_FUNCTION_ARGS)
{
	const float *x;
	AnomalyHandle *h = ReadRowArgs(fcinfo, &x);

	PG_RETURN_DATUM(Explain(h, x));
}
