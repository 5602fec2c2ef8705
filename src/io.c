/*
 * io.c
 *	  anomaly_import() and anomaly_export(): models to and from safetensors,
 *	  the weight format of PyTorch and Hugging Face.
 *
 * Import.  The file is parsed and validated completely by safetensors.c
 * before anything is read from it.  Then its tensors are turned into exactly
 * the tensors anomaly_train() would have stored for the kind (NnSave() of
 * nn.c for the networks, scaler.center and scaler.scale for the scaler), the
 * model is completed as a loaded one would be (AnomalyModelFinish: the
 * kind's own load() checks every shape once more), optionally calibrated on
 * a query, and stored with AnomalyCatalogStore(), so an imported model is in
 * every respect like a trained one: cached, versioned in the history,
 * dumped, scored by the same code.  Importing needs the privileges training
 * needs.
 *
 * Two layouts name the tensors of a file:
 *
 *   "torch" (the deep kinds): the state_dict of a PyTorch module with
 *   nn.Sequential networks, so that torch.save-style names map to layers:
 *     autoencoder  encoder.<i>.weight/bias, decoder.<i>.weight/bias: one
 *                  network d -> ... -> d, the encoder's layers then the
 *                  decoder's;
 *     vae          encoder.<i>.* (the trunk), then either heads mu.weight/bias
 *                  and logvar.weight/bias (stacked into the encoder's last
 *                  layer, mu first) or an encoder whose last layer has 2L
 *                  outputs (mu then logvar); decoder.<i>.* from L to d;
 *     gan          encoder.<i>.*, decoder.<i>.*, and features.<i>.* (the
 *                  discriminator's feature layers).
 *   <i> is the index in the Sequential (activation modules have no tensors,
 *   so indices may skip); layers are taken in numeric order; a missing bias
 *   is zero (nn.Linear(bias=False)).  The option names maps other module
 *   names onto these ({"model.enc": "encoder"} renames every tensor under
 *   model.enc.).  Activations carry no tensors: they come from the option
 *   activations ({"encoder": ["relu", "identity"], ...}), else from the
 *   file's metadata anomaly.activations.<network> (which the export and
 *   test/torch_io.py write), else from the option activation (default tanh)
 *   after every layer but the last of each network (the autoencoder's
 *   encoder, which feeds the decoder, keeps it on its last layer; the
 *   discriminator's features use leaky_relu with slope 0.2 throughout).
 *
 *   "native": the tensors exactly as anomaly_weights stores them (ae.w0,
 *   pca.components, iforest.nodes, ...), for every kind; this is what the
 *   export writes for the kinds that have no PyTorch counterpart.
 *
 * The scaler comes from the tensors scaler.mean (or scaler.center) and
 * scaler.scale, else from the options mean and scale, else it is the
 * identity; rows are standardized as (x - mean) / scale before the network,
 * as in training.  Every tensor of the file must be used unless the option
 * strict is false, so a misnamed tensor is an error rather than a silently
 * random layer.  An architecture that does not fit names the tensor.
 *
 * Threshold and score quantiles, in order of preference: the metadata
 * anomaly.threshold and anomaly.score_quantiles (an exported model); the
 * scores of the option query's rows, with the threshold at 1 - contamination
 * exactly as training sets it; else +Infinity (the model scores, but flags
 * nothing until it is calibrated by importing again with a query).  The
 * option threshold overrides the threshold in every case.
 *
 * Export writes the model's tensors (F32) and, in __metadata__, everything
 * else the model row holds: kind, layout, feature names, options, metrics,
 * threshold and all 1001 quantiles as shortest exact decimal text, and the
 * activations, so export -> import reproduces the model bit for bit and
 * test/torch_io.py rebuilds the PyTorch module from the file alone.
 *
 * SQLSTATEs: a malformed file 22P03 (invalid_binary_representation), a file
 * or tensor beyond the limits 54000, a tensor of an integer dtype 42804, a
 * NaN or infinite weight 22000, a tensor that is missing or unexpected
 * 22023, a tensor of the wrong shape 2202E.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "common/string.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "metrics.h"
#include "miscadmin.h"
#include "model.h"
#include "nn.h"
#include "options.h"
#include "safetensors.h"
#include "train.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define IO_FORMAT_VERSION	"1"		/* anomaly.format of the files we write */

/* A tensor of the file under its name after the option names */
typedef struct IoName
{
	char	   *name;			/* mapped, UTF-8 */
	const StTensor *t;			/* t->name is the name in the file */
	bool		used;
} IoName;

/* One dense layer found in the file (shapes only until it is built) */
typedef struct IoLayer
{
	IoName	   *w;				/* weight, out x in */
	IoName	   *b;				/* bias or NULL (zero) */
	IoName	   *w2;				/* a second head stacked below (VAE logvar) */
	IoName	   *b2;
	int			out;
	int			in;
	NnActivation act;
} IoLayer;

/* One network of the file: a Sequential, or a plain Linear (a head) */
typedef struct IoNet
{
	const char *torch;			/* convention name: "encoder" */
	int			n;
	IoLayer		layers[NN_MAX_LAYERS];
} IoNet;

/* The state of one import */
typedef struct IoImport
{
	const char *model;
	const AnomalyKind *kind;
	StFile		file;
	int			nnames;
	IoName	   *names;			/* sorted by name */
	AnomalyOptions opts;
	bool		strict;
	NnActivation activation;	/* the option activation */
	AnomalyTrainResult result;	/* the tensors to store */
	StringInfoData options;		/* options to store, JSON members */
} IoImport;

/*
 * A file name (UTF-8) fit for a message in the server's encoding: as is in a
 * UTF-8 database, else with non-ASCII bytes shown as '?'.
 */
static const char *
IoDisplay(const char *s)
{
	char	   *r;

	if (GetDatabaseEncoding() == PG_UTF8 || pg_is_ascii(s))
		return s;
	r = pstrdup(s);
	for (char *p = r; *p; p++)
		if (IS_HIGHBIT_SET(*p))
			*p = '?';
	return r;
}

/* Text in the server's encoding to UTF-8, and back; always a new copy */
static char *
IoToUtf8(const char *s)
{
	char	   *r = pg_server_to_any(s, strlen(s), PG_UTF8);

	return r == s ? pstrdup(s) : r;
}

static char *
IoFromUtf8(const char *s)
{
	char	   *r = pg_any_to_server(s, strlen(s), PG_UTF8);

	return r == s ? pstrdup(s) : r;
}

/*
 * Report a problem the parser found, with the SQLSTATE of its kind.
 */
static void
IoReport(const StError *e)
{
	switch (e->kind)
	{
		case ST_ERR_LIMIT:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("safetensors file is too large: %s", IoDisplay(e->msg))));
			break;
		case ST_ERR_DTYPE:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s", IoDisplay(e->msg)),
					 errhint("Save the weights as float32 (tensor.float()) before writing the file.")));
			break;
		case ST_ERR_VALUE:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s", IoDisplay(e->msg)),
					 errhint("A model with NaN or infinite weights cannot score; check the training that produced it.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid safetensors file: %s", IoDisplay(e->msg)),
					 errhint("Write the file with safetensors.torch.save_file() or test/torch_io.py.")));
	}
}

/* ---------------------------------------------------------------------
 * Options and metadata
 * --------------------------------------------------------------------- */

/*
 * The import option key (NULL if absent or JSON null), recorded as known.
 */
static JsonbValue *
IoOpt(IoImport *im, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	im->opts.used = lappend(im->opts.used, pstrdup(key));
	if (im->opts.in == NULL)
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&im->opts.in->root, JB_FOBJECT, &k);
	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/* A string option, or NULL */
static char *
IoOptString(IoImport *im, const char *key)
{
	JsonbValue *v = IoOpt(im, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * The elements of an array option (NULL if absent); each must have JSON
 * type "type" (jbvString or jbvNumeric).
 */
static JsonbValue *
IoOptArray(IoImport *im, const char *key, enum jbvType type, int *n)
{
	JsonbValue *v = IoOpt(im, key);
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	JsonbValue *r;
	int			cap;

	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array of %s", key, type == jbvString ? "strings" : "numbers")));
	cap = Max(JsonContainerSize(v->val.binary.data), 1);
	r = palloc(cap * sizeof(JsonbValue));
	*n = 0;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (elem.type != type || *n >= cap)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an array of %s", key, type == jbvString ? "strings" : "numbers")));
		r[(*n)++] = elem;
	}
	return r;
}

/* A JSON number as float, finite */
static float
IoJsonFloat(const JsonbValue *v, const char *key)
{
	double		d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
													   NumericGetDatum(v->val.numeric)));

	if (isnan(d) || fabs(d) > FLT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" holds a value out of range for type real", key)));
	return (float) d;
}

