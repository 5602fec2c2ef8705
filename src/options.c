/*
 * options.c
 *	  Training options: typed, range-checked reads from the user's jsonb.
 *
 * Every option a kind or the trainer reads goes through one of these
 * functions, which (1) rejects a value of the wrong JSON type or out of range
 * with SQLSTATE 22023 and a message naming the option, (2) records the key as
 * known, and (3) appends the value actually used (given or default) to the
 * "options as used" object stored with the model.  After all options are read,
 * AnomalyOptCheckUnused() rejects any key nobody asked for, so a typo such as
 * {"epoch": 10} is an error instead of a silently ignored setting.
 */
#include "postgres.h"

#include <math.h>

#include "options.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/numeric.h"

/*
 * Start reading options from "in" (NULL means no options).
 */
void
AnomalyOptionsInit(AnomalyOptions *opts, Jsonb *in)
{
	if (in != NULL && !JB_ROOT_IS_OBJECT(in))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Pass options as '{\"epochs\": 50}'::jsonb.")));
	opts->in = in;
	opts->used = NIL;
	initStringInfo(&opts->out);
}

/* Look up key; NULL if absent or JSON null. */
static JsonbValue *
OptFind(AnomalyOptions *opts, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	if (opts->in == NULL)
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&opts->in->root, JB_FOBJECT, &k);
	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/* Remember that key is known and start its member in the used object. */
static void
OptUse(AnomalyOptions *opts, const char *key)
{
	opts->used = lappend(opts->used, pstrdup(key));
	AnomalyJsonMember(&opts->out, key);
}

bool
AnomalyOptGiven(AnomalyOptions *opts, const char *key)
{
	return OptFind(opts, key) != NULL;
}

/* A JSON number as double, or an error naming the option. */
static double
OptNumber(JsonbValue *v, const char *key, const char *what)
{
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be %s", key, what)));
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * A JSON number that must be an integer in [min, max].  Compared as numeric,
 * exactly: a double cannot tell 2^63 - 1 from 2^63, and casting an
 * out-of-range double to int64 is undefined (a seed of 9223372036854775808
 * used to be stored as -9223372036854775808).
 */
static int64
OptInteger(JsonbValue *v, const char *key, int64 min, int64 max)
{
	Datum		num;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer", key)));
	num = NumericGetDatum(v->val.numeric);
	if (numeric_is_nan(v->val.numeric) || numeric_is_inf(v->val.numeric) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, num,
										  DirectFunctionCall2(numeric_trunc, num, Int32GetDatum(0)))) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer", key)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, num, NumericGetDatum(int64_to_numeric(min)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, num, NumericGetDatum(int64_to_numeric(max)))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between " INT64_FORMAT " and " INT64_FORMAT, key, min, max)));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, num));
}

int64
AnomalyOptInt64(AnomalyOptions *opts, const char *key, int64 def, int64 min, int64 max)
{
	JsonbValue *v = OptFind(opts, key);
	int64		r = v ? OptInteger(v, key, min, max) : def;

	OptUse(opts, key);
	appendStringInfo(&opts->out, INT64_FORMAT, r);
	return r;
}

int
AnomalyOptInt(AnomalyOptions *opts, const char *key, int def, int min, int max)
{
	return (int) AnomalyOptInt64(opts, key, def, min, max);
}

/*
 * A real number in [min, max] (or (min, max] when min_exclusive).
 */
double
AnomalyOptReal(AnomalyOptions *opts, const char *key, double def,
			   double min, double max, bool min_exclusive)
{
	JsonbValue *v = OptFind(opts, key);
	double		r = def;

	if (v != NULL)
	{
		r = OptNumber(v, key, "a number");
		if (isnan(r) || r > max || r < min || (min_exclusive && r == min))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be %s %g and at most %g",
							key, min_exclusive ? "greater than" : "at least", min, max)));
	}
	OptUse(opts, key);
	AnomalyJsonNumber(&opts->out, r);
	return r;
}

bool
AnomalyOptBool(AnomalyOptions *opts, const char *key, bool def)
{
	JsonbValue *v = OptFind(opts, key);
	bool		r = def;

	if (v != NULL)
	{
		if (v->type != jbvBool)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be true or false", key)));
		r = v->val.boolean;
	}
	OptUse(opts, key);
	appendStringInfoString(&opts->out, r ? "true" : "false");
	return r;
}

