/*
 * catalog.c
 *	  Reading and writing the model catalog (anomaly_models, anomaly_weights).
 *
 * The tables live in the extension's schema, which is found from the calling
 * function's own namespace (the functions are created in @extschema@), so a
 * caller's search_path can never redirect what the extension reads or
 * writes.  Every query built here names its tables with that schema and its
 * operators with pg_catalog.
 *
 * Loading reads the model row and all its tensors in ONE query, so the load
 * sees a single snapshot: a concurrent anomaly_train() that replaces the model
 * is seen entirely or not at all.  Outside parallel mode the load uses the
 * latest snapshot (like the system caches do), so that a model cached after an
 * invalidation is never older than the commit that caused it; see model.c.
 *
 * Storing upserts the model row first: its row lock serializes concurrent
 * trainings of the same name, and the weights are then deleted and inserted in
 * the same transaction.  The same transaction appends the run's summary to
 * anomaly_training_runs with the next version number of that model name; the
 * model row lock makes the max(version) + 1 safe against a concurrent
 * training of the same name (the second waits for the first to commit, and
 * its next statement sees the first's history row).  History is not tied to
 * anomaly_models: it outlives anomaly_drop(), and a model created again under
 * the same name continues its version numbers.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "model.h"
#include "utils/array.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

static Oid	models_relid = InvalidOid;
static Oid	weights_relid = InvalidOid;

/*
 * The extension's schema: the namespace of the SQL function being called.
 */
Oid
AnomalyCatalogNamespace(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);

	if (!OidIsValid(nsp))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);

	if (!OidIsValid(models_relid) || !OidIsValid(weights_relid))
	{
		/*
		 * Look both up before setting either: a lookup can process an
		 * invalidation of the catalog (a concurrent training sends one), and
		 * the relcache callback then forgets the relids (ours too, if we had
		 * set them already).
		 */
		Oid			models = get_relname_relid("anomaly_models", nsp);
		Oid			weights = get_relname_relid("anomaly_weights", nsp);

		if (!OidIsValid(models) || !OidIsValid(weights))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the anomaly model catalog is missing from schema \"%s\"",
							get_namespace_name(nsp)),
					 errhint("Reinstall the extension with DROP EXTENSION anomaly; CREATE EXTENSION anomaly;")));
		models_relid = models;
		weights_relid = weights;
	}
	return nsp;
}

/*
 * Scoring needs SELECT on both catalog tables; training and dropping also
 * need INSERT, UPDATE and DELETE.  Checked when a query first resolves a
 * model (so a cached model is no way around the grants) and before training
 * starts (so a missing grant fails before the work, not after).
 */
void
AnomalyCatalogCheckAccess(FunctionCallInfo fcinfo, bool write)
{
	Oid			user = GetUserId();
	AclMode		mode = ACL_SELECT | (write ? (ACL_INSERT | ACL_UPDATE | ACL_DELETE) : 0);

	Oid			nsp = AnomalyCatalogNamespace(fcinfo);	/* makes sure the relids are known */

	/*
	 * Copy the relids before any other catalog access: that access can
	 * process an invalidation that makes the relcache callback forget them
	 * (under load this gave "relation with OID 0 does not exist").
	 */
	Oid			models = models_relid;
	Oid			weights = weights_relid;
	Oid			runs = write ? get_relname_relid("anomaly_training_runs", nsp) : InvalidOid;

	if (pg_class_aclcheck(models, user, mode) != ACLCHECK_OK ||
		pg_class_aclcheck(weights, user, mode) != ACLCHECK_OK ||
		(OidIsValid(runs) && pg_class_aclcheck(runs, user, ACL_SELECT | ACL_INSERT) != ACLCHECK_OK))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s anomaly models", write ? "train or drop" : "read"),
				 write ?
				 errhint("Ask an administrator to GRANT SELECT, INSERT, UPDATE, DELETE ON anomaly_models, anomaly_weights and SELECT, INSERT ON anomaly_training_runs to your role.") :
				 errhint("Ask an administrator to GRANT SELECT ON anomaly_models, anomaly_weights to your role.")));
}