/* The metadata value of key in the server's encoding, or NULL */
static char *
IoMeta(IoImport *im, const char *key)
{
	const char *v = StMetaGet(&im->file, key);

	return v ? IoFromUtf8(v) : NULL;
}

/* A float8 written by float8out (metadata), or an error naming key */
static double
IoParseFloat8(const char *s, const char *key)
{
	bool		have_error = false;
	char	   *end;
	double		v;

	v = float8in_internal_opt_error((char *) s, &end, "double precision", s, &have_error);
	if (have_error || *end != '\0' || isnan(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata \"%s\" holds \"%.40s\", not a number", key, s)));
	return v;
}

/* A JSON metadata value (feature names, options, metrics) as jsonb */
static Jsonb *
IoMetaJson(IoImport *im, const char *key, bool array)
{
	char	   *s = IoMeta(im, key);
	Datum		d;
	Jsonb	   *j;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (s == NULL)
		return NULL;
	PG_TRY();
	{
		d = DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata \"%s\" is not valid JSON", key)));
	}
	PG_END_TRY();
	j = DatumGetJsonbP(d);
	if (array ? !JB_ROOT_IS_ARRAY(j) || JB_ROOT_IS_SCALAR(j) : !JB_ROOT_IS_OBJECT(j))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata \"%s\" must be a JSON %s", key, array ? "array" : "object")));
	return j;
}

/* ---------------------------------------------------------------------
 * Tensors of the file
 * --------------------------------------------------------------------- */

/* qsort/bsearch comparator of IoName by name */
static int
IoCompareName(const void *a, const void *b)
{
	return strcmp(((const IoName *) a)->name, ((const IoName *) b)->name);
}

/*
 * Rename the file's tensors with the option names ({"prefix in the file":
 * "prefix of the convention"}, longest prefix first, on a dot boundary) and
 * sort them for lookups.
 */
static void
IoMapNames(IoImport *im)
{
	JsonbValue *v = IoOpt(im, "names");
	int			nmap = 0;
	char	  **from = NULL;
	char	  **to = NULL;

	if (v != NULL)
	{
		JsonbIterator *it;
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *key = NULL;

		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"names\" must be an object mapping names in the file to names of the convention"),
					 errhint("For example \"names\": {\"enc\": \"encoder\", \"dec\": \"decoder\"}.")));
		from = palloc(Max(JsonContainerSize(v->val.binary.data), 1) * sizeof(char *));
		to = palloc(Max(JsonContainerSize(v->val.binary.data), 1) * sizeof(char *));
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				key = pnstrdup(kv.val.string.val, kv.val.string.len);
			else if (tok == WJB_VALUE)
			{
				if (kv.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"names\" must map names to strings, but \"%s\" maps to something else", key)));
				from[nmap] = IoToUtf8(key);
				to[nmap] = IoToUtf8(pnstrdup(kv.val.string.val, kv.val.string.len));
				nmap++;
			}
		}
	}

	im->nnames = im->file.ntensors;
	im->names = palloc0(Max(im->nnames, 1) * sizeof(IoName));
	for (int i = 0; i < im->nnames; i++)
	{
		const char *name = im->file.tensors[i].name;
		int			best = -1;
		size_t		bestlen = 0;

		for (int k = 0; k < nmap; k++)
		{
			size_t		len = strlen(from[k]);

			if (strncmp(name, from[k], len) == 0 && (name[len] == '\0' || name[len] == '.') &&
				(best < 0 || len > bestlen))
			{
				best = k;
				bestlen = len;
			}
		}
		im->names[i].t = &im->file.tensors[i];
		im->names[i].name = best < 0 ? pstrdup(name) : psprintf("%s%s", to[best], name + bestlen);
	}
	qsort(im->names, im->nnames, sizeof(IoName), IoCompareName);
	for (int i = 1; i < im->nnames; i++)
		if (strcmp(im->names[i - 1].name, im->names[i].name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tensors \"%s\" and \"%s\" of the file both become \"%s\"",
							IoDisplay(im->names[i - 1].t->name), IoDisplay(im->names[i].t->name),
							IoDisplay(im->names[i].name)),
					 errhint("Check the option names.")));
}

/* The tensor called name (after mapping), or NULL */
static IoName *
IoFind(IoImport *im, const char *name)
{
	IoName		key;

	key.name = (char *) name;
	return bsearch(&key, im->names, im->nnames, sizeof(IoName), IoCompareName);
}

/*
 * How a message names a tensor: its mapped name, and the file's name when
 * the option names changed it.
 */
static const char *
IoTensorName(const IoName *n)
{
	if (strcmp(n->name, n->t->name) == 0)
		return IoDisplay(n->name);
	return psprintf("%s (\"%s\" in the file)", IoDisplay(n->name), IoDisplay(n->t->name));
}

/* The shape of a tensor as [a, b] */
static const char *
IoShape(const StTensor *t)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < t->ndim; i++)
		appendStringInfo(&s, "%s" INT64_FORMAT, i > 0 ? ", " : "", t->shape[i]);
	appendStringInfoChar(&s, ']');
	return s.data;
}

/*
 * Read tensor n (a float dtype, finite values) into dst, which has room for
 * all its values, and mark it used.
 */
static void
IoRead(IoImport *im, IoName *n, float *dst)
{
	StError		e;

	n->used = true;
	CHECK_FOR_INTERRUPTS();
	if (!StToFloat(&im->file, n->t, dst, &e))
		IoReport(&e);
}

/*
 * The values of tensor n as floats, palloc'd.
 */
static float *
IoFloats(IoImport *im, IoName *n)
{
	float	   *out;

	if ((uint64) n->t->numel > MaxAllocHugeSize / sizeof(float))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor \"%s\" has " INT64_FORMAT " values, too many to import",
						IoTensorName(n), n->t->numel)));
	out = palloc_extended(Max(n->t->numel, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	IoRead(im, n, out);
	return out;
}

/* ---------------------------------------------------------------------
 * Networks
 * --------------------------------------------------------------------- */

/*
 * A tensor that must have ndim dimensions (a weight 2, a bias 1), each
 * between 1 and NN_MAX_WIDTH.
 */
static void
IoCheckLayerTensor(const IoName *n, int ndim)
{
	const StTensor *t = n->t;

	if (t->ndim != ndim)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tensor \"%s\" has shape %s, but a %s must have %d dimension%s",
						IoTensorName(n), IoShape(t), ndim == 2 ? "layer's weight" : "layer's bias",
						ndim, ndim == 1 ? "" : "s")));
	for (int i = 0; i < ndim; i++)
		if (t->shape[i] < 1 || t->shape[i] > NN_MAX_WIDTH)
			ereport(ERROR,
					(errcode(t->shape[i] < 1 ? ERRCODE_ARRAY_SUBSCRIPT_ERROR : ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor \"%s\" has shape %s; layers must have between 1 and %d units",
							IoTensorName(n), IoShape(t), NN_MAX_WIDTH)));
}

/* Check a layer's bias against its weight */
static void
IoCheckBias(const IoName *b, const IoName *w)
{
	IoCheckLayerTensor(b, 1);
	if (b->t->shape[0] != w->t->shape[0])
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tensor \"%s\" has shape %s, but \"%s\" has %d outputs",
						IoTensorName(b), IoShape(b->t), IoTensorName(w), (int) w->t->shape[0])));
}

/* A tensor of a network with its layer index */
typedef struct IoIndexed
{
	int64		index;
	bool		is_bias;
	IoName	   *n;
} IoIndexed;

/* qsort comparator: by index, the weight before the bias */
static int
IoCompareIndexed(const void *a, const void *b)
{
	const IoIndexed *x = a;
	const IoIndexed *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return (int) x->is_bias - (int) y->is_bias;
}

/*
 * Collect network "torch": the tensors torch.<i>.weight and torch.<i>.bias
 * in the numeric order of i, or with plain, the single layer torch.weight
 * and torch.bias.  Any other tensor under "torch." does not fit.
 */
