/*
 * safetensors.c
 *	  A strict parser and a writer of the safetensors format.
 *
 * The format (https://github.com/huggingface/safetensors): bytes 0-7 hold N,
 * the header length, as an unsigned little-endian 64-bit integer; the next
 * N bytes are a UTF-8 JSON object that maps each tensor name to
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, with an
 * optional "__metadata__" object of string values; the rest of the file is
 * the byte buffer, and [begin, end) are offsets into it.  Tensor data is
 * little-endian and row-major.
 *
 * The file comes from a user, so nothing in it is trusted.  In order:
 *   1. the file is at least 8 bytes and at most ST_MAX_FILE; N fits in what
 *      is left of the file and is at most ST_MAX_HEADER; the header starts
 *      with '{' (the spec requires it) and is valid UTF-8 without NUL bytes;
 *   2. a first pass with PostgreSQL's JSON lexer (common/jsonapi.c) rejects
 *      lexical errors and nesting deeper than a header has (3 levels), so the
 *      recursive-descent parser of the second pass cannot run out of stack
 *      whoever links this file;
 *   3. the second pass is PostgreSQL's JSON parser with semantic actions
 *      that accept exactly the header's grammar: known dtypes, shapes of at
 *      most ST_MAX_NDIM non-negative integers, exactly two offsets, string
 *      metadata values, no unknown or repeated fields, no repeated names;
 *      every integer is parsed from its digits with an overflow check;
 *   4. per tensor: the product of the shape and its size in bytes are
 *      computed with overflow checks and must equal end - begin, and
 *      begin <= end <= the buffer's length;
 *   5. sorted by offset, the tensors must tile the buffer exactly, as the
 *      spec requires: no overlap, no hole, nothing after the last tensor.
 * Only then is a tensor's data read (StToFloat), and only within its checked
 * range, byte by byte, so the host's byte order and the buffer's alignment do
 * not matter.  F32, F16, BF16 and F64 convert to float; a NaN, an infinity or
 * an F64 value beyond float's range is an error, not a value.
 *
 * This file compiles in the server and in frontend programs (-DFRONTEND,
 * linked with libpgcommon and libpgport): the fuzz harness in test/fuzz runs
 * it alone.  Hence no ereport here: problems come back in an StError whose
 * kind io.c maps to a SQLSTATE.  Allocations use palloc (a memory context in
 * the server, malloc in a frontend); StFree releases them for frontends.
 *
 * The writer (StWrite) produces F32 tensors in the order given, the header
 * padded with spaces to a multiple of 8 bytes so that every tensor starts
 * 8-byte aligned when the file is mapped, as the reference implementation
 * does.
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <math.h>
#include <float.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "safetensors.h"

#define ST_MAX_DEPTH	3		/* root object, tensor object, shape array */

static const char *const st_dtype_names[ST_N_DTYPES] = {
	"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
	"I32", "U32", "F32", "F64", "I64", "U64"
};

static const int st_dtype_sizes[ST_N_DTYPES] = {
	1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8
};

/* fields of a tensor's object, as bits of StParseState.seen */
#define F_DTYPE		1
#define F_SHAPE		2
#define F_OFFSETS	4

typedef enum StSection
{
	SEC_NONE,
	SEC_TENSOR,
	SEC_META
} StSection;

/* State of the semantic actions of the second pass */
typedef struct StParseState
{
	StFile	   *file;
	StError    *err;
	int			depth;			/* nesting level before the current event */
	int			cap;			/* tensors allocated */
	int			meta_cap;
	bool		root_seen;
	bool		meta_seen;
	StSection	section;		/* what the current top-level member is */
	StTensor   *cur;			/* tensor being read */
	int			field;			/* F_* of the current field of cur, 0 if none */
	int			seen;			/* F_* bits seen in cur */
	int			noffsets;
	StMeta	   *cur_meta;		/* metadata entry being read */
} StParseState;

/*
 * Record an error (the first one wins); always returns false.
 */
static bool
StFail(StError *err, StErrorKind kind, const char *fmt,...) pg_attribute_printf(3, 4);

