/*
 * progress.c
 *	  Progress of training runs: NOTICE/DEBUG1 lines in the training session,
 *	  and the anomaly_progress view of running trainings for other sessions.
 *
 * Messages.  AnomalyProgress() emits one line per call: NOTICE when the run
 * asked for it (training option "verbose"), DEBUG1 otherwise, so that
 * SET client_min_messages = debug1 shows the same lines without changing the
 * call.  Nothing is formatted when neither the client nor the log would show
 * the message (message_level_is_interesting).
 *
 * The view.  Another session can only see a run through shared memory, and
 * an extension gets shared memory only when it is loaded from
 * shared_preload_libraries (shmem_request_hook / shmem_startup_hook, as
 * pg_stat_statements does).  Then there is one slot per backend, indexed by
 * MyBackendId, written only by its owner.  Writers follow the protocol of
 * PostgreSQL's own backend status array (PGSTAT_BEGIN_WRITE_ACTIVITY): bump
 * a change counter to odd, write, bump it back to even, with write barriers;
 * readers copy the slot and retry until they saw the same even counter before
 * and after.  So the training backend never takes a lock to report progress,
 * and a reader never sees half of an update.  A backend that exits during a
 * run (FATAL, terminated) clears its slot in a before_shmem_exit callback,
 * and a reader also skips slots whose pid is no longer a live backend.
 *
 * When the library is not preloaded there is no shared memory to use: the
 * messages still work, and the view is empty and says why with a NOTICE.
 * (A backend-local copy would not help: the only session that could read it
 * is busy training.)
 *
 * Runs do not nest: a training query that itself calls anomaly_train() takes
 * over the slot, and the inner run's end clears it.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "progress.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* One backend's running training, in shared memory */
typedef struct ProgressSlot
{
	uint32		changecount;	/* odd while the owner is writing */
	int			pid;			/* 0 when no run */
	Oid			userid;			/* who runs it (for the view's visibility) */
	char		model[ANOMALY_PROGRESS_NAME_LEN];
	char		kind[ANOMALY_PROGRESS_WORD_LEN];
	char		phase[ANOMALY_PROGRESS_WORD_LEN];
	int32		epoch;
	int32		epochs;
	int64		rows;
	double		loss;
	TimestampTz started_at;
	TimestampTz updated_at;
} ProgressSlot;

static ProgressSlot *progress_slots = NULL;	/* NULL unless preloaded */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool exit_callback_registered = false;

/* this backend's run, for messages (kept in TopMemoryContext) */
static bool run_active = false;
static bool run_verbose = false;
static char *run_model = NULL;
static char *run_kind = NULL;

/* Size of the slot array: one per possible backend. */
static Size
ProgressShmemSize(void)
{
	return mul_size(MaxBackends, sizeof(ProgressSlot));
}

static void
ProgressShmemRequestHook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ProgressShmemSize());
}