static void
IoCollect(IoImport *im, const char *torch, bool plain, IoNet *net)
{
	size_t		plen = strlen(torch);
	IoIndexed  *found = palloc(Max(im->nnames, 1) * sizeof(IoIndexed));
	int			nfound = 0;

	memset(net, 0, sizeof(IoNet));
	net->torch = torch;
	for (int i = 0; i < im->nnames; i++)
	{
		IoName	   *n = &im->names[i];
		const char *rest;
		const char *dot;
		int64		index = 0;
		bool		digits = true;

		if (strncmp(n->name, torch, plen) != 0 || n->name[plen] != '.')
			continue;
		rest = n->name + plen + 1;
		if (plain)
		{
			if (strcmp(rest, "weight") == 0 || strcmp(rest, "bias") == 0)
			{
				found[nfound].index = 0;
				found[nfound].is_bias = (rest[0] == 'b');
				found[nfound].n = n;
				nfound++;
				continue;
			}
		}
		else
		{
			dot = strchr(rest, '.');
			if (dot != NULL && dot > rest && dot - rest <= 9)
			{
				for (const char *p = rest; p < dot; p++)
				{
					if (*p < '0' || *p > '9')
						digits = false;
					else
						index = index * 10 + (*p - '0');
				}
				if (digits && (strcmp(dot + 1, "weight") == 0 || strcmp(dot + 1, "bias") == 0))
				{
					found[nfound].index = index;
					found[nfound].is_bias = (dot[1] == 'b');
					found[nfound].n = n;
					nfound++;
					continue;
				}
			}
		}
		if (im->strict)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tensor \"%s\" does not fit the naming convention", IoTensorName(n)),
					 errdetail(plain ? "Network \"%s\" is one linear layer: %s.weight and %s.bias." :
							   "Network \"%s\" is an nn.Sequential of linear layers: %s.<index>.weight and %s.<index>.bias.",
							   torch, torch, torch),
					 errhint("Map other names with the option names, or ignore extra tensors with \"strict\": false.")));
	}
	qsort(found, nfound, sizeof(IoIndexed), IoCompareIndexed);
	for (int i = 0; i < nfound; i++)
	{
		IoLayer    *L;

		if (found[i].is_bias)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tensor \"%s\" is a bias without a weight", IoTensorName(found[i].n))));
		if (net->n >= NN_MAX_LAYERS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("network \"%s\" has more than %d layers", torch, NN_MAX_LAYERS)));
		L = &net->layers[net->n++];
		L->w = found[i].n;
		IoCheckLayerTensor(L->w, 2);
		L->out = (int) L->w->t->shape[0];
		L->in = (int) L->w->t->shape[1];
		if (i + 1 < nfound && found[i + 1].is_bias && found[i + 1].index == found[i].index)
		{
			L->b = found[++i].n;
			IoCheckBias(L->b, L->w);
		}
	}
	pfree(found);
}

/*
 * The activations of network net: the option activations.<torch>, else the
 * metadata anomaly.activations.<torch>, else def_hidden on every layer and
 * def_last on the last.
 */
static void
IoActivations(IoImport *im, JsonbValue *opt, IoNet *net, NnActivation def_hidden, NnActivation def_last)
{
	char	   *meta_key = psprintf("anomaly.activations.%s", net->torch);
	char	   *meta = IoMeta(im, meta_key);
	const char *names[NN_MAX_LAYERS];
	int			n = -1;
	const char *source = NULL;

	if (opt != NULL)
	{
		JsonbValue	k;
		JsonbValue *v;

		k.type = jbvString;
		k.val.string.val = (char *) net->torch;
		k.val.string.len = strlen(net->torch);
		v = findJsonbValueFromContainer(opt->val.binary.data, JB_FOBJECT, &k);
		if (v != NULL)
		{
			JsonbIterator *it;
			JsonbValue	elem;
			JsonbIteratorToken tok;

			if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"activations\" must map \"%s\" to an array of activation names", net->torch)));
			n = 0;
			it = JsonbIteratorInit(v->val.binary.data);
			while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
			{
				if (tok != WJB_ELEM)
					continue;
				if (elem.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"activations\" must map \"%s\" to an array of activation names", net->torch)));
				if (n < NN_MAX_LAYERS)
					names[n] = pnstrdup(elem.val.string.val, elem.val.string.len);
				n++;
			}
			source = "option \"activations\"";
		}
	}
	if (n < 0 && meta != NULL)
	{
		char	   *tok;
		char	   *save;

		n = 0;
		for (tok = strtok_r(meta, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		{
			if (n < NN_MAX_LAYERS)
				names[n] = tok;
			n++;
		}
		source = psprintf("metadata \"%s\"", meta_key);
	}
	if (n < 0)
	{
		for (int l = 0; l < net->n; l++)
			net->layers[l].act = (l == net->n - 1) ? def_last : def_hidden;
		return;
	}
	if (n != net->n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s lists %d activations for network \"%s\", which has %d layers",
						source, n, net->torch, net->n)));
	for (int l = 0; l < n; l++)
	{
		int			a;

		for (a = 0; a < NN_N_ACTIVATIONS; a++)
			if (strcmp(names[l], nn_activation_names[a]) == 0)
				break;
		if (a == NN_N_ACTIVATIONS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s names an unknown activation \"%s\"", source, names[l]),
					 errhint("Valid activations are identity, relu, leaky_relu (slope 0.2), tanh and sigmoid.")));
		net->layers[l].act = (NnActivation) a;
	}
}

/*
 * Check that the layers of parts (concatenated) chain from width in to width
 * out (-1: any), naming the first tensor that does not fit.  Returns the
 * number of layers.
 */
static int
IoCheckChain(IoNet **parts, int nparts, int in, int out, const char *what)
{
	int			prev = in;
	const IoLayer *last = NULL;
	int			total = 0;

	for (int p = 0; p < nparts; p++)
	{
		for (int l = 0; l < parts[p]->n; l++)
		{
			const IoLayer *L = &parts[p]->layers[l];

			if (L->in != prev)
			{
				if (last == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
							 errmsg("tensor \"%s\" has shape %s, but %s takes %d inputs",
									IoTensorName(L->w), IoShape(L->w->t), what, in),
							 errhint("A linear layer's weight is [outputs, inputs], as in nn.Linear.")));
				else
					ereport(ERROR,
							(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
							 errmsg("tensor \"%s\" has shape %s, but the layer before it, \"%s\", has %d outputs",
									IoTensorName(L->w), IoShape(L->w->t), IoTensorName(last->w), last->out)));
			}
			prev = L->out;
			last = L;
			total++;
		}
	}
	if (total > NN_MAX_LAYERS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d layers, more than the limit of %d", what, total, NN_MAX_LAYERS)));
	if (out >= 0 && last != NULL && last->out != out)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tensor \"%s\" has shape %s, but %s must end with %d outputs",
						IoTensorName(last->w), IoShape(last->w->t), what, out)));
	return total;
}

/*
 * Build the network made of parts (already chained) and add its tensors
 * under prefix, as NnSave() stores a trained one.
 */
static void
IoBuildNet(IoImport *im, IoNet **parts, int nparts, const char *prefix)
{
	int			widths[NN_MAX_LAYERS + 1];
	NnActivation acts[NN_MAX_LAYERS];
	int			nl = 0;
	NnNet	   *net;

	for (int p = 0; p < nparts; p++)
		for (int l = 0; l < parts[p]->n; l++)
		{
			const IoLayer *L = &parts[p]->layers[l];

			if (nl == 0)
				widths[0] = L->in;
			widths[nl + 1] = L->out;
			acts[nl] = L->act;
			nl++;
		}
	net = NnCreate(nl, widths, acts);
	nl = 0;
	for (int p = 0; p < nparts; p++)
		for (int l = 0; l < parts[p]->n; l++)
		{
			IoLayer    *L = &parts[p]->layers[l];
			NnLayer    *N = &net->layers[nl++];
			int			top = L->w2 ? L->out / 2 : L->out;

			IoRead(im, L->w, N->W);
			if (L->b)
				IoRead(im, L->b, N->b);
			if (L->w2)
			{
				IoRead(im, L->w2, N->W + (Size) top * L->in);
				if (L->b2)
					IoRead(im, L->b2, N->b + top);
			}
		}
	NnSave(net, &im->result, prefix);
}

/* Whether kind has a PyTorch layout (the deep kinds) */
static bool
IoHasTorchLayout(const AnomalyKind *kind)
{
	return strcmp(kind->name, "autoencoder") == 0 || strcmp(kind->name, "vae") == 0 ||
		strcmp(kind->name, "gan") == 0;
}

/* Append "key": [widths of the outputs of every layer but the last of net] */
static void
IoRecordHidden(IoImport *im, const char *key, IoNet **parts, int nparts, bool include_last)
{
	bool		first = true;

	AnomalyJsonMember(&im->options, key);
	appendStringInfoChar(&im->options, '[');
	for (int p = 0; p < nparts; p++)
		for (int l = 0; l < parts[p]->n; l++)
		{
			if (!include_last && p == nparts - 1 && l == parts[p]->n - 1)
				continue;
			appendStringInfo(&im->options, "%s%d", first ? "" : ", ", parts[p]->layers[l].out);
			first = false;
		}
	appendStringInfoChar(&im->options, ']');
}