bool
AnomalyCatalogIsOurRelation(Oid relid)
{
	return relid == models_relid || relid == weights_relid;
}

void
AnomalyCatalogForgetRelations(void)
{
	models_relid = InvalidOid;
	weights_relid = InvalidOid;
}

static char *
QualifiedTable(Oid nsp, const char *table)
{
	return quote_qualified_identifier(get_namespace_name(nsp), table);
}

/* Copy a 1-D array of float4 without NULLs out of SPI memory, or NULL if bad. */
static float *
CopyFloatArray(Datum d, int64 *n)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	float	   *r;

	if (ARR_ELEMTYPE(a) != FLOAT4OID || ARR_HASNULL(a) || ARR_NDIM(a) > 1)
		return NULL;
	*n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	r = palloc(Max(*n, 1) * sizeof(float));
	memcpy(r, ARR_DATA_PTR(a), *n * sizeof(float));
	if ((Pointer) a != DatumGetPointer(d))
		pfree(a);				/* the detoasted copy */
	return r;
}

/*
 * Load model "name" from the catalog into a new memory context that is a
 * child of CacheMemoryContext.  Returns NULL if there is no such model.
 * "latest" reads with the latest snapshot rather than the active one.
 */
AnomalyModel *
AnomalyCatalogLoad(Oid nsp, const char *name, bool latest)
{
	MemoryContext mcxt;
	MemoryContext oldcxt;
	AnomalyModel *model = NULL;
	char	   *sql;
	SPIPlanPtr	plan;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;
	bool		pushed = false;

	/* build in a context under the caller's, adopted by the cache on success */
	mcxt = AllocSetContextCreate(CurrentMemoryContext, "anomaly model", ALLOCSET_SMALL_SIZES);

	sql = psprintf("SELECT m.kind, m.n_features, m.feature_names, m.threshold, m.score_quantiles, "
				   "w.tensor, w.shape, w.data "
				   "FROM %s m LEFT JOIN %s w ON w.model OPERATOR(pg_catalog.=) m.name "
				   "WHERE m.name OPERATOR(pg_catalog.=) $1 ORDER BY w.tensor COLLATE \"C\"",
				   QualifiedTable(nsp, "anomaly_models"), QualifiedTable(nsp, "anomaly_weights"));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	args[0] = CStringGetTextDatum(name);

	if (latest && !IsInParallelMode())
	{
		PushActiveSnapshot(GetLatestSnapshot());
		pushed = true;
	}
	ret = SPI_execute_snapshot(plan, args, NULL,
							   pushed ? GetActiveSnapshot() : InvalidSnapshot,
							   InvalidSnapshot, true, false, 0);
	if (pushed)
		PopActiveSnapshot();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(ret));

	if (SPI_processed > 0)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HeapTuple	first = SPI_tuptable->vals[0];
		bool		isnull;
		char	   *kindname;
		const AnomalyKind *kind;
		int			d;
		Datum	   *names;
		bool	   *namenulls;
		int			nnames;
		ArrayType  *qa;
		List	   *tensors = NIL;
		double		threshold;

		oldcxt = MemoryContextSwitchTo(mcxt);

		kindname = TextDatumGetCString(SPI_getbinval(first, desc, 1, &isnull));
		d = DatumGetInt32(SPI_getbinval(first, desc, 2, &isnull));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(first, desc, 3, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &names, &namenulls, &nnames);
		threshold = DatumGetFloat8(SPI_getbinval(first, desc, 4, &isnull));
		qa = DatumGetArrayTypeP(SPI_getbinval(first, desc, 5, &isnull));

		/* a model row we cannot use is corruption, not a crash */
		model = palloc0(sizeof(AnomalyModel));
		model->name = pstrdup(name);
		kind = AnomalyFindKind(kindname, true);
		if (kind == NULL)
			AnomalyCorrupt(model, "unknown kind \"%s\"", kindname);
		if (d < 1 || d > ANOMALY_MAX_FEATURES || nnames != d)
			AnomalyCorrupt(model, "n_features is %d but feature_names has %d entries", d, nnames);
		for (int i = 0; i < nnames; i++)
			if (namenulls[i])
				AnomalyCorrupt(model, "feature_names has a NULL entry");
		if (ARR_ELEMTYPE(qa) != FLOAT8OID || ARR_HASNULL(qa) || ARR_NDIM(qa) != 1 ||
			ARR_DIMS(qa)[0] != ANOMALY_N_QUANTILES)
			AnomalyCorrupt(model, "score_quantiles must hold %d values", ANOMALY_N_QUANTILES);
		if (isnan(threshold))
			AnomalyCorrupt(model, "threshold is NaN");

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			AnomalyTensor *t;
			Datum		tname = SPI_getbinval(tup, desc, 6, &isnull);
			ArrayType  *shape;
			int64		size = 1;

			if (isnull)
				break;			/* LEFT JOIN: model without tensors */
			t = palloc0(sizeof(AnomalyTensor));
			t->name = TextDatumGetCString(tname);
			shape = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull));
			if (ARR_ELEMTYPE(shape) != INT4OID || ARR_HASNULL(shape) || ARR_NDIM(shape) != 1 ||
				ARR_DIMS(shape)[0] < 1 || ARR_DIMS(shape)[0] > ANOMALY_MAX_NDIM)
				AnomalyCorrupt(model, "tensor \"%s\" has an invalid shape", t->name);
			t->ndim = ARR_DIMS(shape)[0];
			for (int i = 0; i < t->ndim; i++)
			{
				t->shape[i] = ((int32 *) ARR_DATA_PTR(shape))[i];
				if (t->shape[i] < 0 || t->shape[i] > MaxAllocSize / sizeof(float))
					AnomalyCorrupt(model, "tensor \"%s\" has an invalid shape", t->name);
				size *= t->shape[i];
				if (size > MaxAllocSize / sizeof(float))
					AnomalyCorrupt(model, "tensor \"%s\" has an invalid shape", t->name);
			}
			t->data = CopyFloatArray(SPI_getbinval(tup, desc, 8, &isnull), &t->size);
			if (t->data == NULL)
				AnomalyCorrupt(model, "tensor \"%s\" must be a 1-D real[] without NULLs", t->name);
			if (t->size != size)
				AnomalyCorrupt(model, "tensor \"%s\" has " INT64_FORMAT " values but its shape needs " INT64_FORMAT,
							   t->name, t->size, size);
			for (int64 i = 0; i < size; i++)
				if (isnan(t->data[i]) || isinf(t->data[i]))
					AnomalyCorrupt(model, "tensor \"%s\" holds a non-finite value", t->name);
			tensors = lappend(tensors, t);
		}

		model->kind = kind;
		model->n_features = d;
		model->feature_names = palloc(d * sizeof(char *));
		for (int i = 0; i < d; i++)
			model->feature_names[i] = TextDatumGetCString(names[i]);
		model->threshold = threshold;
		model->quantiles = palloc(ANOMALY_N_QUANTILES * sizeof(double));
		memcpy(model->quantiles, ARR_DATA_PTR(qa), ANOMALY_N_QUANTILES * sizeof(double));
		model->tensors = tensors;
		model->mcxt = mcxt;
		AnomalyModelFinish(model);

		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();

	if (model == NULL)
	{
		MemoryContextDelete(mcxt);
		return NULL;
	}
	MemoryContextSetParent(mcxt, CacheMemoryContext);
	return model;
}

