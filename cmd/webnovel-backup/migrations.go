package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/verify"
)

// printMigrationCheck prints the comparison of the backup's recorded Django migrations with
// a database's, for a dry run and verify (nothing when there was none).
func printMigrationCheck(w io.Writer, mc *database.MigrationCheck) {
	if mc == nil {
		return
	}
	fmt.Fprintf(w, "    migrations: %s\n", mc.Summary())
}

// verifyTargetURL is the database verify compares the backup's migrations with: only one
// given explicitly (--database or DATABASE_URL), never the default, since verify needs none.
func verifyTargetURL(g *globals) string {
	if g.database != "" {
		return g.database
	}
	return os.Getenv("DATABASE_URL")
}

// compareVerifyMigrations compares the verified backup's recorded migrations with the
// database at url. What it finds are warnings, not problems: they say whether a restore into
// that database would go ahead, not whether the backup is sound; a database that cannot be
// read is a warning too.
func compareVerifyMigrations(ctx context.Context, rep *verify.Report, url string) {
	mc := rep.Migrations
	if url == "" || mc == nil || !mc.Recorded {
		return
	}
	err := func() error {
		db, err := database.Open(ctx, url)
		if err != nil {
			return err
		}
		defer db.Close()
		return mc.Compare(ctx, db)
	}()
	if err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("migrations: cannot compare the backup's Django migrations with the database: %v", err))
		return
	}
	if r := mc.Refusal(); r != "" {
		rep.Warnings = append(rep.Warnings, "migrations: a restore into it would be refused: "+r)
	}
	if w := mc.Warning(); w != "" {
		rep.Warnings = append(rep.Warnings, "migrations: "+w)
	}
}
