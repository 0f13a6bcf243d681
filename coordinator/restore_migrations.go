package coordinator

import (
	"context"
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// checkTargetMigrations compares the backup's recorded Django migrations with the target's
// before anything changes: a target behind the backup is refused, naming what it lacks; one
// ahead is a warning in the plan (the column check that follows decides whether the rows
// fit). A backup without the record gets the column check only.
func checkTargetMigrations(ctx context.Context, db *database.DB, plan *RestorePlan) error {
	mc := database.RecordedMigrations(plan.Metadata.Migrations)
	if err := mc.Compare(ctx, db); err != nil {
		return fmt.Errorf("compare the backup's Django migrations with the target's: %w", err)
	}
	plan.Migrations = mc
	if r := mc.Refusal(); r != "" {
		return outcome.Errorf(outcome.Refused, "%s, then restore again; nothing was changed", r)
	}
	if w := mc.Warning(); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}
	return nil
}