static bool
StFail(StError *err, StErrorKind kind, const char *fmt,...)
{
	va_list		ap;

	if (err->kind != ST_OK)
		return false;
	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* The name of a dtype in the format ("F32") */
const char *
StDtypeName(StDtype dtype)
{
	return (dtype >= 0 && dtype < ST_N_DTYPES) ? st_dtype_names[dtype] : "?";
}

/* Bytes of one element of a dtype */
int
StDtypeSize(StDtype dtype)
{
	return (dtype >= 0 && dtype < ST_N_DTYPES) ? st_dtype_sizes[dtype] : 0;
}

/*
 * An unsigned decimal integer of 1 to 19 digits (JSON number syntax without
 * sign, fraction or exponent) into *v; false if anything else or beyond
 * PG_INT64_MAX.
 */
static bool
StParseUint(const char *s, uint64 *v)
{
	uint64		r = 0;
	int			n = 0;

	for (; *s; s++, n++)
	{
		if (*s < '0' || *s > '9' || n >= 19)
			return false;
		r = r * 10 + (uint64) (*s - '0');
	}
	if (n == 0 || r > (uint64) PG_INT64_MAX)
		return false;
	*v = r;
	return true;
}

/* The name of the current tensor, for messages */
static const char *
StCurName(const StParseState *st)
{
	return st->cur ? st->cur->name : "?";
}

/* A top-level member whose value is not an object */
static void
StFailMember(StParseState *st)
{
	if (st->section == SEC_META)
		StFail(st->err, ST_ERR_FORMAT, "__metadata__ must be an object");
	else
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" must be an object with dtype, shape and data_offsets",
			   StCurName(st));
}

/*
 * Check a tensor whose object just closed: all fields present, size
 * consistent with the byte range, range inside the buffer.
 */
static void
StFinishTensor(StParseState *st)
{
	StTensor   *t = st->cur;
	int64		numel = 1;
	uint64		nbytes;

	if (!(st->seen & F_DTYPE))
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has no dtype", t->name);
	else if (!(st->seen & F_SHAPE))
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has no shape", t->name);
	else if (!(st->seen & F_OFFSETS))
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has no data_offsets", t->name);
	if (st->err->kind != ST_OK)
		return;

	for (int i = 0; i < t->ndim; i++)
	{
		if (t->shape[i] != 0 && numel > PG_INT64_MAX / t->shape[i])
		{
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": the product of its shape overflows", t->name);
			return;
		}
		numel *= t->shape[i];
	}
	if (numel > PG_INT64_MAX / StDtypeSize(t->dtype))
	{
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": its size in bytes overflows", t->name);
		return;
	}
	t->numel = numel;
	nbytes = (uint64) numel * StDtypeSize(t->dtype);
	if (t->begin > t->end)
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": data_offsets [" UINT64_FORMAT ", " UINT64_FORMAT "] end before they begin",
			   t->name, t->begin, t->end);
	else if (t->end > st->file->data_len)
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": data_offsets [" UINT64_FORMAT ", " UINT64_FORMAT "] lie outside the data buffer of " UINT64_FORMAT " bytes",
			   t->name, t->begin, t->end, st->file->data_len);
	else if (t->end - t->begin != nbytes)
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": shape and dtype %s need " UINT64_FORMAT " bytes, but data_offsets [" UINT64_FORMAT ", " UINT64_FORMAT "] hold " UINT64_FORMAT,
			   t->name, StDtypeName(t->dtype), nbytes, t->begin, t->end, t->end - t->begin);
}

/*
 * The JSON parser's semantic actions.  depth is the nesting level before the
 * event: 0 the header, 1 a tensor or __metadata__, 2 a tensor's field or a
 * metadata value, 3 an element of shape or data_offsets.  Once an error is
 * recorded they only keep depth balanced and free what they are given.
 */
static void
StObjectStart(void *arg)
{
	StParseState *st = arg;

	if (st->err->kind == ST_OK)
	{
		if (st->depth == 0)
			st->root_seen = true;
		else if (st->depth == 1)
		{
			if (st->section == SEC_TENSOR)
			{
				st->seen = 0;
				st->field = 0;
			}
		}
		else if (st->depth == 2 && st->section == SEC_META)
			StFail(st->err, ST_ERR_FORMAT, "__metadata__ values must be strings");
		else
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": field values must be a string or an array of integers",
				   StCurName(st));
	}
	st->depth++;
}

static void
StObjectEnd(void *arg)
{
	StParseState *st = arg;

	st->depth--;
	if (st->err->kind == ST_OK && st->depth == 1 && st->section == SEC_TENSOR)
		StFinishTensor(st);
}

