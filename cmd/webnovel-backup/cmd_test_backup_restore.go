package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/roundtrip"
)

// testBackupRestoreOptions are the flags of test-backup-restore.
type testBackupRestoreOptions struct {
	roundtrip.Options
	stallTimeout time.Duration
	push         pushOptions
	keys         decryptOptions
}

// AddFlags adds test-backup-restore's flags to f.
func (o *testBackupRestoreOptions) AddFlags(f *pflag.FlagSet) {
	o.Sample = demo.DefaultOptions()
	f.StringVar(&o.ScratchDatabase, "scratch-database", "", "restore into this (empty, migrated or new) database `URL` instead of a temporary one")
	f.StringVar(&o.TempDir, "temp-dir", "", "`folder` where scratch files go (default: the system's temporary folder)")
	addStallFlag(f, &o.stallTimeout)
	o.push.AddFlags(f)
	f.DurationVar(&o.LockTimeout, "lock-timeout", database.DefaultLockTimeout, "fail when another session or process holds a lock the backup or the restore needs for longer than this, naming the table and the holder (nothing is changed; retry later)")
	// An identity encrypts the round trip's backup to its public key; a passphrase makes it a
	// passphrase backup.
	o.keys.AddFlags(f, true)
}

func newTestBackupRestoreCommand(g *globals) *cobra.Command {
	var o testBackupRestoreOptions
	cmd := &cobra.Command{
		Use:     "test-backup-restore",
		Aliases: []string{"test_backup_restore"},
		Short:   "Back up, restore into scratch targets, compare every row and file: PASS or FAIL",
		Long: `With no database configured (no --database, no DATABASE_URL) it generates a sample
platform, backs it up through the full pipeline, restores it into a scratch database and
storage, and compares every row and file. With a database configured it does the same with
that platform, read-only: the restore goes to a temporary database on the same PostgreSQL
server (or --scratch-database), a temporary SQLite file, and a temporary folder, all removed
afterwards. It always runs on an embedded queue with in-process workers. With --identity (or
a passphrase) the backup is encrypted to that key and the restore decrypts it.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.push.wrap(cmd, func() error { return runTestBackupRestore(cmd.Context(), o, g, consoleOf(cmd)) })
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runTestBackupRestore runs the round trip and prints PASS or FAIL with the differences.
func runTestBackupRestore(ctx context.Context, o testBackupRestoreOptions, g *globals, con console) error {
	if err := checkTimeouts(o.stallTimeout, o.LockTimeout); err != nil {
		return err
	}
	if g.database != "" || os.Getenv("DATABASE_URL") != "" {
		g.resolve()
		o.DatabaseURL, o.StorageURL = g.database, g.storage
	}
	var err error
	if o.Identities, err = o.keys.identities(); err != nil {
		return err
	}
	if o.Passphrase, err = o.keys.passphrase(); err != nil {
		return err
	}
	o.Workers = max(g.workers, 1)
	o.StallTimeout = &o.stallTimeout
	rep, err := roundtrip.Run(ctx, o.Options)
	if err != nil {
		return err
	}
	printRoundTrip(con.out, rep)
	if !rep.Pass {
		return fmt.Errorf("test-backup-restore: %d differences", len(rep.Differences))
	}
	return nil
}

func printRoundTrip(out io.Writer, rep *roundtrip.Report) {
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
	for _, w := range rep.Warnings {
		fmt.Fprintf(out, "  backup warning: %s\n", w)
	}
	switch {
	case rep.Pass && len(rep.Warnings) > 0:
		fmt.Fprintf(out, "PASS, with %d backup warnings above: what the backup did not keep, no restore brings back\n", len(rep.Warnings))
	case rep.Pass:
		fmt.Fprintln(out, "PASS")
	default:
		fmt.Fprintln(out, "FAIL")
	}
}