/* Append the activations of the networks as {"encoder": [...], ...} */
static void
IoRecordActivations(IoImport *im, IoNet **nets, int nnets)
{
	AnomalyJsonMember(&im->options, "activations");
	appendStringInfoChar(&im->options, '{');
	for (int i = 0; i < nnets; i++)
	{
		appendStringInfo(&im->options, "%s\"%s\": [", i > 0 ? ", " : "", nets[i]->torch);
		for (int l = 0; l < nets[i]->n; l++)
			appendStringInfo(&im->options, "%s\"%s\"", l > 0 ? ", " : "",
							 nn_activation_names[nets[i]->layers[l].act]);
		appendStringInfoChar(&im->options, ']');
	}
	appendStringInfoChar(&im->options, '}');
}

/*
 * Every network the option activations names must be one of nets, so that a
 * misspelled network is an error rather than a silently default activation.
 */
static void
IoCheckActivationNames(JsonbValue *opt, IoNet **nets, int nnets)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (opt == NULL)
		return;
	it = JsonbIteratorInit(opt->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		found = false;
		StringInfoData list;

		if (tok != WJB_KEY)
			continue;
		initStringInfo(&list);
		for (int i = 0; i < nnets; i++)
		{
			if (strlen(nets[i]->torch) == v.val.string.len &&
				strncmp(nets[i]->torch, v.val.string.val, v.val.string.len) == 0)
				found = true;
			appendStringInfo(&list, "%s\"%s\"", i > 0 ? ", " : "", nets[i]->torch);
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"activations\" names network \"%.*s\", which this model does not have",
							(int) v.val.string.len, v.val.string.val),
					 errhint("Its networks are %s.", list.data)));
	}
}

/* A non-negative float option, else the metadata key, else def (NaN: required) */
static float
IoScalar(IoImport *im, const char *opt, const char *meta_key, double def)
{
	double		v = def;
	char	   *meta = IoMeta(im, meta_key);

	if (AnomalyOptGiven(&im->opts, opt))
		v = AnomalyOptReal(&im->opts, opt, 0.0, 0.0, FLT_MAX, false);
	else if (meta != NULL)
	{
		v = IoParseFloat8(meta, meta_key);
		if (!(v >= 0.0) || v > FLT_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid safetensors file: metadata \"%s\" must be a non-negative number", meta_key)));
	}
	if (isnan(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("importing a model of kind %s needs the option \"%s\"", im->kind->name, opt),
				 errhint("The file's metadata has no \"%s\".", meta_key)));
	return (float) v;
}

/*
 * The autoencoder: encoder ++ decoder form one network d -> ... -> d.
 * Returns d.
 */
static int
IoImportAutoencoder(IoImport *im, int d, JsonbValue *acts)
{
	IoNet		enc;
	IoNet		dec;
	IoNet	   *parts[2] = {&enc, &dec};

	IoCollect(im, "encoder", false, &enc);
	IoCollect(im, "decoder", false, &dec);
	if (enc.n + dec.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the file has no tensor encoder.<index>.weight or decoder.<index>.weight"),
				 errhint("An autoencoder is two nn.Sequential modules, encoder and decoder; map other names with the option names.")));
	if (d < 0)
		d = enc.n > 0 ? enc.layers[0].in : dec.layers[0].in;
	IoCheckChain(parts, 2, d, d, "the autoencoder");
	/* the activation after every layer but the network's last */
	IoActivations(im, acts, &enc, im->activation, dec.n > 0 ? im->activation : NN_IDENTITY);
	IoActivations(im, acts, &dec, im->activation, NN_IDENTITY);
	IoBuildNet(im, parts, 2, "ae");
	IoRecordHidden(im, "hidden", parts, 2, false);
	IoCheckActivationNames(acts, parts, 2);
	IoRecordActivations(im, parts, 2);
	return d;
}

/*
 * The VAE: encoder (with heads mu and logvar, or ending in 2L outputs) and
 * decoder L -> d.  Returns d.
 */
static int
IoImportVae(IoImport *im, int d, JsonbValue *acts)
{
	IoNet		enc;
	IoNet		dec;
	IoNet		mu;
	IoNet		lv;
	IoNet	   *eparts[1] = {&enc};
	IoNet	   *dparts[1] = {&dec};
	IoNet	   *all[2] = {&enc, &dec};
	int			L;
	float		beta;

	IoCollect(im, "encoder", false, &enc);
	IoCollect(im, "decoder", false, &dec);
	IoCollect(im, "mu", true, &mu);
	IoCollect(im, "logvar", true, &lv);
	if (dec.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the file has no tensor decoder.<index>.weight"),
				 errhint("A VAE is an nn.Sequential encoder (with linear heads mu and logvar, or a last layer of 2 x latent_dim outputs) and an nn.Sequential decoder.")));
	L = dec.layers[0].in;
	if (L > NN_MAX_WIDTH / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor \"%s\" has shape %s: a latent dimension above %d is not supported",
						IoTensorName(dec.layers[0].w), IoShape(dec.layers[0].w->t), NN_MAX_WIDTH / 2)));
	if (mu.n > 0 || lv.n > 0)
	{
		IoLayer    *H;
		int			h;

		if (mu.n == 0 || lv.n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the file has a head %s.weight but no %s.weight", mu.n ? "mu" : "logvar", mu.n ? "logvar" : "mu")));
		if (enc.n >= NN_MAX_LAYERS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("network \"encoder\" has more than %d layers", NN_MAX_LAYERS - 1)));
		if (d < 0)
			d = enc.n > 0 ? enc.layers[0].in : mu.layers[0].in;
		IoActivations(im, acts, &enc, im->activation, im->activation);
		h = enc.n > 0 ? enc.layers[enc.n - 1].out : d;
		if (mu.layers[0].in != h)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tensor \"%s\" has shape %s, but the encoder has %d outputs",
							IoTensorName(mu.layers[0].w), IoShape(mu.layers[0].w->t), h)));
		if (mu.layers[0].out != L)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tensor \"%s\" has shape %s, but the decoder takes %d inputs",
							IoTensorName(mu.layers[0].w), IoShape(mu.layers[0].w->t), L)));
		if (lv.layers[0].in != h || lv.layers[0].out != L)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tensor \"%s\" has shape %s, but \"%s\" has shape %s",
							IoTensorName(lv.layers[0].w), IoShape(lv.layers[0].w->t),
							IoTensorName(mu.layers[0].w), IoShape(mu.layers[0].w->t))));
		/* the heads become one layer of 2L outputs, mu first, linear */
		H = &enc.layers[enc.n++];
		H->w = mu.layers[0].w;
		H->b = mu.layers[0].b;
		H->w2 = lv.layers[0].w;
		H->b2 = lv.layers[0].b;
		H->in = h;
		H->out = 2 * L;
		H->act = NN_IDENTITY;
	}
	else
	{
		if (enc.n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the file has no tensor encoder.<index>.weight")));
		if (d < 0)
			d = enc.layers[0].in;
		IoActivations(im, acts, &enc, im->activation, NN_IDENTITY);
	}
	IoCheckChain(eparts, 1, d, 2 * L, "the encoder (mu and logvar of the latent code)");
	IoCheckChain(dparts, 1, L, d, "the decoder");
	IoActivations(im, acts, &dec, im->activation, NN_IDENTITY);
	beta = IoScalar(im, "beta", "anomaly.beta", 1.0);
	IoBuildNet(im, eparts, 1, "vae.enc");
	IoBuildNet(im, dparts, 1, "vae.dec");
	AnomalyTensorAdd1(&im->result, "vae.beta", 1, &beta);

	IoRecordHidden(im, "hidden", eparts, 1, false);
	AnomalyJsonMember(&im->options, "latent_dim");
	appendStringInfo(&im->options, "%d", L);
	AnomalyJsonMember(&im->options, "beta");
	AnomalyJsonNumber(&im->options, beta);
	if (mu.n > 0)
		enc.n--;				/* the heads are not activations of the trunk */
	IoCheckActivationNames(acts, all, 2);
	IoRecordActivations(im, all, 2);
	return d;
}

/*
 * The GAN's optional code term: tensors code.mean (L) and code.whiten
 * (L x L) and the weight code_lambda (option, else metadata
 * anomaly.code_lambda).  A file without them (a model of the earlier score)
 * scores without the code term.
 */
