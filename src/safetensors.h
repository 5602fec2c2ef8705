/*
 * safetensors.h
 *	  Reading and writing the safetensors format (Hugging Face): an 8-byte
 *	  little-endian header length, a JSON header naming every tensor with its
 *	  dtype, shape and byte range, and the raw little-endian tensor bytes.
 *
 * The parser is the boundary to untrusted bytes.  It compiles in the server
 * and in frontend programs (the fuzz harness in test/fuzz links it against
 * libpgcommon), so it reports problems through StError instead of ereport;
 * the caller (io.c) turns them into errors with the SQLSTATE of the kind.
 */
#ifndef ANOMALY_SAFETENSORS_H
#define ANOMALY_SAFETENSORS_H

#include "lib/stringinfo.h"

#define ST_MAX_NDIM			8	/* dimensions of one tensor */
#define ST_MAX_HEADER		(16 * 1024 * 1024)	/* bytes of JSON header */
#define ST_MAX_FILE			((uint64) 1024 * 1024 * 1024)	/* whole file */
#define ST_MAX_TENSORS		65536
#define ST_MAX_META			4096	/* __metadata__ entries */
#define ST_ALIGN			8	/* header padded so tensor data is aligned */

/* The dtypes of the format (all are accepted by the parser; see StToFloat) */
typedef enum StDtype
{
	ST_BOOL,
	ST_U8,
	ST_I8,
	ST_F8_E5M2,
	ST_F8_E4M3,
	ST_I16,
	ST_U16,
	ST_F16,
	ST_BF16,
	ST_I32,
	ST_U32,
	ST_F32,
	ST_F64,
	ST_I64,
	ST_U64,
	ST_N_DTYPES
} StDtype;

/* What went wrong; io.c maps each to a SQLSTATE */
typedef enum StErrorKind
{
	ST_OK = 0,
	ST_ERR_FORMAT,				/* not a valid safetensors file (22P03) */
	ST_ERR_LIMIT,				/* valid but beyond our limits (54000) */
	ST_ERR_DTYPE,				/* a dtype that cannot become float (42804) */
	ST_ERR_VALUE				/* NaN, infinity or out of range for float (22000) */
} StErrorKind;

typedef struct StError
{
	StErrorKind kind;
	char		msg[256];
} StError;

/* One tensor as the header describes it (byte range already validated) */
typedef struct StTensor
{
	char	   *name;			/* UTF-8, no NUL inside */
	StDtype		dtype;
	int			ndim;			/* 0 for a scalar */
	int64		shape[ST_MAX_NDIM];
	int64		numel;			/* product of shape (1 for a scalar) */
	uint64		begin;			/* byte offsets within the data buffer */
	uint64		end;
} StTensor;

typedef struct StMeta
{
	char	   *key;			/* UTF-8 */
	char	   *value;
} StMeta;

/* A parsed file; data points into the caller's buffer */
typedef struct StFile
{
	const unsigned char *data;	/* the byte buffer after the header */
	uint64		data_len;
	uint64		header_len;
	int			ntensors;
	StTensor   *tensors;		/* in header order */
	StTensor  **by_name;		/* sorted by name (StFind) */
	int			nmeta;
	StMeta	   *meta;			/* in header order */
} StFile;

/* A tensor to write: float32 values, row-major */
typedef struct StWriteTensor
{
	const char *name;
	int			ndim;
	int64		shape[ST_MAX_NDIM];
	const float *data;
} StWriteTensor;

extern bool StParse(const void *buf, uint64 len, StFile *file, StError *err);
extern void StFree(StFile *file);
extern const StTensor *StFind(const StFile *file, const char *name);
extern const char *StMetaGet(const StFile *file, const char *key);
extern bool StToFloat(const StFile *file, const StTensor *t, float *out, StError *err);
extern const char *StDtypeName(StDtype dtype);
extern int	StDtypeSize(StDtype dtype);
extern void StWrite(StringInfo out, int ntensors, const StWriteTensor *tensors,
					int nmeta, const StMeta *meta);

#endif							/* ANOMALY_SAFETENSORS_H */
