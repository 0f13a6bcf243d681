package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/preflight"
)

// doctorOptions are the flags of doctor.
type doctorOptions struct {
	preflight.Config
	asJSON            bool
	skipDB, skipFiles bool
}

// AddFlags adds doctor's flags to f.
func (o *doctorOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.BackupDir, "backup-dir", "./backups", "the `destination` to check: a folder or s3://bucket/prefix?…")
	f.BoolVar(&o.Compress, "compress", false, "the backup will be a .tar.gz: count room for the staging folder and the archive")
	f.BoolVar(&o.skipDB, "skip-db", false, "do not check the database")
	f.BoolVar(&o.skipFiles, "skip-files", false, "do not check the storage")
	f.DurationVar(&o.WalkBudget, "walk-budget", 0, "how long to spend counting the storage's sizes (default 5s)")
	f.Int64Var(&o.EstimateBytes, "estimate-bytes", 0, "use this size for the backup instead of estimating it")
	f.BoolVar(&o.References, "references", false, "also check that every file a row names (covers, chapter files, media, book files) is in the storage")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
}

func newDoctorCommand(g *globals) *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that a backup can run here: database, schema, storage, destination, NATS, free space",
		Long: `Check everything a backup needs, and say what to do about each problem: the database answers
(--database / DATABASE_URL) and its schema matches the platform's models (unknown columns are
warnings), the storage can be read (--storage / STORAGE_URL), the destination can be written
(--backup-dir: a probe file is created and removed; a folder that does not exist yet must be
creatable), the NATS cluster answers with JetStream enabled (only with --nats / NATS_URL), and
the destination has room for the backup (local folders only). The size is estimated from the
database's size and the storage's files; counting stops after --walk-budget on a huge storage,
and the estimate says so. With --references every file path a row names in a file field is
looked up in the storage (the whole storage is listed): a row naming a lost file fails the
check, naming the model, pk, field and path.

Exit status: 0 every check passed, 1 a check failed.`,
		Example: `  webnovel-backup doctor --backup-dir /backups/daily
  DATABASE_URL=postgres://… NATS_URL=nats://nats:4222 webnovel-backup doctor --backup-dir s3://backups/nightly --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runDoctor(cmd.Context(), o, g, consoleOf(cmd)) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runDoctor runs every preflight check and prints each with its advice.
func runDoctor(ctx context.Context, o doctorOptions, g *globals, con console) error {
	g.resolve()
	opts, err := g.natsAuth.Options()
	if err != nil {
		return usageErrorf("%w", err)
	}
	c := o.Config
	c.DatabaseURL, c.StorageURL, c.NATSURL, c.NATSOptions = g.database, g.storage, g.nats, opts
	if o.skipDB {
		c.DatabaseURL = ""
	}
	if o.skipFiles {
		c.StorageURL = ""
	}
	rep := preflight.Run(ctx, c)
	if o.asJSON {
		if err := printJSON(con.out, rep); err != nil {
			return err
		}
	} else {
		printDoctorReport(con.out, rep)
	}
	if !rep.OK {
		return errors.New("doctor: some checks failed")
	}
	return nil
}

func printDoctorReport(out io.Writer, rep preflight.Report) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, ch := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Status, ch.Name, ch.Detail)
		for _, w := range ch.Warnings {
			fmt.Fprintf(tw, "\t\twarning: %s\n", w)
		}
		if ch.Status == preflight.StatusFail {
			fmt.Fprintf(tw, "\t\tfix: %s\n", ch.Advice)
		}
	}
	tw.Flush()
}
