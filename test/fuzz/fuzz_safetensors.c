/*
 * fuzz_safetensors.c
 *	  libFuzzer harness of the safetensors parser (src/safetensors.c) alone.
 *
 * Built by test/fuzz/run.sh as a frontend program against libpgcommon and
 * libpgport, with AddressSanitizer and UndefinedBehaviorSanitizer.  For each
 * input it
 *   - parses the bytes (StParse); on failure the error must say something;
 *   - on success checks the parser's promises: every tensor's byte range is
 *     inside the buffer and matches its shape and dtype, the ranges tile
 *     the buffer, every name is found by StFind;
 *   - reads every float tensor (StToFloat) and, when all tensors are float
 *     and finite, writes them back with StWrite, parses the result again and
 *     requires the same names, shapes, metadata and bit-identical values.
 * A broken promise aborts, which libFuzzer reports as a finding, as it does
 * any sanitizer report.
 *
 * Memory: the parser allocates with palloc.  PostgreSQL 15's JSON parser
 * leaks a field name when it meets a syntax error after it, and
 * json_errdetail() the token it quotes (harmless in the server, where a
 * memory context is reset), which LeakSanitizer would report on every such
 * input.  So this file replaces the frontend allocator
 * (fe_memutils.c) with one that keeps every block on a list and frees the
 * list after each input: leaks cannot accumulate, and each block is still
 * its own malloc() so that AddressSanitizer sees every overrun.
 */
#include "postgres_fe.h"

#include <stdlib.h>

#include "safetensors.h"

/* ---- an allocator whose blocks are all freed after each input ---- */

typedef struct Block
{
	struct Block *prev;
	struct Block *next;
	size_t		size;
	max_align_t	pad[];			/* user data follows, maximally aligned */
} Block;

static Block arena = {&arena, &arena, 0};

static void *
ArenaAlloc(size_t size, bool zero)
{
	Block	   *b = malloc(sizeof(Block) + Max(size, 1));

	if (b == NULL)
	{
		fprintf(stderr, "out of memory\n");
		abort();
	}
	b->size = size;
	b->next = arena.next;
	b->prev = &arena;
	arena.next->prev = b;
	arena.next = b;
	if (zero)
		memset(b->pad, 0, size);
	return b->pad;
}

static void
ArenaFree(void *p)
{
	Block	   *b;

	if (p == NULL)
		return;
	b = (Block *) ((char *) p - offsetof(Block, pad));
	b->prev->next = b->next;
	b->next->prev = b->prev;
	free(b);
}

static void *
ArenaRealloc(void *p, size_t size)
{
	Block	   *b;
	void	   *n;

	if (p == NULL)
		return ArenaAlloc(size, false);
	b = (Block *) ((char *) p - offsetof(Block, pad));
	n = ArenaAlloc(size, false);
	memcpy(n, p, Min(size, b->size));
	ArenaFree(p);
	return n;
}

static void
ArenaReset(void)
{
	while (arena.next != &arena)
		ArenaFree(arena.next->pad);
}

void	   *pg_malloc(size_t size) { return ArenaAlloc(size, false); }
void	   *pg_malloc0(size_t size) { return ArenaAlloc(size, true); }
void	   *pg_malloc_extended(size_t size, int flags) { return ArenaAlloc(size, (flags & MCXT_ALLOC_ZERO) != 0); }
void	   *pg_realloc(void *p, size_t size) { return ArenaRealloc(p, size); }
void		pg_free(void *p) { ArenaFree(p); }
void	   *palloc(Size size) { return ArenaAlloc(size, false); }
void	   *palloc0(Size size) { return ArenaAlloc(size, true); }
void	   *palloc_extended(Size size, int flags) { return ArenaAlloc(size, (flags & MCXT_ALLOC_ZERO) != 0); }
void	   *repalloc(void *p, Size size) { return ArenaRealloc(p, size); }
void		pfree(void *p) { ArenaFree(p); }

char *
pg_strdup(const char *s)
{
	size_t		n = strlen(s);
	char	   *r = ArenaAlloc(n + 1, false);

	memcpy(r, s, n + 1);
	return r;
}

char *
pstrdup(const char *s)
{
	return pg_strdup(s);
}