/*
 * Check that the current user may replace or drop model "name": it must not
 * exist, or be owned by a role whose privileges the user has.  With lock, the
 * model row is locked FOR UPDATE, serializing concurrent replacements.
 * Returns whether the model exists.
 */
bool
AnomalyCatalogCheckOwner(Oid nsp, const char *name, bool lock)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	int			ret;
	bool		exists = false;

	vals[0] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* read without a lock first: FOR UPDATE would hide others' rows under RLS */
	ret = SPI_execute_with_args(psprintf("SELECT owner FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
										 QualifiedTable(nsp, "anomaly_models")),
								1, types, vals, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading model owner failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		owner = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Oid			ownerid = isnull ? InvalidOid : get_role_oid(NameStr(*DatumGetName(owner)), true);

		exists = true;
		if (!superuser() && (!OidIsValid(ownerid) || !has_privs_of_role(GetUserId(), ownerid)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of anomaly model \"%s\"", name),
					 errdetail("The model is owned by role \"%s\".", isnull ? "" : NameStr(*DatumGetName(owner))),
					 errhint("Train under another name, or ask its owner to grant you their role.")));
		if (lock)
		{
			ret = SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
												 QualifiedTable(nsp, "anomaly_models")),
										1, types, vals, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "locking model failed: %s", SPI_result_code_string(ret));
			exists = SPI_processed > 0;
		}
	}
	SPI_finish();
	return exists;
}

