/*
 * progress.h
 *	  Progress of a training run: NOTICE lines for the training session and,
 *	  when the library is preloaded, the anomaly_progress view for the others.
 *
 * anomaly_train() brackets a run with AnomalyProgressBegin/End and reports
 * its phases; a kind reports its epochs from its train() callback:
 *
 *		for (int epoch = 1; epoch <= epochs; epoch++)
 *		{
 *			... one pass over the data ...
 *			AnomalyProgress("training", epoch, epochs, data->n, loss);
 *		}
 *
 * Every call is cheap (a few stores into this backend's shared-memory slot,
 * and a message only when the client or the log would show it), so calling
 * it once per epoch is fine; inner loops that only count rows call
 * AnomalyProgressRows().
 */
#ifndef ANOMALY_PROGRESS_H
#define ANOMALY_PROGRESS_H

#include "postgres.h"

#define ANOMALY_PROGRESS_NAME_LEN	64	/* model name kept for the view, bytes */
#define ANOMALY_PROGRESS_WORD_LEN	32	/* kind and phase, bytes */

/* _PG_init, when loading from shared_preload_libraries */
extern void AnomalyProgressShmemRequest(void);

/* anomaly_train: start and end of one run (End is safe to call twice) */
extern void AnomalyProgressBegin(const char *model, const char *kind, bool verbose);
extern void AnomalyProgressEnd(void);

/*
 * A phase is under way.  epoch/epochs are 0 outside epoch loops; rows is the
 * number of rows the phase works on (0 if unknown); loss is NaN if none.
 * Emits NOTICE when the run is verbose, DEBUG1 otherwise.
 */
extern void AnomalyProgress(const char *phase, int epoch, int epochs, int64 rows, double loss);

/* Update the row count of the current phase (the view only, no message) */
extern void AnomalyProgressRows(int64 rows);

#endif							/* ANOMALY_PROGRESS_H */