char *
pnstrdup(const char *s, Size len)
{
	size_t		n = strnlen(s, len);
	char	   *r = ArenaAlloc(n + 1, false);

	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

/* ---- the checks ---- */

#define CHECK(cond) \
	do { if (!(cond)) { fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); abort(); } } while (0)

static bool
IsFloatDtype(StDtype t)
{
	return t == ST_F32 || t == ST_F16 || t == ST_BF16 || t == ST_F64;
}

static void
CheckParsed(const StFile *f, const uint8_t *data, size_t size)
{
	uint64		total = 0;
	float	  **values;
	bool		all_float = true;

	CHECK(f->data >= data && f->data + f->data_len == data + size);
	CHECK(8 + f->header_len + f->data_len == size);
	values = palloc0(Max(f->ntensors, 1) * sizeof(float *));
	for (int i = 0; i < f->ntensors; i++)
	{
		const StTensor *t = &f->tensors[i];
		int64		numel = 1;
		StError		e;

		CHECK(t->begin <= t->end && t->end <= f->data_len);
		CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_NDIM);
		for (int k = 0; k < t->ndim; k++)
			numel *= t->shape[k];	/* cannot overflow: the parser checked */
		CHECK(numel == t->numel);
		CHECK((uint64) numel * StDtypeSize(t->dtype) == t->end - t->begin);
		CHECK(StFind(f, t->name) == t);
		total += t->end - t->begin;
		if (!IsFloatDtype(t->dtype))
		{
			all_float = false;
			continue;
		}
		values[i] = palloc(Max(numel, 1) * sizeof(float));
		if (!StToFloat(f, t, values[i], &e))
		{
			CHECK(e.kind == ST_ERR_VALUE && e.msg[0] != '\0');
			all_float = false;
		}
	}
	CHECK(total == f->data_len);	/* tiling: no overlap, no hole */

	for (int i = 0; i < f->nmeta; i++)
		if (f->meta[i].value == NULL)
			all_float = false;

	/* write back as F32 and parse again: the same file, bit for bit */
	if (all_float)
	{
		StWriteTensor *w = palloc0(Max(f->ntensors, 1) * sizeof(StWriteTensor));
		StringInfoData out;
		StFile		g;
		StError		e;

		for (int i = 0; i < f->ntensors; i++)
		{
			w[i].name = f->tensors[i].name;
			w[i].ndim = f->tensors[i].ndim;
			memcpy(w[i].shape, f->tensors[i].shape, sizeof(w[i].shape));
			w[i].data = values[i];
		}
		initStringInfo(&out);
		StWrite(&out, f->ntensors, w, f->nmeta, f->meta);
		CHECK(out.len % ST_ALIGN == 0 || f->ntensors > 0);
		if (!StParse(out.data, out.len, &g, &e))
		{
			fprintf(stderr, "rewritten file does not parse: %s\n", e.msg);
			abort();
		}
		CHECK(g.ntensors == f->ntensors && g.nmeta == f->nmeta);
		for (int i = 0; i < f->nmeta; i++)
		{
			CHECK(strcmp(g.meta[i].key, f->meta[i].key) == 0);
			CHECK(strcmp(g.meta[i].value, f->meta[i].value) == 0);
		}
		for (int i = 0; i < g.ntensors; i++)
		{
			const StTensor *t = &g.tensors[i];
			float	   *v = palloc(Max(t->numel, 1) * sizeof(float));

			CHECK(strcmp(t->name, f->tensors[i].name) == 0);
			CHECK(t->dtype == ST_F32 && t->ndim == f->tensors[i].ndim);
			CHECK(memcmp(t->shape, f->tensors[i].shape, t->ndim * sizeof(int64)) == 0);
			CHECK(StToFloat(&g, t, v, &e));
			CHECK(memcmp(v, values[i], t->numel * sizeof(float)) == 0);
		}
		StFree(&g);
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StFile		f;
	StError		e;

	if (StParse(data, size, &f, &e))
	{
		CHECK(e.kind == ST_OK);
		CheckParsed(&f, data, size);
	}
	else
		CHECK(e.kind != ST_OK && e.msg[0] != '\0');
	StFree(&f);
	ArenaReset();
	return 0;
}