/*
 * Append a training run to anomaly_training_runs (inside the caller's SPI
 * connection); mvals are the model row's values as AnomalyCatalogStore binds
 * them.  The 1001 stored quantiles are summarized as 101 percentiles, so
 * score_percentiles[p + 1] is the p-th percentile of the training scores.
 * Returns the run's version number (0 when the catalog has no history table).
 */
static int
StoreHistory(Oid nsp, const AnomalyModelRow *row, const Datum *mvals)
{
	char	   *runs = QualifiedTable(nsp, "anomaly_training_runs");
	Oid			types[10] = {TEXTOID, TEXTOID, INT4OID, TEXTARRAYOID, JSONBOID, FLOAT8OID,
	FLOAT8ARRAYOID, JSONBOID, INT8OID, FLOAT8OID};
	Datum		vals[10];
	Datum		pct[101];
	bool		isnull;
	int			ret;

	/*
	 * Between installing a new library and ALTER EXTENSION UPDATE, the catalog
	 * may still be the one of version 0.1.0, which had no history: skip it.
	 */
	if (!OidIsValid(get_relname_relid("anomaly_training_runs", nsp)))
		return 0;

	for (int p = 0; p <= 100; p++)
		pct[p] = Float8GetDatum(row->quantiles[p * (ANOMALY_N_QUANTILES - 1) / 100]);
	memcpy(vals, mvals, 6 * sizeof(Datum));	/* name .. threshold */
	vals[6] = PointerGetDatum(construct_array(pct, 101, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[7] = mvals[7];
	vals[8] = Int64GetDatum(row->rows);
	vals[9] = Float8GetDatum(row->seconds);

	ret = SPI_execute_with_args(psprintf("INSERT INTO %s (model, version, kind, n_features, feature_names, "
										 "options, threshold, score_percentiles, metrics, rows, seconds, "
										 "trained_at, trained_by) "
										 "VALUES ($1, COALESCE((SELECT pg_catalog.max(r.version) FROM %s r "
										 "WHERE r.model OPERATOR(pg_catalog.=) $1), 0) OPERATOR(pg_catalog.+) 1, "
										 "$2, $3, $4, $5, $6, $7, $8, $9, $10, pg_catalog.now(), CURRENT_USER) "
										 "RETURNING version", runs, runs),
								10, types, vals, NULL, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "recording the training run failed: %s", SPI_result_code_string(ret));
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Store (insert or replace) a model and its tensors, and append the run to
 * the training history.  Returns the run's version number.
 */
int
AnomalyCatalogStore(Oid nsp, const AnomalyModelRow *row, List *tensors)
{
	char	   *models = QualifiedTable(nsp, "anomaly_models");
	char	   *weights = QualifiedTable(nsp, "anomaly_weights");
	Oid			mtypes[8] = {TEXTOID, TEXTOID, INT4OID, TEXTARRAYOID, JSONBOID, FLOAT8OID, FLOAT8ARRAYOID, JSONBOID};
	Datum		mvals[8];
	Oid			wtypes[4] = {TEXTOID, TEXTOID, INT4ARRAYOID, FLOAT4ARRAYOID};
	Datum		wvals[4];
	Datum	   *names;
	Datum	   *q;
	SPIPlanPtr	plan;
	ListCell   *lc;
	int			ret;
	int			version;

	names = palloc(row->n_features * sizeof(Datum));
	for (int i = 0; i < row->n_features; i++)
		names[i] = CStringGetTextDatum(row->feature_names[i]);
	q = palloc(ANOMALY_N_QUANTILES * sizeof(Datum));
	for (int i = 0; i < ANOMALY_N_QUANTILES; i++)
		q[i] = Float8GetDatum(row->quantiles[i]);

	mvals[0] = CStringGetTextDatum(row->name);
	mvals[1] = CStringGetTextDatum(row->kind);
	mvals[2] = Int32GetDatum(row->n_features);
	mvals[3] = PointerGetDatum(construct_array(names, row->n_features, TEXTOID, -1, false, TYPALIGN_INT));
	mvals[4] = JsonbPGetDatum(row->options);
	mvals[5] = Float8GetDatum(row->threshold);
	mvals[6] = PointerGetDatum(construct_array(q, ANOMALY_N_QUANTILES, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	mvals[7] = JsonbPGetDatum(row->metrics);

	/* lock the existing row (if any) and check it is ours to replace */
	AnomalyCatalogCheckOwner(nsp, row->name, true);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	ret = SPI_execute_with_args(psprintf("INSERT INTO %s AS m (name, kind, n_features, feature_names, options, "
										 "threshold, score_quantiles, metrics, trained_at) "
										 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, pg_catalog.now()) "
										 "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
										 "n_features = excluded.n_features, feature_names = excluded.feature_names, "
										 "options = excluded.options, threshold = excluded.threshold, "
										 "score_quantiles = excluded.score_quantiles, metrics = excluded.metrics, "
										 "trained_at = excluded.trained_at", models),
								8, mtypes, mvals, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "storing model failed: %s", SPI_result_code_string(ret));

	ret = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model OPERATOR(pg_catalog.=) $1", weights),
								1, wtypes, mvals, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "replacing model weights failed: %s", SPI_result_code_string(ret));

	plan = SPI_prepare(psprintf("INSERT INTO %s (model, tensor, shape, data) VALUES ($1, $2, $3, $4)", weights),
					   4, wtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	wvals[0] = mvals[0];
	foreach(lc, tensors)
	{
		AnomalyTensor *t = lfirst(lc);
		Datum		dims[ANOMALY_MAX_NDIM];
		ArrayType  *data;

		for (int i = 0; i < t->ndim; i++)
			dims[i] = Int32GetDatum(t->shape[i]);
		/* float4 is pass-by-value and 4 bytes: build the array from the buffer directly */
		data = construct_empty_array(FLOAT4OID);
		if (t->size > 0)
		{
			int			dim = (int) t->size;
			int			lb = 1;
			Size		nbytes = ARR_OVERHEAD_NONULLS(1) + t->size * sizeof(float);

			data = palloc0(nbytes);
			SET_VARSIZE(data, nbytes);
			data->ndim = 1;
			data->dataoffset = 0;
			data->elemtype = FLOAT4OID;
			memcpy(ARR_DIMS(data), &dim, sizeof(int));
			memcpy(ARR_LBOUND(data), &lb, sizeof(int));
			memcpy(ARR_DATA_PTR(data), t->data, t->size * sizeof(float));
		}
		wvals[1] = CStringGetTextDatum(t->name);
		wvals[2] = PointerGetDatum(construct_array(dims, t->ndim, INT4OID, 4, true, TYPALIGN_INT));
		wvals[3] = PointerGetDatum(data);
		ret = SPI_execute_plan(plan, wvals, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "storing tensor failed: %s", SPI_result_code_string(ret));
	}

	version = StoreHistory(nsp, row, mvals);
	SPI_finish();
	return version;
}

/*
 * Delete a model (its weights go by ON DELETE CASCADE).  True if it existed.
 */
bool
AnomalyCatalogDrop(Oid nsp, const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	int			ret;
	bool		found;

	if (!AnomalyCatalogCheckOwner(nsp, name, true))
		return false;
	vals[0] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
										 QualifiedTable(nsp, "anomaly_models")),
								1, types, vals, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "dropping model failed: %s", SPI_result_code_string(ret));
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}
