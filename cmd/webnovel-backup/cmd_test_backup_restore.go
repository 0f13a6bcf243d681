package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/roundtrip"
)

func newTestBackupRestoreCommand(g *globals) *cobra.Command {
	o := roundtrip.Options{Sample: demo.DefaultOptions()}
	cmd := &cobra.Command{
		Use:     "test-backup-restore",
		Aliases: []string{"test_backup_restore"},
		Short:   "Back up, restore into scratch targets, compare every row and file: PASS or FAIL",
		Long: `With no database configured (no --database, no DATABASE_URL) it generates a sample
platform, backs it up through the full pipeline, restores it into a scratch database and
storage, and compares every row and file. With a database configured it does the same with
that platform, read-only: the restore goes to a temporary database on the same PostgreSQL
server (or --scratch-database), a temporary SQLite file, and a temporary folder, all removed
afterwards. It always runs on an embedded queue with in-process workers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.database != "" || os.Getenv("DATABASE_URL") != "" {
				g.resolve()
				o.DatabaseURL, o.StorageURL = g.database, g.storage
			}
			o.Workers = max(g.workers, 1)
			rep, err := roundtrip.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			what := "the configured platform"
			if rep.Generated {
				what = "a generated sample platform"
			}
			fmt.Fprintf(out, "Backup → restore → compare of %s: %d rows, %d files\n", what, rep.Rows, rep.Files)
			for _, t := range rep.Timings {
				fmt.Fprintf(out, "  %-9s %s\n", t.Phase, t.Took.Round(1e6))
			}
			for _, d := range rep.Differences {
				fmt.Fprintf(out, "  difference: %s\n", d)
			}
			if !rep.Pass {
				fmt.Fprintln(out, "FAIL")
				return fmt.Errorf("test-backup-restore: %d differences", len(rep.Differences))
			}
			fmt.Fprintln(out, "PASS")
			return nil
		},
	}
	cmd.Flags().StringVar(&o.ScratchDatabase, "scratch-database", "", "restore into this (empty, migrated or new) database instead of a temporary one")
	cmd.Flags().StringVar(&o.TempDir, "temp-dir", "", "where scratch files go (default: the system's temporary folder)")
	return cmd
}