static void
ProgressShmemStartupHook(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress_slots = ShmemInitStruct("anomaly training progress", ProgressShmemSize(), &found);
	if (!found)
		memset(progress_slots, 0, ProgressShmemSize());
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the shared-memory hooks; does nothing unless the library is being
 * loaded from shared_preload_libraries.
 */
void
AnomalyProgressShmemRequest(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ProgressShmemRequestHook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ProgressShmemStartupHook;
}

/* This backend's slot, or NULL (not preloaded, or no backend id). */
static volatile ProgressSlot *
MySlot(void)
{
	if (progress_slots == NULL || MyBackendId == InvalidBackendId ||
		MyBackendId < 1 || MyBackendId > MaxBackends)
		return NULL;
	return &progress_slots[MyBackendId - 1];
}

/* Bytes of src that fit a slot field of size bytes, cut at a character boundary. */
static int
ClipLen(const char *src, int size)
{
	return pg_mbcliplen(src, strlen(src), size - 1);
}

/* Copy len bytes (from ClipLen) into a slot field; cannot fail. */
static void
CopyName(volatile char *dst, const char *src, int len)
{
	for (int i = 0; i < len; i++)
		dst[i] = src[i];
	dst[len] = '\0';
}

/* Begin and end a write to this backend's slot (see the file header). */
#define SLOT_BEGIN_WRITE(s) \
	do { START_CRIT_SECTION(); (s)->changecount++; pg_write_barrier(); } while (0)
#define SLOT_END_WRITE(s) \
	do { pg_write_barrier(); (s)->changecount++; Assert(((s)->changecount & 1) == 0); END_CRIT_SECTION(); } while (0)

/* Clear this backend's slot. */
static void
ClearSlot(void)
{
	volatile ProgressSlot *s = MySlot();

	if (s == NULL || s->pid == 0)
		return;
	SLOT_BEGIN_WRITE(s);
	s->pid = 0;
	SLOT_END_WRITE(s);
}

static void
ProgressExitCallback(int code, Datum arg)
{
	ClearSlot();
}

/*
 * Emit the message for one report: NOTICE for a verbose run, else DEBUG1.
 */
static void
ProgressMessage(const char *phase, int epoch, int epochs, int64 rows, double loss)
{
	int			level = run_verbose ? NOTICE : DEBUG1;
	StringInfoData buf;

	if (!message_level_is_interesting(level))
		return;
	initStringInfo(&buf);
	appendStringInfoString(&buf, phase);
	if (epochs > 0)
		appendStringInfo(&buf, " epoch %d/%d", epoch, epochs);
	if (rows > 0)
		appendStringInfo(&buf, ", " INT64_FORMAT " rows", rows);
	if (!isnan(loss))
		appendStringInfo(&buf, ", loss %.6g", loss);
	ereport(level,
			(errmsg("model \"%s\" (%s): %s", run_model, run_kind, buf.data),
			 errhidestmt(true), errhidecontext(true)));
	pfree(buf.data);
}

/*
 * Start a run: fill this backend's slot (phase "reading") and remember how
 * to report.  The first report is a message for the reading phase.
 */
void
AnomalyProgressBegin(const char *model, const char *kind, bool verbose)
{
	volatile ProgressSlot *s = MySlot();
	TimestampTz now = GetCurrentTimestamp();

	if (run_model)
		pfree(run_model);
	if (run_kind)
		pfree(run_kind);
	run_model = MemoryContextStrdup(TopMemoryContext, model);
	run_kind = MemoryContextStrdup(TopMemoryContext, kind);
	run_verbose = verbose;
	run_active = true;

	if (s != NULL)
	{
		int			model_len = ClipLen(model, ANOMALY_PROGRESS_NAME_LEN);
		int			kind_len = ClipLen(kind, ANOMALY_PROGRESS_WORD_LEN);

		if (!exit_callback_registered)
		{
			before_shmem_exit(ProgressExitCallback, (Datum) 0);
			exit_callback_registered = true;
		}
		SLOT_BEGIN_WRITE(s);
		s->pid = MyProcPid;
		s->userid = GetUserId();
		CopyName(s->model, model, model_len);
		CopyName(s->kind, kind, kind_len);
		CopyName(s->phase, "reading", strlen("reading"));
		s->epoch = 0;
		s->epochs = 0;
		s->rows = 0;
		s->loss = get_float8_nan();
		s->started_at = now;
		s->updated_at = now;
		SLOT_END_WRITE(s);
	}
	ProgressMessage("reading", 0, 0, 0, get_float8_nan());
}

/*
 * Report that a phase is under way (see progress.h).  Outside a run (a kind
 * called directly by a test, say) only the message is emitted, and only if
 * a run name is known.
 */
void
AnomalyProgress(const char *phase, int epoch, int epochs, int64 rows, double loss)
{
	volatile ProgressSlot *s = MySlot();

	if (!run_active)
		return;
	if (s != NULL && s->pid == MyProcPid)
	{
		int			phase_len = ClipLen(phase, ANOMALY_PROGRESS_WORD_LEN);
		TimestampTz now = GetCurrentTimestamp();

		SLOT_BEGIN_WRITE(s);
		CopyName(s->phase, phase, phase_len);
		s->epoch = epoch;
		s->epochs = epochs;
		s->rows = rows;
		s->loss = loss;
		s->updated_at = now;
		SLOT_END_WRITE(s);
	}
	ProgressMessage(phase, epoch, epochs, rows, loss);
}

/*
 * Update the current phase's row count (for the view; no message).
 */
void
AnomalyProgressRows(int64 rows)
{
	volatile ProgressSlot *s = MySlot();
	TimestampTz now;

	if (!run_active || s == NULL || s->pid != MyProcPid)
		return;
	now = GetCurrentTimestamp();
	SLOT_BEGIN_WRITE(s);
	s->rows = rows;
	s->updated_at = now;
	SLOT_END_WRITE(s);
}

/*
 * End the run (normally or on error): the slot is freed for the view.
 */
void
AnomalyProgressEnd(void)
{
	run_active = false;
	ClearSlot();
}

/*
 * Copy slot i consistently into *out; false if it holds no visible run.
 */
static bool
ReadSlot(int i, ProgressSlot *out)
{
	volatile ProgressSlot *s = &progress_slots[i];

	for (;;)
	{
		uint32		before = s->changecount;
		uint32		after;

		pg_read_barrier();
		memcpy(out, (ProgressSlot *) s, sizeof(ProgressSlot));
		pg_read_barrier();
		after = s->changecount;
		if (before == after && (before & 1) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	if (out->pid == 0 || BackendPidGetProc(out->pid) == NULL)
		return false;
	/* like pg_stat_activity: other roles' runs need pg_read_all_stats */
	return has_privs_of_role(GetUserId(), out->userid) ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/*
 * anomaly_progress() returns setof (pid, model, kind, phase, epoch, epochs,
 * rows, loss, started_at, updated_at): the running trainings.
 */
PG_FUNCTION_INFO_V1(anomaly_progress);
Datum
anomaly_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (progress_slots == NULL)
	{
		ereport(NOTICE,
				(errmsg("anomaly_progress shows no trainings because the anomaly library is not in shared_preload_libraries"),
				 errhint("Add anomaly to shared_preload_libraries and restart the server to watch trainings from other sessions; "
						 "the training option verbose shows progress in the training session itself.")));
		return (Datum) 0;
	}
	for (int i = 0; i < MaxBackends; i++)
	{
		ProgressSlot s;
		Datum		values[10];
		bool		nulls[10] = {0};

		if (!ReadSlot(i, &s))
			continue;
		values[0] = Int32GetDatum(s.pid);
		values[1] = CStringGetTextDatum(s.model);
		values[2] = CStringGetTextDatum(s.kind);
		values[3] = CStringGetTextDatum(s.phase);
		values[4] = Int32GetDatum(s.epoch);
		values[5] = Int32GetDatum(s.epochs);
		values[6] = Int64GetDatum(s.rows);
		values[7] = Float8GetDatum(s.loss);
		nulls[7] = isnan(s.loss);
		values[8] = TimestampTzGetDatum(s.started_at);
		values[9] = TimestampTzGetDatum(s.updated_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
