package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
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

// deferFixtureSums reports whether the fixtures' checksums are checked by the load rather
// than before it: a one-transaction load hashes them alongside its COPYs and commits once the
// check passed, a parallel one (--jobs) alongside its preparation, whose commit (its first)
// waits for the check; either way a failed check changes nothing. Only when nobody is asked to
// confirm (the plan shown is the checked one); a dry run checks them itself.
func deferFixtureSums(o RestoreOptions) bool {
	return !o.DryRun && o.Confirm == nil && !o.SkipDB
}

// sumsCheck checks now that each of paths is listed in SHA256SUMS, and returns the check that
// hashes them in parallel and compares them with SHA256SUMS and the metadata's per-model
// checksums, stopping at the first that does not match. Only paths outside files/ are looked
// up (sums.Top): the fixtures and the file index. The check keeps what it compares with, so
// it may run once sums is closed.
func sumsCheck(dir string, sums *layout.Sums, meta *layout.Metadata, paths []string, workers int) (func(context.Context) error, error) {
	modelSums := map[string]string{}
	for _, e := range meta.Models {
		if e.SHA256 != "" {
			modelSums[e.File] = e.SHA256
		}
	}
	want := make(map[string]string, len(paths))
	for _, p := range paths {
		sum, ok := sums.Top[p]
		if !ok {
			return nil, fmt.Errorf("%s is not listed in %s: it cannot be verified", p, layout.FileSums)
		}
		want[p] = sum
	}
	return func(ctx context.Context) error {
		return layout.HashFiles(ctx, dir, paths, workers, func(p, got string, _ int64, err error) error {
			switch {
			case err != nil:
				return fmt.Errorf("check %s: %w", p, err)
			case got != want[p]:
				return fmt.Errorf("%s is corrupt: its SHA-256 is %s, SHA256SUMS says %s", p, got, want[p])
			case modelSums[p] != "" && got != modelSums[p]:
				return fmt.Errorf("%s is corrupt: its SHA-256 is %s, %s says %s", p, got, layout.FileMetadata, modelSums[p])
			}
			return nil
		})
	}, nil
}