/*
 * A boolean that steers the run but not the model (such as "verbose"): read
 * and range-checked like AnomalyOptBool and known to AnomalyOptCheckUnused,
 * but not recorded in the options as used, so it never changes what is stored
 * with the model.
 */
bool
AnomalyOptFlag(AnomalyOptions *opts, const char *key, bool def)
{
	JsonbValue *v = OptFind(opts, key);

	opts->used = lappend(opts->used, pstrdup(key));
	if (v == NULL)
		return def;
	if (v->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be true or false", key)));
	return v->val.boolean;
}

/*
 * One of a fixed list of strings; returns the entry of "allowed" (so callers
 * may compare pointers or strcmp).
 */
const char *
AnomalyOptEnum(AnomalyOptions *opts, const char *key, const char *def,
			   const char *const *allowed)
{
	JsonbValue *v = OptFind(opts, key);
	const char *r = def;

	if (v != NULL)
	{
		char	   *s;
		StringInfoData list;

		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be a string", key)));
		s = pnstrdup(v->val.string.val, v->val.string.len);
		r = NULL;
		initStringInfo(&list);
		for (int i = 0; allowed[i] != NULL; i++)
		{
			if (strcmp(s, allowed[i]) == 0)
				r = allowed[i];
			appendStringInfo(&list, "%s\"%s\"", i > 0 ? ", " : "", allowed[i]);
		}
		if (r == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value \"%s\" for option \"%s\"", s, key),
					 errhint("Valid values are %s.", list.data)));
	}
	OptUse(opts, key);
	escape_json(&opts->out, r);
	return r;
}

/*
 * The elements of the array option "key", each of JSON type "type", at most
 * maxlen of them; NULL when the option is absent.  "what" names the element
 * type and "example" shows a valid value in the errors.
 */
static JsonbValue *
OptArray(AnomalyOptions *opts, const char *key, enum jbvType type, const char *what,
		 const char *example, int maxlen, int *n)
{
	JsonbValue *v = OptFind(opts, key);
	JsonbValue *elems;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;

	*n = 0;
	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array of %s", key, what),
				 errhint("For example \"%s\": %s.", key, example)));

	elems = palloc(Max(maxlen, 1) * sizeof(JsonbValue));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (elem.type != type)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an array of %s", key, what)));
		if (*n >= maxlen)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" has more than %d elements", key, maxlen)));
		elems[(*n)++] = elem;
	}
	return elems;
}

/*
 * A JSON array of integers in [min, max], at most maxlen of them.  Returns the
 * count, or -1 when the option is absent (the caller then picks a default and
 * records it with AnomalyOptRecordIntList).  An empty array is allowed.
 */
int
AnomalyOptIntList(AnomalyOptions *opts, const char *key, int *out, int maxlen,
				  int min, int max)
{
	int			n;
	JsonbValue *elems = OptArray(opts, key, jbvNumeric, "integers", "[16, 4, 16]", maxlen, &n);

	if (elems == NULL)
		return -1;
	for (int i = 0; i < n; i++)
		out[i] = (int) OptInteger(&elems[i], key, min, max);
	AnomalyOptRecordIntList(opts, key, out, n);
	return n;
}

/* Record an integer list (given or chosen) in the options as used. */
void
AnomalyOptRecordIntList(AnomalyOptions *opts, const char *key, const int *v, int n)
{
	OptUse(opts, key);
	appendStringInfoChar(&opts->out, '[');
	for (int i = 0; i < n; i++)
		appendStringInfo(&opts->out, "%s%d", i > 0 ? ", " : "", v[i]);
	appendStringInfoChar(&opts->out, ']');
}

/*
 * A JSON array of strings, at most maxlen of them (palloc'd copies in out).
 * Returns the count, or -1 when the option is absent (the caller then picks a
 * default and records it with AnomalyOptRecordStringList).  An empty array is
 * allowed; the caller decides whether it makes sense.
 */
int
AnomalyOptStringList(AnomalyOptions *opts, const char *key, char **out, int maxlen)
{
	int			n;
	JsonbValue *elems = OptArray(opts, key, jbvString, "strings", "[\"knn\", \"iforest\"]", maxlen, &n);

	if (elems == NULL)
		return -1;
	for (int i = 0; i < n; i++)
		out[i] = pnstrdup(elems[i].val.string.val, elems[i].val.string.len);
	AnomalyOptRecordStringList(opts, key, out, n);
	return n;
}