static void
StArrayStart(void *arg)
{
	StParseState *st = arg;

	if (st->err->kind == ST_OK)
	{
		if (st->depth == 0)
			StFail(st->err, ST_ERR_FORMAT, "the header must be a JSON object");
		else if (st->depth == 1)
			StFailMember(st);
		else if (st->depth == 2 && st->section == SEC_META)
			StFail(st->err, ST_ERR_FORMAT, "__metadata__ values must be strings");
		else if (st->depth == 2 && st->field == F_DTYPE)
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": dtype must be a string", StCurName(st));
		else if (st->depth >= 3)
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": shape and data_offsets must be arrays of integers",
				   StCurName(st));
	}
	st->depth++;
}

static void
StArrayEnd(void *arg)
{
	StParseState *st = arg;

	st->depth--;
	if (st->err->kind == ST_OK && st->depth == 2 && st->field == F_OFFSETS && st->noffsets != 2)
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": data_offsets must hold two integers, not %d",
			   StCurName(st), st->noffsets);
}

/*
 * A member's name: a tensor or __metadata__ at level 1, a field of a tensor
 * or a metadata key at level 2.  Takes ownership of fname.
 */
static void
StFieldStart(void *arg, char *fname, bool isnull)
{
	StParseState *st = arg;
	StFile	   *f = st->file;

	if (st->err->kind != ST_OK)
	{
		pfree(fname);
		return;
	}
	if (st->depth == 1)
	{
		if (strcmp(fname, "__metadata__") == 0)
		{
			pfree(fname);
			if (st->meta_seen)
			{
				StFail(st->err, ST_ERR_FORMAT, "the header has two __metadata__ members");
				return;
			}
			st->meta_seen = true;
			st->section = SEC_META;
			st->cur = NULL;
			return;
		}
		if (f->ntensors >= ST_MAX_TENSORS)
		{
			pfree(fname);
			StFail(st->err, ST_ERR_LIMIT, "the file has more than %d tensors", ST_MAX_TENSORS);
			return;
		}
		if (f->ntensors == st->cap)
		{
			st->cap = st->cap ? st->cap * 2 : 16;
			f->tensors = f->tensors ? repalloc(f->tensors, st->cap * sizeof(StTensor)) :
				palloc(st->cap * sizeof(StTensor));
		}
		st->cur = &f->tensors[f->ntensors++];
		memset(st->cur, 0, sizeof(StTensor));
		st->cur->name = fname;
		st->section = SEC_TENSOR;
		return;
	}
	if (st->depth == 2 && st->section == SEC_META)
	{
		if (f->nmeta >= ST_MAX_META)
		{
			pfree(fname);
			StFail(st->err, ST_ERR_LIMIT, "__metadata__ has more than %d entries", ST_MAX_META);
			return;
		}
		if (f->nmeta == st->meta_cap)
		{
			st->meta_cap = st->meta_cap ? st->meta_cap * 2 : 16;
			f->meta = f->meta ? repalloc(f->meta, st->meta_cap * sizeof(StMeta)) :
				palloc(st->meta_cap * sizeof(StMeta));
		}
		st->cur_meta = &f->meta[f->nmeta++];
		st->cur_meta->key = fname;
		st->cur_meta->value = NULL;
		return;
	}
	if (st->depth == 2 && st->section == SEC_TENSOR)
	{
		int			field = 0;

		if (strcmp(fname, "dtype") == 0)
			field = F_DTYPE;
		else if (strcmp(fname, "shape") == 0)
			field = F_SHAPE;
		else if (strcmp(fname, "data_offsets") == 0)
			field = F_OFFSETS;
		if (field == 0)
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has an unknown field \"%.64s\"", StCurName(st), fname);
		else if (st->seen & field)
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has field \"%s\" twice", StCurName(st), fname);
		pfree(fname);
		st->field = field;
		st->seen |= field;
		st->noffsets = 0;
		return;
	}
	/* deeper levels are rejected by their container's start event */
	pfree(fname);
}

/*
 * A scalar value: a dtype or metadata string at level 2, a dimension or an
 * offset at level 3.  Takes ownership of token.
 */