static void
IoImportGanCode(IoImport *im, int L)
{
	IoName	   *m = IoFind(im, "code.mean");
	IoName	   *w = IoFind(im, "code.whiten");
	float		code_lambda;

	if (m == NULL && w == NULL)
		return;
	if (m == NULL || w == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the file has tensor %s but not %s",
						m ? "code.mean" : "code.whiten", m ? "code.whiten" : "code.mean"),
				 errhint("The code term of a gan model needs both.")));
	if (m->t->ndim != 1 || m->t->shape[0] != L)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tensor \"%s\" has shape %s, expected [%d]", IoTensorName(m), IoShape(m->t), L)));
	if (w->t->ndim != 2 || w->t->shape[0] != L || w->t->shape[1] != L)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tensor \"%s\" has shape %s, expected [%d, %d]", IoTensorName(w), IoShape(w->t), L, L)));
	code_lambda = IoScalar(im, "code_lambda", "anomaly.code_lambda", get_float8_nan());
	AnomalyTensorAdd1(&im->result, "gan.code_lambda", 1, &code_lambda);
	AnomalyTensorAdd1(&im->result, "gan.code_mean", L, IoFloats(im, m));
	AnomalyTensorAdd2(&im->result, "gan.code_whiten", L, L, IoFloats(im, w));
	AnomalyJsonMember(&im->options, "code_lambda");
	AnomalyJsonNumber(&im->options, code_lambda);
}

/*
 * The GAN: generator encoder d -> L, decoder L -> d, discriminator features
 * d -> w; lambda from the option or the metadata.  Returns d.
 */
static int
IoImportGan(IoImport *im, int d, JsonbValue *acts)
{
	IoNet		enc;
	IoNet		dec;
	IoNet		feat;
	IoNet	   *e[1] = {&enc};
	IoNet	   *g[1] = {&dec};
	IoNet	   *f[1] = {&feat};
	IoNet	   *all[3] = {&enc, &dec, &feat};
	float		lambda;

	IoCollect(im, "encoder", false, &enc);
	IoCollect(im, "decoder", false, &dec);
	IoCollect(im, "features", false, &feat);
	if (enc.n == 0 || dec.n == 0 || feat.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the file has no tensor %s.<index>.weight",
						enc.n == 0 ? "encoder" : dec.n == 0 ? "decoder" : "features"),
				 errhint("A gan model is three nn.Sequential modules: encoder, decoder and the discriminator's features.")));
	if (d < 0)
		d = enc.layers[0].in;
	IoCheckChain(e, 1, d, dec.layers[0].in, "the encoder (the decoder's input)");
	IoCheckChain(g, 1, dec.layers[0].in, d, "the decoder");
	IoCheckChain(f, 1, d, -1, "the discriminator's features");
	IoActivations(im, acts, &enc, im->activation, NN_IDENTITY);
	IoActivations(im, acts, &dec, im->activation, NN_IDENTITY);
	IoActivations(im, acts, &feat, NN_LEAKY_RELU, NN_LEAKY_RELU);
	lambda = IoScalar(im, "lambda", "anomaly.lambda", get_float8_nan());
	IoBuildNet(im, e, 1, "gan.ge");
	IoBuildNet(im, g, 1, "gan.gd");
	IoBuildNet(im, f, 1, "gan.df");
	AnomalyTensorAdd1(&im->result, "gan.lambda", 1, &lambda);
	IoImportGanCode(im, dec.layers[0].in);

	IoRecordHidden(im, "hidden", e, 1, false);
	AnomalyJsonMember(&im->options, "latent_dim");
	appendStringInfo(&im->options, "%d", dec.layers[0].in);
	AnomalyJsonMember(&im->options, "lambda");
	AnomalyJsonNumber(&im->options, lambda);
	IoCheckActivationNames(acts, all, 3);
	IoRecordActivations(im, all, 3);
	return d;
}

/*
 * The native layout: every tensor as the catalog stores it; the kind's
 * load() judges them.
 */
static void
IoImportNative(IoImport *im)
{
	for (int i = 0; i < im->nnames; i++)
	{
		IoName	   *n = &im->names[i];
		const StTensor *t = n->t;
		int			shape[ANOMALY_MAX_NDIM];
		int			ndim = Max(t->ndim, 1);

		if (n->used || strncmp(n->name, "scaler.", 7) == 0)
			continue;
		if (t->ndim > ANOMALY_MAX_NDIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor \"%s\" has %d dimensions, more than the limit of %d",
							IoTensorName(n), t->ndim, ANOMALY_MAX_NDIM)));
		shape[0] = 1;
		for (int k = 0; k < t->ndim; k++)
		{
			if (t->shape[k] > MaxAllocSize / sizeof(float))
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("tensor \"%s\" has shape %s, too large to store", IoTensorName(n), IoShape(t))));
			shape[k] = (int) t->shape[k];
		}
		if ((uint64) t->numel > MaxAllocSize / sizeof(float))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor \"%s\" has shape %s, too large to store", IoTensorName(n), IoShape(t))));
		AnomalyTensorAdd(&im->result, n->name, ndim, shape, IoFloats(im, n));
	}
}

/*
 * The scaler: file tensors scaler.mean (or scaler.center) and scaler.scale,
 * else the options mean and scale, else the identity; adds scaler.center
 * and scaler.scale.  d is the model's features.
 */
static void
IoImportScaler(IoImport *im, IoName *mean_t, IoName *scale_t, int d)
{
	float	   *center = palloc(d * sizeof(float));
	float	   *scale = palloc(d * sizeof(float));
	JsonbValue *mv;
	JsonbValue *sv;
	int			nm = 0;
	int			ns = 0;

	mv = IoOptArray(im, "mean", jbvNumeric, &nm);
	sv = IoOptArray(im, "scale", jbvNumeric, &ns);
	if ((mv && mean_t) || (sv && scale_t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the scaler is given twice, by the option \"%s\" and by tensor \"%s\"",
						mv && mean_t ? "mean" : "scale", IoTensorName(mv && mean_t ? mean_t : scale_t))));
	if ((mv && nm != d) || (sv && ns != d))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("option \"%s\" has %d values, but the model has %d features",
						mv && nm != d ? "mean" : "scale", mv && nm != d ? nm : ns, d)));
	for (int j = 0; j < d; j++)
	{
		center[j] = mv ? IoJsonFloat(&mv[j], "mean") : 0.0f;
		scale[j] = sv ? IoJsonFloat(&sv[j], "scale") : 1.0f;
	}
	if (mean_t)
	{
		if (mean_t->t->ndim != 1 || mean_t->t->shape[0] != d)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tensor \"%s\" has shape %s, but the model has %d features",
							IoTensorName(mean_t), IoShape(mean_t->t), d)));
		IoRead(im, mean_t, center);
	}
	if (scale_t)
	{
		if (scale_t->t->ndim != 1 || scale_t->t->shape[0] != d)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tensor \"%s\" has shape %s, but the model has %d features",
							IoTensorName(scale_t), IoShape(scale_t->t), d)));
		IoRead(im, scale_t, scale);
	}
	for (int j = 0; j < d; j++)
		if (!(scale[j] > 0.0f))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the scaler's scale of feature %d is %g; it must be positive", j + 1, scale[j]),
					 errhint("A constant feature has scale 1 (scikit-learn's StandardScaler does the same).")));
	AnomalyTensorAdd1(&im->result, "scaler.center", d, center);
	AnomalyTensorAdd1(&im->result, "scaler.scale", d, scale);
}

/*
 * The feature names: the option feature_names, else the metadata
 * anomaly.feature_names, else the calibration query's columns, else f1..fd.
 * Returns NULL when the query's columns should decide.
 */
static char **
IoFeatureNames(IoImport *im, int d)
{
	char	  **names = palloc(d * sizeof(char *));
	int			n = 0;
	JsonbValue *v = IoOptArray(im, "feature_names", jbvString, &n);
	const char *source = "option \"feature_names\"";

	if (v != NULL)
	{
		if (n != d)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("option \"feature_names\" has %d names, but the model has %d features", n, d)));
		for (int j = 0; j < d; j++)
			names[j] = pnstrdup(v[j].val.string.val, v[j].val.string.len);
	}
	else
	{
		Jsonb	   *j = IoMetaJson(im, "anomaly.feature_names", true);
		JsonbIterator *it;
		JsonbValue	elem;
		JsonbIteratorToken tok;

		if (j == NULL)
			return NULL;
		source = "metadata \"anomaly.feature_names\"";
		it = JsonbIteratorInit(&j->root);
		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (elem.type != jbvString || n >= d)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("invalid safetensors file: metadata \"anomaly.feature_names\" must be an array of %d strings", d)));
			names[n++] = pnstrdup(elem.val.string.val, elem.val.string.len);
		}
		if (n != d)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid safetensors file: metadata \"anomaly.feature_names\" has %d names, but the model has %d features", n, d)));
	}
	for (int k = 0; k < d; k++)
		if (names[k][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s has an empty name for feature %d", source, k + 1)));
	return names;
}

/*
 * The quantiles and threshold of an exported model, from the metadata.
 * False if the file has none.
 */
static bool
IoMetaQuantiles(IoImport *im, double *quantiles, double *threshold)
{
	char	   *t = IoMeta(im, "anomaly.threshold");
	char	   *q = IoMeta(im, "anomaly.score_quantiles");
	char	   *tok;
	char	   *save;
	int			n = 0;

	if (t == NULL && q == NULL)
		return false;
	if (t == NULL || q == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata has \"%s\" without \"%s\"",
						t ? "anomaly.threshold" : "anomaly.score_quantiles",
						t ? "anomaly.score_quantiles" : "anomaly.threshold")));
	*threshold = IoParseFloat8(t, "anomaly.threshold");
	for (tok = strtok_r(q, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
	{
		if (n >= ANOMALY_N_QUANTILES)
			break;
		quantiles[n] = IoParseFloat8(tok, "anomaly.score_quantiles");
		if (n > 0 && quantiles[n] < quantiles[n - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid safetensors file: metadata \"anomaly.score_quantiles\" is not in increasing order")));
		n++;
	}
	if (n != ANOMALY_N_QUANTILES || tok != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata \"anomaly.score_quantiles\" must hold %d numbers",
						ANOMALY_N_QUANTILES)));
	return true;
}

