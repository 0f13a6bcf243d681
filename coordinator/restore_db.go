package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// checkJobsTarget refuses a parallel restore (--jobs) into tables that hold rows, before the
// confirmation and in a dry run too: it commits table by table and could not put them back.
func checkJobsTarget(ctx context.Context, o RestoreOptions, chk *restoreCheck) error {
	if o.Jobs <= 1 || chk.db == nil {
		return nil
	}
	models := make([]platform.Model, len(chk.fixtures))
	for i, f := range chk.fixtures {
		models[i] = f.Model
	}
	return chk.db.CheckParallelTarget(ctx, models)
}

// weighFixtures gives each fixture its row count from the plan, which orders a parallel load
// (largest first).
func weighFixtures(chk *restoreCheck) []database.LoadFixture {
	rows := map[string]int64{}
	for _, m := range chk.plan.Models {
		rows[m.Label] = m.Rows
	}
	out := make([]database.LoadFixture, len(chk.fixtures))
	for i, f := range chk.fixtures {
		f.Weight = rows[f.Model.Label]
		out[i] = f
	}
	return out
}

// loadFailed words a failed load: a one-transaction load changed nothing; a parallel one
// that got past its first commit left the database half-restored, and says how to finish.
func loadFailed(err error) error {
	var half *database.HalfRestoredError
	if errors.As(err, &half) {
		return fmt.Errorf("restore: %w", err)
	}
	return fmt.Errorf("restore: database unchanged: %w", err)
}