static void
StScalar(void *arg, char *token, JsonTokenType type)
{
	StParseState *st = arg;
	StTensor   *t = st->cur;
	uint64		v;

	if (st->err->kind != ST_OK)
	{
		pfree(token);
		return;
	}
	if (st->depth == 0)
		StFail(st->err, ST_ERR_FORMAT, "the header must be a JSON object");
	else if (st->depth == 1)
		StFailMember(st);
	else if (st->depth == 2 && st->section == SEC_META)
	{
		if (type != JSON_TOKEN_STRING)
			StFail(st->err, ST_ERR_FORMAT, "__metadata__ value of \"%.64s\" must be a string", st->cur_meta->key);
		else
		{
			st->cur_meta->value = token;
			return;				/* kept */
		}
	}
	else if (st->depth == 2 && st->field == F_DTYPE)
	{
		int			i;

		if (type != JSON_TOKEN_STRING)
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": dtype must be a string", t->name);
		else
		{
			for (i = 0; i < ST_N_DTYPES; i++)
				if (strcmp(token, st_dtype_names[i]) == 0)
					break;
			if (i == ST_N_DTYPES)
				StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\" has an unknown dtype \"%.32s\"", t->name, token);
			else
				t->dtype = (StDtype) i;
		}
	}
	else if (st->depth == 2)
		StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": shape and data_offsets must be arrays of integers",
			   StCurName(st));
	else if (st->depth == 3 && st->section == SEC_TENSOR &&
			 (st->field == F_SHAPE || st->field == F_OFFSETS))
	{
		if (type != JSON_TOKEN_NUMBER || !StParseUint(token, &v))
			StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": %s must hold non-negative integers, not %.32s",
				   t->name, st->field == F_SHAPE ? "shape" : "data_offsets", token);
		else if (st->field == F_SHAPE)
		{
			if (t->ndim >= ST_MAX_NDIM)
				StFail(st->err, ST_ERR_LIMIT, "tensor \"%s\" has more than %d dimensions", t->name, ST_MAX_NDIM);
			else
				t->shape[t->ndim++] = (int64) v;
		}
		else
		{
			if (st->noffsets >= 2)
				StFail(st->err, ST_ERR_FORMAT, "tensor \"%s\": data_offsets must hold two integers", t->name);
			else if (st->noffsets++ == 0)
				t->begin = v;
			else
				t->end = v;
		}
	}
	else
		StFail(st->err, ST_ERR_FORMAT, "the header is not a safetensors header");
	pfree(token);
}

/* Release a lexer context (PG 15 has no function for it) */
static void
StFreeLex(JsonLexContext *lex)
{
	if (lex->strval)
	{
		pfree(lex->strval->data);
		pfree(lex->strval);
	}
	pfree(lex);
}

/*
 * The detail of a JSON syntax error, palloc'd.  json_errdetail() returns a
 * string literal for some errors and palloc'd text for others, so it is
 * always copied and the copy is what the caller frees.  Frontend builds of
 * libpgcommon (the fuzz harness) do not have json_errdetail().
 */
static char *
StJsonError(JsonParseErrorType jr, JsonLexContext *lex)
{
#ifdef FRONTEND
	return psprintf("JSON parse error %d", (int) jr);
#else
	return pstrdup(json_errdetail(jr, lex));
#endif
}

/* qsort comparators: tensors by name, by byte range; metadata by key */
static int
StCompareName(const void *a, const void *b)
{
	return strcmp((*(StTensor *const *) a)->name, (*(StTensor *const *) b)->name);
}