/* Every tensor of the file must have been used (unless strict is off) */
static int
IoCheckUnused(IoImport *im)
{
	int			used = 0;

	for (int i = 0; i < im->nnames; i++)
	{
		if (im->names[i].used)
			used++;
		else if (im->strict)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tensor \"%s\" is not part of a model of kind %s", IoTensorName(&im->names[i]), im->kind->name),
					 errhint("Map it with the option names, or ignore extra tensors with \"strict\": false.")));
	}
	return used;
}

/* Error context of an import */
static void
IoImportErrorContext(void *arg)
{
	errcontext("importing anomaly model \"%s\"", (const char *) arg);
}

/*
 * Complete the model as a load would (the kind's load() checks every shape);
 * a tensor the kind rejects is the file's fault, not corruption.
 */
static void
IoFinish(IoImport *im, AnomalyModel *model)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	PG_TRY();
	{
		AnomalyModelFinish(model);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char	   *prefix;
		const char *detail;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_DATA_CORRUPTED)
			PG_RE_THROW();
		FlushErrorState();
		/* AnomalyCorrupt() says "model ... is corrupted: <what>" */
		prefix = psprintf("model \"%s\" is corrupted: ", model->name);
		detail = edata->message;
		if (strncmp(detail, prefix, strlen(prefix)) == 0)
			detail += strlen(prefix);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the tensors of the file do not make a model of kind %s", im->kind->name),
				 errdetail("%s", detail),
				 errhint("The native layout names tensors as anomaly_weights stores them.")));
	}
	PG_END_TRY();
}

/*
 * anomaly_import(model text, kind text, weights bytea, options jsonb) returns jsonb
 */