/* Record a string list (given or chosen) in the options as used. */
void
AnomalyOptRecordStringList(AnomalyOptions *opts, const char *key, char *const *v, int n)
{
	OptUse(opts, key);
	appendStringInfoChar(&opts->out, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(&opts->out, ", ");
		escape_json(&opts->out, v[i]);
	}
	appendStringInfoChar(&opts->out, ']');
}

/*
 * Start reading the nested options object under key (absent or null: an
 * empty object) into sub, for a part of the model that has options of its
 * own, such as a member of an ensemble.  The caller reads sub with the
 * AnomalyOpt* functions, then calls AnomalyOptNestedEnd, which rejects keys
 * of sub nobody read and records sub as used under key.
 */
void
AnomalyOptNestedBegin(AnomalyOptions *opts, const char *key, AnomalyOptions *sub)
{
	JsonbValue *v = OptFind(opts, key);
	Jsonb	   *in = NULL;

	if (v != NULL)
	{
		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be a JSON object", key),
					 errhint("For example \"%s\": {}.", key)));
		in = JsonbValueToJsonb(v);
	}
	AnomalyOptionsInit(sub, in);
}

/*
 * Reject keys of a nested options object that nobody read; where names the
 * object in the message (e.g. "knn" or "knn[1]").
 */
static void
OptNestedCheck(AnomalyOptions *sub, const char *where)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (sub->in == NULL)
		return;
	it = JsonbIteratorInit(&sub->in->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		ListCell   *lc;
		bool		found = false;
		char	   *k;

		if (tok != WJB_KEY)
			continue;
		k = pnstrdup(v.val.string.val, v.val.string.len);
		foreach(lc, sub->used)
		{
			if (strcmp((char *) lfirst(lc), k) == 0)
				found = true;
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized option \"%s\" in option \"%s\"", k, where),
					 errhint("The options each kind accepts are listed in the README's reference.")));
	}
}

/* Finish reading sub (see AnomalyOptNestedBegin). */
void
AnomalyOptNestedEnd(AnomalyOptions *opts, const char *key, AnomalyOptions *sub)
{
	/* unknown nested keys: name the object they are in */
	OptNestedCheck(sub, key);
	OptUse(opts, key);
	appendStringInfo(&opts->out, "{%s}", sub->out.data);
}

/*
 * Start reading an array of n nested options objects under key into
 * subs[0..n-1] (for example the options of each of several ensemble members
 * of one kind).  Absent or null: n empty objects.  Otherwise it must be an
 * array of exactly n objects.  Finish with AnomalyOptNestedArrayEnd.
 */
void
AnomalyOptNestedArrayBegin(AnomalyOptions *opts, const char *key, int n, AnomalyOptions *subs)
{
	JsonbValue *v = OptFind(opts, key);

	if (v == NULL)
	{
		for (int i = 0; i < n; i++)
			AnomalyOptionsInit(&subs[i], NULL);
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != (uint32) n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array of %d JSON objects", key, n),
				 errhint("Give one object of options per element, in order, e.g. [{}, {}].")));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);

		if (e == NULL || e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an array of %d JSON objects", key, n),
					 errhint("Give one object of options per element, in order, e.g. [{}, {}].")));
		AnomalyOptionsInit(&subs[i], JsonbValueToJsonb(e));
	}
}

/*
 * Reject keys of subs[0..n-1] nobody read and record them as used under key,
 * as an array.
 */
void
AnomalyOptNestedArrayEnd(AnomalyOptions *opts, const char *key, int n, AnomalyOptions *subs)
{
	for (int i = 0; i < n; i++)
		OptNestedCheck(&subs[i], psprintf("%s[%d]", key, i));
	OptUse(opts, key);
	appendStringInfoChar(&opts->out, '[');
	for (int i = 0; i < n; i++)
		appendStringInfo(&opts->out, "%s{%s}", i > 0 ? ", " : "", subs[i].out.data);
	appendStringInfoChar(&opts->out, ']');
}

/*
 * Reject keys that no reader asked for.
 */
void
AnomalyOptCheckUnused(AnomalyOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (opts->in == NULL)
		return;
	it = JsonbIteratorInit(&opts->in->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		ListCell   *lc;
		bool		found = false;
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		foreach(lc, opts->used)
		{
			if (strcmp((char *) lfirst(lc), key) == 0)
				found = true;
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized option \"%s\"", key),
					 errhint("The options this kind accepts are listed in the README's reference.")));
	}
}

/* The options as used, as a jsonb object. */
Jsonb *
AnomalyOptionsUsed(AnomalyOptions *opts)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{%s}", opts->out.data);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