static int
StCompareOffset(const void *a, const void *b)
{
	const StTensor *x = *(StTensor *const *) a;
	const StTensor *y = *(StTensor *const *) b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int
StCompareMetaKey(const void *a, const void *b)
{
	return strcmp(((const StMeta *) a)->key, ((const StMeta *) b)->key);
}

/*
 * Parse and validate a file of len bytes (see the file header).  On success
 * fills *file (pointing into buf) and returns true; otherwise fills *err and
 * returns false (call StFree either way).
 */
bool
StParse(const void *buf, uint64 len, StFile *file, StError *err)
{
	const unsigned char *p = buf;
	uint64		n = 0;
	char	   *header;
	JsonLexContext *lex;
	JsonParseErrorType jr;
	int			depth = 0;
	JsonSemAction sem;
	StParseState st;
	StTensor  **by_off;
	uint64		pos;

	memset(file, 0, sizeof(StFile));
	memset(err, 0, sizeof(StError));

	/* 1. sizes */
	if (len > ST_MAX_FILE)
		return StFail(err, ST_ERR_LIMIT, "the file has " UINT64_FORMAT " bytes, more than the limit of " UINT64_FORMAT,
					  len, ST_MAX_FILE);
	if (len < 8)
		return StFail(err, ST_ERR_FORMAT, "the file has " UINT64_FORMAT " bytes, too few for the 8-byte header length", len);
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | p[i];
	if (n > len - 8)
		return StFail(err, ST_ERR_FORMAT, "the header length " UINT64_FORMAT " exceeds the " UINT64_FORMAT " bytes that follow it",
					  n, len - 8);
	if (n > ST_MAX_HEADER)
		return StFail(err, ST_ERR_LIMIT, "the header has " UINT64_FORMAT " bytes, more than the limit of %d",
					  n, ST_MAX_HEADER);
	if (n < 2 || p[8] != '{')
		return StFail(err, ST_ERR_FORMAT, "the header does not start with '{'");
	header = (char *) p + 8;
	if (pg_encoding_verifymbstr(PG_UTF8, header, (int) n) != (int) n)
		return StFail(err, ST_ERR_FORMAT, "the header is not valid UTF-8 or contains a NUL byte");
	file->header_len = n;
	file->data = p + 8 + n;
	file->data_len = len - 8 - n;

	/* 2. lexical check and nesting depth, with the JSON lexer */
	lex = makeJsonLexContextCstringLen(header, (int) n, PG_UTF8, false);
	for (;;)
	{
		jr = json_lex(lex);
		if (jr != JSON_SUCCESS)
		{
			char	   *detail = StJsonError(jr, lex);

			StFail(err, ST_ERR_FORMAT, "the header is not valid JSON: %s", detail);
			pfree(detail);
			StFreeLex(lex);
			return false;
		}
		if (lex->token_type == JSON_TOKEN_END)
			break;
		if (lex->token_type == JSON_TOKEN_OBJECT_START || lex->token_type == JSON_TOKEN_ARRAY_START)
		{
			if (++depth > ST_MAX_DEPTH)
			{
				StFreeLex(lex);
				return StFail(err, ST_ERR_FORMAT, "the header nests deeper than a safetensors header can");
			}
		}
		else if (lex->token_type == JSON_TOKEN_OBJECT_END || lex->token_type == JSON_TOKEN_ARRAY_END)
			depth--;
	}
	StFreeLex(lex);

	/* 3. the grammar of the header, with the JSON parser */
	memset(&st, 0, sizeof(st));
	st.file = file;
	st.err = err;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = StObjectStart;
	sem.object_end = StObjectEnd;
	sem.array_start = StArrayStart;
	sem.array_end = StArrayEnd;
	sem.object_field_start = StFieldStart;
	sem.scalar = StScalar;
	lex = makeJsonLexContextCstringLen(header, (int) n, PG_UTF8, true);
	jr = pg_parse_json(lex, &sem);
	if (jr != JSON_SUCCESS)
	{
		char	   *detail = StJsonError(jr, lex);

		/* a syntax error explains more than what the actions saw before it */
		err->kind = ST_OK;
		StFail(err, ST_ERR_FORMAT, "the header is not valid JSON: %s", detail);
		pfree(detail);
	}
	StFreeLex(lex);
	if (err->kind != ST_OK)
		return false;
	if (!st.root_seen)
		return StFail(err, ST_ERR_FORMAT, "the header must be a JSON object");

	/* names and metadata keys are unique */
	file->by_name = palloc(Max(file->ntensors, 1) * sizeof(StTensor *));
	for (int i = 0; i < file->ntensors; i++)
		file->by_name[i] = &file->tensors[i];
	qsort(file->by_name, file->ntensors, sizeof(StTensor *), StCompareName);
	for (int i = 1; i < file->ntensors; i++)
		if (strcmp(file->by_name[i - 1]->name, file->by_name[i]->name) == 0)
			return StFail(err, ST_ERR_FORMAT, "tensor \"%s\" appears twice in the header", file->by_name[i]->name);
	if (file->nmeta > 1)
	{
		StMeta	   *sorted = palloc(file->nmeta * sizeof(StMeta));
		bool		dup = false;

		memcpy(sorted, file->meta, file->nmeta * sizeof(StMeta));
		qsort(sorted, file->nmeta, sizeof(StMeta), StCompareMetaKey);
		for (int i = 1; i < file->nmeta && !dup; i++)
			if (strcmp(sorted[i - 1].key, sorted[i].key) == 0)
			{
				StFail(err, ST_ERR_FORMAT, "__metadata__ has key \"%.64s\" twice", sorted[i].key);
				dup = true;
			}
		pfree(sorted);
		if (dup)
			return false;
	}

	/* 5. the tensors tile the buffer */
	by_off = palloc(Max(file->ntensors, 1) * sizeof(StTensor *));
	for (int i = 0; i < file->ntensors; i++)
		by_off[i] = &file->tensors[i];
	qsort(by_off, file->ntensors, sizeof(StTensor *), StCompareOffset);
	pos = 0;
	for (int i = 0; i < file->ntensors; i++)
	{
		StTensor   *t = by_off[i];

		if (t->begin < pos)
		{
			StFail(err, ST_ERR_FORMAT, "tensors \"%s\" and \"%s\" overlap in the data buffer",
				   by_off[i - 1]->name, t->name);
			break;
		}
		if (t->begin > pos)
		{
			StFail(err, ST_ERR_FORMAT, "bytes " UINT64_FORMAT " to " UINT64_FORMAT " of the data buffer belong to no tensor",
				   pos, t->begin);
			break;
		}
		pos = t->end;
	}
	pfree(by_off);
	if (err->kind != ST_OK)
		return false;
	if (pos != file->data_len)
		return StFail(err, ST_ERR_FORMAT, "the last " UINT64_FORMAT " bytes of the data buffer belong to no tensor",
					  file->data_len - pos);
	return true;
}

/*
 * Free what StParse allocated (frontends; the server frees the context).
 */
void
StFree(StFile *file)
{
	for (int i = 0; i < file->ntensors; i++)
		pfree(file->tensors[i].name);
	if (file->tensors)
		pfree(file->tensors);
	if (file->by_name)
		pfree(file->by_name);
	for (int i = 0; i < file->nmeta; i++)
	{
		pfree(file->meta[i].key);
		if (file->meta[i].value)
			pfree(file->meta[i].value);
	}
	if (file->meta)
		pfree(file->meta);
	memset(file, 0, sizeof(StFile));
}

/*
 * The tensor called name, or NULL.
 */
const StTensor *
StFind(const StFile *file, const char *name)
{
	int			lo = 0;
	int			hi = file->ntensors - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, file->by_name[mid]->name);

		if (c == 0)
			return file->by_name[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/*
 * The metadata value of key, or NULL.
 */
const char *
StMetaGet(const StFile *file, const char *key)
{
	for (int i = 0; i < file->nmeta; i++)
		if (strcmp(file->meta[i].key, key) == 0)
			return file->meta[i].value;
	return NULL;
}

/* IEEE half precision to float (exact); false for infinities and NaN */
static inline bool
StHalfToFloat(uint16 h, float *out)
{
	int			exp = (h >> 10) & 0x1f;
	int			mant = h & 0x3ff;
	float		v;

	if (exp == 0x1f)
		return false;
	if (exp == 0)
		v = ldexpf((float) mant, -24);
	else
		v = ldexpf((float) (mant | 0x400), exp - 25);
	*out = (h & 0x8000) ? -v : v;
	return true;
}

/*
 * Convert tensor t (already validated by StParse) to numel floats in out.
 * F32, F16, BF16 and F64 only; any non-finite value, or an F64 value beyond
 * float's range, is an error naming the element (0-based, row-major).
 */
bool
StToFloat(const StFile *file, const StTensor *t, float *out, StError *err)
{
	const unsigned char *p = file->data + t->begin;

	memset(err, 0, sizeof(StError));
	if (t->end > file->data_len || t->end - t->begin != (uint64) t->numel * StDtypeSize(t->dtype))
		return StFail(err, ST_ERR_FORMAT, "tensor \"%s\" lies outside the data buffer", t->name);
	for (int64 i = 0; i < t->numel; i++)
	{
		float		f;
		bool		ok = true;

		switch (t->dtype)
		{
			case ST_F32:
				{
					uint32		u = (uint32) p[0] | (uint32) p[1] << 8 | (uint32) p[2] << 16 | (uint32) p[3] << 24;

					memcpy(&f, &u, sizeof(f));
					ok = isfinite(f);
					p += 4;
					break;
				}
			case ST_BF16:
				{
					uint32		u = ((uint32) p[0] | (uint32) p[1] << 8) << 16;

					memcpy(&f, &u, sizeof(f));
					ok = isfinite(f);
					p += 2;
					break;
				}
			case ST_F16:
				ok = StHalfToFloat((uint16) (p[0] | p[1] << 8), &f);
				p += 2;
				break;
			case ST_F64:
				{
					uint64		u = 0;
					double		d;

					for (int k = 7; k >= 0; k--)
						u = (u << 8) | p[k];
					memcpy(&d, &u, sizeof(d));
					ok = isfinite(d) && fabs(d) <= FLT_MAX;
					f = (float) d;
					p += 8;
					break;
				}
			default:
				return StFail(err, ST_ERR_DTYPE, "tensor \"%s\" has dtype %s; only F32, F16, BF16 and F64 can be read as real numbers",
							  t->name, StDtypeName(t->dtype));
		}
		if (!ok)
			return StFail(err, ST_ERR_VALUE, "tensor \"%s\" holds a NaN, an infinity or a value out of range for real at element " INT64_FORMAT,
						  t->name, i);
		out[i] = f;
	}
	return true;
}

/* Append s as a JSON string (UTF-8 passed through, controls escaped) */
static void
StAppendJsonString(StringInfo out, const char *s)
{
	appendStringInfoChar(out, '"');
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
		{
			appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, (char) c);
		}
		else if (c < 0x20)
			appendStringInfo(out, "\\u%04x", c);
		else
			appendStringInfoChar(out, (char) c);
	}
	appendStringInfoChar(out, '"');
}