PG_FUNCTION_INFO_V1(anomaly_import);
Datum
anomaly_import(PG_FUNCTION_ARGS)
{
	TimestampTz start = GetCurrentTimestamp();
	IoImport	im;
	char	   *name;
	bytea	   *weights;
	Oid			nsp;
	StError		err;
	char	   *meta_kind;
	char	   *meta_format;
	const char *layout;
	static const char *const layouts[] = {"torch", "native", NULL};
	JsonbValue *acts;
	IoName	   *mean_t;
	IoName	   *scale_t;
	int			d = -1;
	char	  **feature_names;
	char	   *query;
	double		contamination;
	const char *method = "contamination";
	double		risk = ANOMALY_POT_DEFAULT_RISK;
	bool		threshold_given = false;
	double		threshold_value = 0.0;
	int64		max_rows;
	int64		seed;
	AnomalyModel model;
	double		quantiles[ANOMALY_N_QUANTILES];
	double		threshold;
	int			calib_rows = 0;
	int64		rows_read = 0;
	int			used;
	Jsonb	   *stored_options;
	Jsonb	   *meta_metrics;
	StringInfoData metrics;
	StringInfoData summary;
	AnomalyModelRow row;
	int			version;
	long		secs;
	int			usecs;
	ErrorContextCallback errcb;

	if (PG_ARGISNULL(0) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be NULL or empty")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("weights must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	nsp = AnomalyCatalogNamespace(fcinfo);
	/* the privileges training needs, checked before the work */
	AnomalyCatalogCheckAccess(fcinfo, true);
	AnomalyCatalogCheckOwner(nsp, name, false);

	memset(&im, 0, sizeof(im));
	im.model = name;
	initStringInfo(&im.result.metrics);
	initStringInfo(&im.options);
	AnomalyOptionsInit(&im.opts, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));

	/* the file, validated completely before anything is read from it */
	weights = PG_GETARG_BYTEA_PP(2);
	if (!StParse(VARDATA_ANY(weights), VARSIZE_ANY_EXHDR(weights), &im.file, &err))
		IoReport(&err);

	errcb.callback = IoImportErrorContext;
	errcb.arg = name;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	meta_format = IoMeta(&im, "anomaly.format");
	if (meta_format != NULL && strcmp(meta_format, IO_FORMAT_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the file was exported in format \"%s\" of anomaly, this version reads format %s",
						meta_format, IO_FORMAT_VERSION)));

	/* the kind: the argument, else the file's */
	meta_kind = IoMeta(&im, "anomaly.kind");
	if (!PG_ARGISNULL(1))
	{
		im.kind = AnomalyFindKind(text_to_cstring(PG_GETARG_TEXT_PP(1)), false);
		if (meta_kind != NULL && strcmp(meta_kind, im.kind->name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the file holds a model of kind %s, not %s", meta_kind, im.kind->name),
					 errhint("Pass kind NULL to take the file's.")));
	}
	else if (meta_kind != NULL)
		im.kind = AnomalyFindKind(meta_kind, false);
	else
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind must not be NULL when the file does not name one"),
				 errhint("Pass a kind such as 'autoencoder'.")));

	/* options */
	im.strict = AnomalyOptBool(&im.opts, "strict", true);
	layout = IoMeta(&im, "anomaly.layout");
	if (layout != NULL && strcmp(layout, "torch") != 0 && strcmp(layout, "native") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid safetensors file: metadata \"anomaly.layout\" is \"%s\", not \"torch\" or \"native\"",
						layout)));
	if (layout == NULL)
		layout = IoHasTorchLayout(im.kind) ? "torch" : "native";
	layout = AnomalyOptEnum(&im.opts, "layout", layout, layouts);
	im.activation = NnActivationFromName(AnomalyOptEnum(&im.opts, "activation", "tanh", nn_activation_names));
	acts = IoOpt(&im, "activations");
	if (acts != NULL && (acts->type != jbvBinary || !JsonContainerIsObject(acts->val.binary.data)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"activations\" must be an object mapping network names to arrays of activations"),
				 errhint("For example \"activations\": {\"encoder\": [\"relu\", \"identity\"]}.")));
	query = IoOptString(&im, "query");
	contamination = AnomalyOptReal(&im.opts, "contamination", 0.05, 0.0, 0.5, true);
	if (AnomalyOptGiven(&im.opts, "threshold"))
	{
		JsonbValue *tv = IoOpt(&im, "threshold");

		if (tv->type == jbvNumeric)
		{
			threshold_given = true;
			threshold_value = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
																 NumericGetDatum(tv->val.numeric)));
			if (isnan(threshold_value))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"threshold\" must not be NaN")));
		}
		else
		{
			static const char *const methods[] = {"contamination", "pot", NULL};

			method = AnomalyOptEnum(&im.opts, "threshold", "contamination", methods);
			if (query == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"threshold\": \"%s\" needs the option \"query\"", method)));
			if (strcmp(method, "pot") == 0)
				risk = AnomalyOptReal(&im.opts, "risk", ANOMALY_POT_DEFAULT_RISK, 0.0, 0.01, true);
		}
	}
	max_rows = AnomalyOptInt64(&im.opts, "max_rows", 100000, 2, 100000000);
	seed = AnomalyOptInt64(&im.opts, "seed", ANOMALY_DEFAULT_SEED, 0, PG_INT64_MAX);

	/* the tensors */
	IoMapNames(&im);
	mean_t = IoFind(&im, "scaler.mean");
	if (IoFind(&im, "scaler.center"))
	{
		if (mean_t)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the file has both scaler.mean and scaler.center")));
		mean_t = IoFind(&im, "scaler.center");
	}
	scale_t = IoFind(&im, "scaler.scale");
	if (mean_t && mean_t->t->ndim == 1)
		d = (int) Min(mean_t->t->shape[0], ANOMALY_MAX_FEATURES + 1);
	else if (scale_t && scale_t->t->ndim == 1)
		d = (int) Min(scale_t->t->shape[0], ANOMALY_MAX_FEATURES + 1);

	AnomalyJsonMember(&im.options, "source");
	appendStringInfoString(&im.options, "\"safetensors\"");
	AnomalyJsonMember(&im.options, "layout");
	escape_json(&im.options, layout);
	if (strcmp(layout, "native") == 0)
	{
		IoImportNative(&im);
		if (d < 0)
		{
			int			n = 0;

			(void) IoOptArray(&im, "feature_names", jbvString, &n);
			if (n > 0)
				d = n;
		}
		if (d < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the number of features is unknown"),
					 errhint("Include the tensor scaler.mean, or pass the option feature_names.")));
	}
	else if (strcmp(im.kind->name, "autoencoder") == 0)
		d = IoImportAutoencoder(&im, d, acts);
	else if (strcmp(im.kind->name, "vae") == 0)
		d = IoImportVae(&im, d, acts);
	else if (strcmp(im.kind->name, "gan") == 0)
		d = IoImportGan(&im, d, acts);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kind %s has no torch layout", im.kind->name),
				 errhint("Import it with \"layout\": \"native\" (tensors named as anomaly_weights stores them).")));
	if (d < 1 || d > ANOMALY_MAX_FEATURES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the model would have %d features; the limit is %d", d, ANOMALY_MAX_FEATURES)));
	IoImportScaler(&im, mean_t, scale_t, d);
	feature_names = IoFeatureNames(&im, d);
	used = IoCheckUnused(&im);
	AnomalyOptCheckUnused(&im.opts);

	/* the model, completed and checked by the kind as a loaded one */
	memset(&model, 0, sizeof(model));
	model.name = name;
	model.kind = im.kind;
	model.n_features = d;
	model.feature_names = feature_names;
	model.tensors = im.result.tensors;
	model.mcxt = CurrentMemoryContext;
	IoFinish(&im, &model);

	/* threshold and quantiles: the file's, the query's, or none */
	if (query != NULL)
	{
		float	   *X;
		char	  **qnames;
		double	   *sorted;

		calib_rows = AnomalyReadQueryRows(name, query, d, max_rows, (uint64) seed, &X, &qnames, &rows_read);
		if (calib_rows < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calibration query returned no rows")));
		if (feature_names == NULL)
			feature_names = qnames;
		for (Size k = 0; k < (Size) calib_rows * d; k++)
		{
			int			j = k % d;

			X[k] = (X[k] - model.center[j]) * model.inv_scale[j];
		}
		sorted = AnomalyScoreDistribution(&model, calib_rows, X, quantiles);
		if (strcmp(method, "pot") == 0)
			threshold = AnomalyPotThreshold(sorted, calib_rows, risk, ANOMALY_POT_DEFAULT_LEVEL);
		else
			threshold = AnomalySortedQuantile(sorted, calib_rows, 1.0 - contamination);
		AnomalyJsonMember(&im.options, "contamination");
		AnomalyJsonNumber(&im.options, contamination);
	}
	else if (!IoMetaQuantiles(&im, quantiles, &threshold))
	{
		for (int q = 0; q < ANOMALY_N_QUANTILES; q++)
			quantiles[q] = get_float8_infinity();
		threshold = get_float8_infinity();
		if (!threshold_given)
			ereport(NOTICE,
					(errmsg("model \"%s\" has no threshold: anomaly_is_anomaly() is false for every row", name),
					 errhint("Import it with the option query (rows like the training data) to set the threshold and score quantiles.")));
	}
	if (threshold_given)
		threshold = threshold_value;
	if (feature_names == NULL)
	{
		feature_names = palloc(d * sizeof(char *));
		for (int j = 0; j < d; j++)
			feature_names[j] = psprintf("f%d", j + 1);
	}

	/* options and metrics to store */
	stored_options = IoMetaJson(&im, "anomaly.options", false);
	if (stored_options == NULL)
	{
		char	   *s = psprintf("{%s}", im.options.data);

		stored_options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
	}
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	initStringInfo(&metrics);
	appendStringInfo(&metrics, "{\"imported\": {\"format\": \"safetensors\", \"layout\": \"%s\", \"bytes\": %d, \"tensors\": %d",
					 layout, (int) VARSIZE_ANY_EXHDR(weights), used);
	if (query != NULL)
		appendStringInfo(&metrics, ", \"calibration_rows\": %d, \"rows_read\": " INT64_FORMAT, calib_rows, rows_read);
	appendStringInfoString(&metrics, "}}");
	meta_metrics = IoMetaJson(&im, "anomaly.metrics", false);

	error_context_stack = errcb.previous;

	memset(&row, 0, sizeof(row));
	row.name = name;
	row.kind = im.kind->name;
	row.n_features = d;
	row.feature_names = feature_names;
	row.options = stored_options;
	row.threshold = threshold;
	row.quantiles = quantiles;
	row.metrics = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics.data)));
	if (meta_metrics != NULL)
		row.metrics = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(meta_metrics),
														 JsonbPGetDatum(row.metrics)));
	row.rows = calib_rows;
	row.seconds = secs + usecs / 1e6;
	version = AnomalyCatalogStore(nsp, &row, im.result.tensors);

	initStringInfo(&summary);
	appendStringInfoChar(&summary, '{');
	AnomalyJsonMember(&summary, "model");
	escape_json(&summary, name);
	AnomalyJsonMember(&summary, "kind");
	escape_json(&summary, im.kind->name);
	appendStringInfo(&summary, ", \"features\": %d, \"layout\": \"%s\", \"tensors\": %d", d, layout, used);
	if (query != NULL)
		appendStringInfo(&summary, ", \"calibration_rows\": %d", calib_rows);
	appendStringInfoString(&summary, ", \"threshold\": ");
	AnomalyJsonNumber(&summary, threshold);
	appendStringInfo(&summary, ", \"options\": %s, \"version\": %d}",
					 JsonbToCString(NULL, &stored_options->root, VARSIZE(stored_options)), version);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(summary.data)));
}

/* ---------------------------------------------------------------------
 * Export
 * --------------------------------------------------------------------- */

/* What an export writes, in order */
typedef struct IoExport
{
	List	   *tensors;		/* of StWriteTensor * */
	List	   *meta;			/* of StMeta *, UTF-8 */
} IoExport;

/* Add a metadata entry; value is in the server's encoding */
static void
IoAddMeta(IoExport *ex, const char *key, const char *value)
{
	StMeta	   *m = palloc(sizeof(StMeta));

	m->key = pstrdup(key);
	m->value = IoToUtf8(value);
	ex->meta = lappend(ex->meta, m);
}

/* Add a tensor (data not copied) */
static void
IoAddTensor(IoExport *ex, const char *name, int ndim, const int *shape, const float *data)
{
	StWriteTensor *t = palloc0(sizeof(StWriteTensor));

	t->name = IoToUtf8(name);
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->data = data;
	ex->tensors = lappend(ex->tensors, t);
}

/* The shortest decimal text that reads back as exactly v (any extra_float_digits) */
static char *
IoExactText(double v)
{
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

	double_to_shortest_decimal_buf(v, buf);
	return pstrdup(buf);
}

/* The number of layers and the activation codes of network prefix */
static int
IoNetLayers(const AnomalyModel *model, const char *prefix, const float **acts)
{
	AnomalyTensor *t = AnomalyModelFindTensor(model, psprintf("%s.act", prefix));

	if (t == NULL || t->ndim != 1)
		AnomalyCorrupt(model, "tensor \"%s.act\" is missing", prefix);
	*acts = t->data;
	return t->shape[0];
}

/*
 * Write layers [from, to) of network prefix as the nn.Sequential "torch":
 * torch.<k>.weight and torch.<k>.bias, k counting the activation modules
 * between them as PyTorch does; the activations go to the metadata
 * anomaly.activations.<torch>.
 */
static void
IoExportLayers(IoExport *ex, const AnomalyModel *model, const char *prefix, int from, int to,
			   const char *torch)
{
	const float *acts;
	StringInfoData names;
	int			k = 0;

	(void) IoNetLayers(model, prefix, &acts);
	initStringInfo(&names);
	for (int l = from; l < to; l++)
	{
		AnomalyTensor *w = AnomalyModelFindTensor(model, psprintf("%s.w%d", prefix, l));
		AnomalyTensor *b = AnomalyModelFindTensor(model, psprintf("%s.b%d", prefix, l));
		NnActivation act = (NnActivation) acts[l];

		IoAddTensor(ex, psprintf("%s.%d.weight", torch, k), 2, w->shape, w->data);
		IoAddTensor(ex, psprintf("%s.%d.bias", torch, k), 1, b->shape, b->data);
		k += (act == NN_IDENTITY) ? 1 : 2;
		appendStringInfo(&names, "%s%s", l > from ? "," : "", nn_activation_names[act]);
	}
	IoAddMeta(ex, psprintf("anomaly.activations.%s", torch), names.data);
}

