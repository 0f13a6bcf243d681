package preflight

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/storage"
)

// CheckReferences is doctor --references: the database ↔ storage cross-check on the live
// platform.
const CheckReferences = "references"

// maxReferenceWarnings bounds the warnings naming a missing reference one by one; the
// report's References lists more.
const maxReferenceWarnings = 20

// checkReferences reads the file paths the live database's rows name (every model with file
// fields, exported as a backup would), then lists the storage, and joins the two through
// external sorts. Rows are read first: a file uploaded with its row meanwhile is then listed.
func checkReferences(ctx context.Context, c Config) (Check, *layout.References) {
	const advice = "the rows named in the warnings point at files the storage does not hold: put the files back (restore them from a backup: restore --select MODEL=PK), or fix the rows on the platform"
	switch {
	case c.DatabaseURL == "":
		return Check{Name: CheckReferences, Status: StatusSkipped, Detail: "no database: nothing names files"}, nil
	case c.StorageURL == "":
		return Check{Name: CheckReferences, Status: StatusSkipped, Detail: "no storage to look the files up in"}, nil
	}
	spill, err := scratch.MkdirTemp("", "wnb-references-")
	if err != nil {
		return fail(CheckReferences, err.Error(), "the system's temporary folder must be writable"), nil
	}
	defer os.RemoveAll(spill)
	chk := references.NewChecker(spill, 8<<20)
	defer chk.Close()
	if err := liveReferences(ctx, c, chk); err != nil {
		return fail(CheckReferences, err.Error(), "the database check above says why the database cannot be read"), nil
	}
	if err := liveFiles(ctx, c.StorageURL, chk); err != nil {
		return fail(CheckReferences, err.Error(), "the storage check above says why the storage cannot be read"), nil
	}
	rep, err := chk.Check(ctx, nil)
	if err != nil {
		return fail(CheckReferences, err.Error(), "see the error"), nil
	}
	detail := fmt.Sprintf("%d file paths named by rows, %d missing from the storage", rep.Refs, rep.Missing)
	ch := Check{Name: CheckReferences, Status: StatusOK, Detail: detail, Warnings: references.Warnings(rep, maxReferenceWarnings)}
	if rep.Missing > 0 {
		ch.Status, ch.Advice = StatusFail, advice
	}
	return ch, rep
}

// liveReferences adds the file paths every row of the described models names.
func liveReferences(ctx context.Context, c Config, chk *references.Checker) error {
	db, err := database.Open(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, m := range c.Models {
		if len(m.FileFields()) == 0 {
			continue
		}
		if err := exportReferences(ctx, db, m, chk); err != nil {
			return err
		}
	}
	return nil
}

// exportReferences exports m's rows as they are now into a reader that lists their files.
func exportReferences(ctx context.Context, db *database.DB, m platform.Model, chk *references.Checker) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := references.Scan(ctx, m, pr, true, chk.Add)
		pr.CloseWithError(err)
		done <- err
	}()
	_, err := db.Export(ctx, "", m, database.All, fixture.Format{}, pw)
	pw.CloseWithError(err)
	if serr := <-done; err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("read the file fields of %s: %w", m.Label, err)
	}
	return nil
}

// liveFiles adds every file the storage holds.
func liveFiles(ctx context.Context, url string, chk *references.Checker) error {
	b, err := storage.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Walk(ctx, "", func(o storage.Object) error { return chk.AddFile(o.Key) }); err != nil {
		return fmt.Errorf("list the storage: %w", err)
	}
	return nil
}
