/*
 * tensor.c
 *	  Building a trained model's tensors and reading them back with their
 *	  shapes checked.
 *
 * A kind's load() asks for each tensor by name and expected shape; a tensor
 * that is missing or has another shape means the anomaly_weights row was
 * changed by hand or damaged, which is reported as data corruption (XX001)
 * with a hint to retrain, never trusted.
 */
#include "postgres.h"

#include "anomaly.h"
#include "utils/memutils.h"

/*
 * Add a tensor (a copy of data) to a training result.
 */
AnomalyTensor *
AnomalyTensorAdd(AnomalyTrainResult *result, const char *name,
				 int ndim, const int *shape, const float *data)
{
	AnomalyTensor *t = palloc0(sizeof(AnomalyTensor));
	int64		size = 1;

	Assert(ndim >= 1 && ndim <= ANOMALY_MAX_NDIM);
	for (int i = 0; i < ndim; i++)
	{
		Assert(shape[i] >= 0);
		t->shape[i] = shape[i];
		size *= shape[i];
	}
	if (size * sizeof(float) > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor \"%s\" of " INT64_FORMAT " values is too large to store", name, size),
				 errhint("Use fewer features, smaller layers or a smaller sample_size.")));
	t->name = pstrdup(name);
	t->ndim = ndim;
	t->size = size;
	t->data = palloc(Max(size, 1) * sizeof(float));
	if (size > 0)
		memcpy(t->data, data, size * sizeof(float));
	result->tensors = lappend(result->tensors, t);
	return t;
}

AnomalyTensor *
AnomalyTensorAdd1(AnomalyTrainResult *result, const char *name, int n, const float *data)
{
	return AnomalyTensorAdd(result, name, 1, &n, data);
}

AnomalyTensor *
AnomalyTensorAdd2(AnomalyTrainResult *result, const char *name, int rows, int cols, const float *data)
{
	int			shape[2] = {rows, cols};

	return AnomalyTensorAdd(result, name, 2, shape, data);
}

/*
 * Report a model whose stored tensors cannot be used.
 */
void
AnomalyCorrupt(const AnomalyModel *model, const char *fmt,...)
{
	char		buf[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model \"%s\" is corrupted: %s", model->name, buf),
			 errhint("Train the model again with anomaly_train().")));
}

AnomalyTensor *
AnomalyModelFindTensor(const AnomalyModel *model, const char *name)
{
	ListCell   *lc;

	foreach(lc, model->tensors)
	{
		AnomalyTensor *t = lfirst(lc);

		if (strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

/*
 * The data of tensor "name", which must exist with exactly this shape.
 * A negative entry in shape accepts any length in that dimension.
 */
float *
AnomalyModelTensor(const AnomalyModel *model, const char *name, int ndim, const int *shape)
{
	AnomalyTensor *t = AnomalyModelFindTensor(model, name);
	bool		ok;

	if (t == NULL)
		AnomalyCorrupt(model, "tensor \"%s\" is missing", name);
	ok = (t->ndim == ndim);
	for (int i = 0; ok && i < ndim; i++)
		ok = (shape[i] < 0 || t->shape[i] == shape[i]);
	if (!ok)
	{
		char		want[128] = "";
		char		have[128] = "";

		for (int i = 0; i < ndim; i++)
			snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d", i ? "," : "", shape[i]);
		for (int i = 0; i < t->ndim; i++)
			snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%d", i ? "," : "", t->shape[i]);
		AnomalyCorrupt(model, "tensor \"%s\" has shape [%s], expected [%s]", name, have, want);
	}
	return t->data;
}

float *
AnomalyModelTensor1(const AnomalyModel *model, const char *name, int n)
{
	return AnomalyModelTensor(model, name, 1, &n);
}

float *
AnomalyModelTensor2(const AnomalyModel *model, const char *name, int rows, int cols)
{
	int			shape[2] = {rows, cols};

	return AnomalyModelTensor(model, name, 2, shape);
}