/*
 * The autoencoder's one network split at its narrowest layer: encoder up to
 * and including it, decoder after it (import concatenates them again).
 */
static void
IoExportAutoencoder(IoExport *ex, const AnomalyModel *model)
{
	const float *acts;
	int			k = IoNetLayers(model, "ae", &acts);
	int			split = 0;
	int			narrowest = INT_MAX;

	for (int l = 0; l < k - 1; l++)
	{
		AnomalyTensor *w = AnomalyModelFindTensor(model, psprintf("ae.w%d", l));

		if (w->shape[0] < narrowest)
		{
			narrowest = w->shape[0];
			split = l;
		}
	}
	IoExportLayers(ex, model, "ae", 0, split + 1, "encoder");
	IoExportLayers(ex, model, "ae", split + 1, k, "decoder");
}

/*
 * The VAE: the encoder's trunk, its last layer as the heads mu and logvar,
 * the decoder; beta in the metadata.
 */
static void
IoExportVae(IoExport *ex, const AnomalyModel *model)
{
	const float *acts;
	int			k = IoNetLayers(model, "vae.enc", &acts);
	AnomalyTensor *w = AnomalyModelFindTensor(model, psprintf("vae.enc.w%d", k - 1));
	AnomalyTensor *b = AnomalyModelFindTensor(model, psprintf("vae.enc.b%d", k - 1));
	int			L = w->shape[0] / 2;
	int			wshape[2] = {L, w->shape[1]};
	int			bshape[1] = {L};
	const float *beta = AnomalyModelTensor1(model, "vae.beta", 1);

	if ((NnActivation) acts[k - 1] != NN_IDENTITY)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has an activation on the encoder's output, which the torch layout cannot express",
						model->name)));
	IoExportLayers(ex, model, "vae.enc", 0, k - 1, "encoder");
	IoAddTensor(ex, "mu.weight", 2, wshape, w->data);
	IoAddTensor(ex, "mu.bias", 1, bshape, b->data);
	IoAddTensor(ex, "logvar.weight", 2, wshape, w->data + (Size) L * w->shape[1]);
	IoAddTensor(ex, "logvar.bias", 1, bshape, b->data + L);
	k = IoNetLayers(model, "vae.dec", &acts);
	IoExportLayers(ex, model, "vae.dec", 0, k, "decoder");
	IoAddMeta(ex, "anomaly.beta", IoExactText(beta[0]));
}

/* The GAN: generator encoder and decoder, discriminator features; lambda; the code term */
static void
IoExportGan(IoExport *ex, const AnomalyModel *model)
{
	const float *acts;
	const float *lambda = AnomalyModelTensor1(model, "gan.lambda", 1);

	IoExportLayers(ex, model, "gan.ge", 0, IoNetLayers(model, "gan.ge", &acts), "encoder");
	IoExportLayers(ex, model, "gan.gd", 0, IoNetLayers(model, "gan.gd", &acts), "decoder");
	IoExportLayers(ex, model, "gan.df", 0, IoNetLayers(model, "gan.df", &acts), "features");
	IoAddMeta(ex, "anomaly.lambda", IoExactText(lambda[0]));
	if (AnomalyModelFindTensor(model, "gan.code_lambda") != NULL)
	{
		const float *code_lambda = AnomalyModelTensor1(model, "gan.code_lambda", 1);
		AnomalyTensor *zm = AnomalyModelFindTensor(model, "gan.code_mean");
		int			L = zm ? zm->shape[0] : 0;
		int			mshape[1] = {L};
		int			wshape[2] = {L, L};

		IoAddTensor(ex, "code.mean", 1, mshape, AnomalyModelTensor1(model, "gan.code_mean", L));
		IoAddTensor(ex, "code.whiten", 2, wshape, AnomalyModelTensor2(model, "gan.code_whiten", L, L));
		IoAddMeta(ex, "anomaly.code_lambda", IoExactText(code_lambda[0]));
	}
}

/*
 * anomaly_export(model text) returns bytea
 */
PG_FUNCTION_INFO_V1(anomaly_export);
Datum
anomaly_export(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			nsp = AnomalyCatalogNamespace(fcinfo);
	AnomalyModel *model;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext oldcxt;
	IoExport	ex;
	StringInfoData s;
	char	   *options = NULL;
	char	   *metrics = NULL;
	int			ret;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	const char *layout;
	AnomalyTensor *center;
	AnomalyTensor *scale;
	StWriteTensor *tensors;
	StMeta	   *meta;
	ListCell   *lc;
	int			i;

	AnomalyCatalogCheckAccess(fcinfo, false);
	/* the decoded model, checked by its kind; with the statement's snapshot */
	model = AnomalyCatalogLoad(nsp, name, false);
	if (model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("anomaly model \"%s\" does not exist", name)));
	MemoryContextSetParent(model->mcxt, outer);

	/* its options and metrics, with the same snapshot */
	args[0] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(psprintf("SELECT options, metrics FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
										 quote_qualified_identifier(get_namespace_name(nsp), "anomaly_models")),
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading model options failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		o = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		m = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		oldcxt = MemoryContextSwitchTo(outer);
		options = JsonbToCString(NULL, &DatumGetJsonbP(o)->root, -1);
		metrics = isnull ? pstrdup("{}") : JsonbToCString(NULL, &DatumGetJsonbP(m)->root, -1);
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();
	if (options == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("anomaly model \"%s\" does not exist", name)));

	memset(&ex, 0, sizeof(ex));
	layout = IoHasTorchLayout(model->kind) ? "torch" : "native";
	IoAddMeta(&ex, "anomaly.format", IO_FORMAT_VERSION);
	IoAddMeta(&ex, "anomaly.kind", model->kind->name);
	IoAddMeta(&ex, "anomaly.layout", layout);
	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int j = 0; j < model->n_features; j++)
	{
		if (j > 0)
			appendStringInfoString(&s, ", ");
		escape_json(&s, model->feature_names[j]);
	}
	appendStringInfoChar(&s, ']');
	IoAddMeta(&ex, "anomaly.feature_names", s.data);
	IoAddMeta(&ex, "anomaly.options", options);
	IoAddMeta(&ex, "anomaly.metrics", metrics);
	IoAddMeta(&ex, "anomaly.threshold", IoExactText(model->threshold));
	resetStringInfo(&s);
	for (int q = 0; q < ANOMALY_N_QUANTILES; q++)
	{
		char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

		double_to_shortest_decimal_buf(model->quantiles[q], buf);
		appendStringInfo(&s, "%s%s", q > 0 ? "," : "", buf);
	}
	IoAddMeta(&ex, "anomaly.score_quantiles", s.data);

	/* the scaler, then the kind's tensors */
	center = AnomalyModelFindTensor(model, "scaler.center");
	scale = AnomalyModelFindTensor(model, "scaler.scale");
	IoAddTensor(&ex, "scaler.mean", 1, center->shape, center->data);
	IoAddTensor(&ex, "scaler.scale", 1, scale->shape, scale->data);
	if (strcmp(model->kind->name, "autoencoder") == 0)
		IoExportAutoencoder(&ex, model);
	else if (strcmp(model->kind->name, "vae") == 0)
		IoExportVae(&ex, model);
	else if (strcmp(model->kind->name, "gan") == 0)
		IoExportGan(&ex, model);
	else
	{
		foreach(lc, model->tensors)
		{
			AnomalyTensor *t = lfirst(lc);

			if (strncmp(t->name, "scaler.", 7) != 0)
				IoAddTensor(&ex, t->name, t->ndim, t->shape, t->data);
		}
	}

	tensors = palloc(Max(list_length(ex.tensors), 1) * sizeof(StWriteTensor));
	i = 0;
	foreach(lc, ex.tensors)
		tensors[i++] = *(StWriteTensor *) lfirst(lc);
	meta = palloc(list_length(ex.meta) * sizeof(StMeta));
	i = 0;
	foreach(lc, ex.meta)
		meta[i++] = *(StMeta *) lfirst(lc);

	/* the file, after room for the bytea's header */
	initStringInfo(&s);
	appendStringInfoSpaces(&s, VARHDRSZ);
	StWrite(&s, list_length(ex.tensors), tensors, list_length(ex.meta), meta);
	SET_VARSIZE(s.data, s.len);
	PG_RETURN_BYTEA_P((bytea *) s.data);
}
