/*
 * detect.c
 *	  Support for anomaly_detect() (sql/anomaly.sql): waiting for the writers
 *	  of a table to finish.
 *
 * anomaly_detect() scores the rows of a table whose key is above a stored
 * watermark and then moves the watermark to the largest key it scored.  A
 * row whose transaction commits after the watermark has passed its key would
 * never be scored.  With keys drawn in increasing order inside the INSERT
 * (an identity/serial column with the default CACHE 1, or a clock_timestamp()
 * default) that can only be a row written by a transaction that was still
 * running when the run chose its upper key: such a transaction drew its key
 * while holding RowExclusiveLock on the table, and holds it until it ends.
 * So anomaly_detect() first picks the upper key M from what is committed,
 * then calls anomaly_wait_for_writers(), which waits for every transaction
 * that holds RowExclusiveLock on the table at that moment, and only then
 * reads the rows up to M with a new snapshot: every row with a key <= M that
 * will ever commit is committed by then.
 *
 * This is what CREATE INDEX CONCURRENTLY does with WaitForLockers(), except
 * that WaitForLockers() cannot be asked for RowExclusiveLock holders only:
 * a lock mode that conflicts with RowExclusiveLock also conflicts with
 * ShareUpdateExclusiveLock, and a detection job must not wait for a long
 * (auto)vacuum of the table.  So the holders are taken from the lock table
 * (GetLockStatusData, which includes fast-path locks) and each one's virtual
 * transaction is waited for (VirtualXactLock), as WaitForLockersMultiple
 * does.  Transactions that start writing after the list was taken are not
 * waited for: their keys are larger than M.  The wait obeys lock_timeout and
 * statement_timeout, and takes part in deadlock detection.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

/*
 * anomaly_wait_for_writers(source regclass) returns integer
 *
 * Waits until every transaction (other than this one and its parallel
 * workers) that holds RowExclusiveLock on source has ended; returns how many
 * transactions it waited for.  Needs SELECT on the table.
 */
PG_FUNCTION_INFO_V1(anomaly_wait_for_writers);
Datum
anomaly_wait_for_writers(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	LockData   *locks;
	VirtualTransactionId *vxids;
	int			n = 0;
	AclResult	aclresult;

	if (get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(relid)), get_rel_name(relid));

	/* the holders, taken in one pass over the lock table */
	locks = GetLockStatusData();
	vxids = palloc(Max(locks->nelements, 1) * sizeof(VirtualTransactionId));
	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];

		if (l->locktag.locktag_type != LOCKTAG_RELATION ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field2 != relid ||
			(l->holdMask & LOCKBIT_ON(RowExclusiveLock)) == 0)
			continue;
		if (l->pid == MyProcPid || l->leaderPid == MyProcPid)
			continue;
		vxids[n].backendId = l->backend;
		vxids[n].localTransactionId = l->lxid;
		if (VirtualTransactionIdIsValid(vxids[n]))
			n++;
	}

	/* wait for each; a finished one returns at once */
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		VirtualXactLock(vxids[i], true);
	}
	PG_RETURN_INT32(n);
}