/*
 * Append a safetensors file to out: the metadata (UTF-8 strings), then the
 * tensors as F32 in the order given.  Names must be distinct and UTF-8.
 */
void
StWrite(StringInfo out, int ntensors, const StWriteTensor *tensors,
		int nmeta, const StMeta *meta)
{
	StringInfoData h;
	uint64		off = 0;
	uint64		hlen;

	initStringInfo(&h);
	appendStringInfoChar(&h, '{');
	if (nmeta > 0)
	{
		appendStringInfoString(&h, "\"__metadata__\":{");
		for (int i = 0; i < nmeta; i++)
		{
			if (i > 0)
				appendStringInfoChar(&h, ',');
			StAppendJsonString(&h, meta[i].key);
			appendStringInfoChar(&h, ':');
			StAppendJsonString(&h, meta[i].value);
		}
		appendStringInfoChar(&h, '}');
	}
	for (int i = 0; i < ntensors; i++)
	{
		const StWriteTensor *t = &tensors[i];
		uint64		numel = 1;

		for (int k = 0; k < t->ndim; k++)
			numel *= (uint64) t->shape[k];
		if (i > 0 || nmeta > 0)
			appendStringInfoChar(&h, ',');
		StAppendJsonString(&h, t->name);
		appendStringInfoString(&h, ":{\"dtype\":\"F32\",\"shape\":[");
		for (int k = 0; k < t->ndim; k++)
			appendStringInfo(&h, "%s" INT64_FORMAT, k > 0 ? "," : "", t->shape[k]);
		appendStringInfo(&h, "],\"data_offsets\":[" UINT64_FORMAT "," UINT64_FORMAT "]}",
						 off, off + numel * 4);
		off += numel * 4;
	}
	appendStringInfoChar(&h, '}');
	while ((8 + h.len) % ST_ALIGN != 0)
		appendStringInfoChar(&h, ' ');

	hlen = (uint64) h.len;
	for (int k = 0; k < 8; k++)
		appendStringInfoChar(out, (char) ((hlen >> (8 * k)) & 0xff));
	appendBinaryStringInfo(out, h.data, h.len);
	pfree(h.data);

	/* the data, little-endian; enlargeStringInfo refuses more than 1 GB */
	enlargeStringInfo(out, (int) Min(off, (uint64) PG_INT32_MAX));
	for (int i = 0; i < ntensors; i++)
	{
		const StWriteTensor *t = &tensors[i];
		uint64		numel = 1;
		unsigned char *dst = (unsigned char *) out->data + out->len;

		for (int k = 0; k < t->ndim; k++)
			numel *= (uint64) t->shape[k];
		for (uint64 j = 0; j < numel; j++)
		{
			uint32		u;

			memcpy(&u, &t->data[j], sizeof(u));
			dst[0] = (unsigned char) (u & 0xff);
			dst[1] = (unsigned char) ((u >> 8) & 0xff);
			dst[2] = (unsigned char) ((u >> 16) & 0xff);
			dst[3] = (unsigned char) ((u >> 24) & 0xff);
			dst += 4;
		}
		out->len += (int) (numel * 4);
	}
	out->data[out->len] = '\0';
}
