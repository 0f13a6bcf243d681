package main

import (
	"context"
	"errors"
	"fmt"

	"log/slog"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/hooks"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

// backupOptions are the flags of backup.
type backupOptions struct {
	coordinator.BackupOptions
	includeFiles  bool
	asJSON        bool
	skipPreflight bool
	metricsAddr   string
	metricsFile   string
	stallTimeout  time.Duration
	copyTo        string
	hooks         *runHooks
	encrypt       encryptFlags
}

// AddFlags adds backup's flags to f.
func (o *backupOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.BackupDir, "backup-dir", "./backups", "`folder` the backup is written into")
	f.BoolVar(&o.SkipFiles, "skip-files", false, "back up only the database")
	f.BoolVar(&o.SkipDB, "skip-db", false, "back up only the files")
	f.BoolVar(&o.includeFiles, "include-files", false, "back up the file storage (the default; with --skip-db: files only)")
	f.StringSliceVar(&o.Models, "models", nil, "back up only these `labels` (e.g. books.Book books.Chapter accounts.User)")
	f.BoolVar(&o.Compress, "compress", false, "write backup_YYYYMMDD_HHMMSS.tar.gz instead of a folder (always a full backup: an archive reuses nothing)")
	f.BoolVar(&o.Full, "full", false, "copy every file, even those unchanged since an earlier backup (by default a folder backup hard-links, or on S3 shares, the files unchanged since the newest complete backup of the same storage)")
	f.BoolVar(&o.Checksum, "checksum", false, "tell unchanged files by the hash of their content (each file is read, and each earlier copy it would reuse: a damaged one is copied afresh) instead of their size and modification time (S3: ETag)")
	f.StringVar(&o.Base, "base", "", "reuse the unchanged files of this earlier backup (`NAME` in the destination, e.g. backup_20241201_143022) instead of the newest complete one")
	f.StringVar(&o.Compression, "compression", "", "the archive's `kind`: gzip (.tar.gz, the default), zstd (.tar.zst) or none (.tar); implies --compress")
	f.IntVar(&o.Indent, "indent", 0, "indent fixtures like dumpdata --indent N (0: one object per line)")
	f.IntVar(&o.ChunkRows, "chunk-rows", coordinator.DefaultChunkRows, "most rows of one piece: a table is read in primary-key pieces of about 4 MB (at most this many rows), in parallel, into its one fixture")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.StringVar(&o.metricsFile, "metrics-file", "", "write the run's metrics to this `file` for node_exporter's textfile collector (the last successful backup's time, for stale-backup alerts)")
	f.BoolVar(&o.skipPreflight, "skip-preflight", false, "skip the checks that run before the backup (those of webnovel-backup doctor)")
	f.BoolVar(&o.asJSON, "json", false, "print a machine-readable report (status, counts, bytes, duration, path, trace id) on standard output")
	f.StringVar(&o.Resume, "resume", "", "finish the abandoned or failed run with this `id` (see webnovel-backup runs); its other options are reused")
	addStallFlag(f, &o.stallTimeout)
	f.StringVar(&o.copyTo, "copy-to", "", "then copy the backup to this `destination` (folder or s3://…) as the run's last step; a failed copy keeps the backup and exits 3 (see webnovel-backup copy)")
	o.hooks = &runHooks{report: func(e error) any { return backupJSON(nil, e) }}
	o.hooks.AddFlags(f)
	o.encrypt.AddFlags(f)
	f.DurationVar(&o.LockTimeout, "lock-timeout", database.DefaultLockTimeout, "fail when another session or process holds a lock the backup needs for longer than this, naming the table and the holder (nothing is changed; retry later)")
}

func newBackupCommand(g *globals) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:     "backup [flags]",
		Aliases: []string{"backup_data"},
		Short:   "Back up the database and file storage into backup_YYYYMMDD_HHMMSS/",
		Example: `  webnovel-backup backup
  webnovel-backup backup --backup-dir /path/to/backups
  webnovel-backup backup --skip-files
  webnovel-backup backup --skip-db --include-files
  webnovel-backup backup --models books.Book books.Chapter accounts.User
  webnovel-backup backup --compress
  webnovel-backup backup --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`,
		// Labels after --models may be space separated, as with the Python command: cobra
		// sees the second and later ones as arguments.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && !cmd.Flags().Changed("models") {
				return usageErrorf("unexpected argument %q (model labels go after --models)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.hooks.wrap(cmd, func() error { return runBackup(cmd.Context(), o, g, consoleOf(cmd), args) })
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runBackup checks the options, runs the preflight, runs the backup and reports it.
func runBackup(ctx context.Context, o backupOptions, g *globals, con console, args []string) error {
	g.resolve()
	o.Models = append(o.Models, args...)
	o.DatabaseURL, o.StorageURL, o.Workers = g.database, g.storage, g.workers
	if err := o.check(g); err != nil {
		return err
	}
	cfg, err := g.pipelineConfig(g.workers)
	if err != nil {
		return err
	}
	if err := o.hooks.pre(ctx, hooks.Env{"BACKUP_DIR": redact.URL(o.BackupDir)}); err != nil {
		return o.report(con, nil, nil, err)
	}
	s, stop, err := o.preflightAndStart(ctx, cfg)
	if pe := (preflightError{}); errors.As(err, &pe) {
		return o.report(con, nil, nil, outcome.AfterCancel(ctx, pe.error))
	}
	if err != nil {
		return err
	}
	defer stop()
	bar := g.progress(con.err, o.asJSON)
	o.Progress = bar
	rep, err := s.Coordinator.Backup(ctx, o.BackupOptions)
	bar.Close(err != nil)
	var copied *copyStatus
	if err == nil && o.copyTo != "" {
		copied, err = copyAfterBackup(ctx, s.Coordinator, rep, o.copyTo)
	}
	o.writeMetricsFile()
	o.hooks.done(func(e error) any { return withCopy(backupJSON(rep, e), copied) })
	return o.report(con, rep, copied, outcome.AfterCancel(ctx, err))
}

// preflightError is a failed preflight, reported like the backup's own errors (the other
// errors of starting a run are returned as they are).
type preflightError struct{ error }

func (e preflightError) Unwrap() error { return e.error }

// preflightAndStart runs the preflight (unless skipped) and starts the run's queue and
// workers. With the embedded queue the two overlap, since starting it touches nothing outside
// this process (a failed preflight stops it again, unused); a cluster is joined only once the
// preflight has passed, so that a failed one leaves it untouched.
func (o *backupOptions) preflightAndStart(ctx context.Context, cfg pipeline.Config) (*pipeline.Session, func(), error) {
	if o.skipPreflight || o.Resume != "" {
		return startRun(ctx, cfg, o.metricsAddr, o.stallTimeout)
	}
	type started struct {
		s    *pipeline.Session
		stop func()
		err  error
	}
	early := make(chan started, 1)
	if cfg.NATSURL == "" {
		go func() {
			s, stop, err := startRun(ctx, cfg, o.metricsAddr, o.stallTimeout)
			early <- started{s, stop, err}
		}()
	}
	rep := preflight.Run(ctx, o.preflight(cfg.NATSURL, cfg.NATSOptions))
	if err := rep.Err(); err != nil {
		if cfg.NATSURL == "" {
			if st := <-early; st.err == nil {
				st.stop()
			}
		}
		return nil, nil, preflightError{err}
	}
	o.CheckPlanned = o.spaceCheck(rep.Estimate)
	if cfg.NATSURL != "" {
		return startRun(ctx, cfg, o.metricsAddr, o.stallTimeout)
	}
	st := <-early
	return st.s, st.stop, st.err
}

// check refuses option combinations that cannot work.
func (o *backupOptions) check(g *globals) error {
	if o.Compression != "" {
		if _, err := archive.ParseCompression(o.Compression); err != nil {
			return usageErrorf("%v", err)
		}
		o.Compress = true
	}
	switch {
	case o.Resume != "" && g.nats == "":
		return usageErrorf("--resume needs the cluster the run was on: --nats or NATS_URL")
	case o.includeFiles && o.SkipFiles:
		return usageErrorf("--include-files and --skip-files contradict each other")
	case o.SkipDB && o.SkipFiles:
		return usageErrorf("--skip-db and --skip-files leave nothing to back up")
	case g.workers < 0:
		return usageErrorf("--workers must be 0 or more")
	case o.Base != "" && o.Full:
		return usageErrorf("--base and --full contradict each other (--full reuses nothing)")
	case o.Base != "" && o.Compress:
		return usageErrorf("--base: a --compress archive is always a full backup")
	case o.Base != "" && o.SkipFiles:
		return usageErrorf("--base: with --skip-files there are no files to reuse")
	}
	if err := checkTimeouts(o.stallTimeout, o.LockTimeout); err != nil {
		return err
	}
	var err error
	if o.Recipients, o.Passphrase, err = o.encrypt.parse(o.Checksum); err != nil {
		return err
	}
	if _, err := platform.Default.Select(o.Models); err != nil {
		return usageErrorf("--models: %w", err)
	}
	// Before the backup: a copy refused at the end would leave exit 3 for a mistyped flag.
	for _, d := range []struct{ flag, dest string }{{"--backup-dir", o.BackupDir}, {"--copy-to", o.copyTo}} {
		if d.dest == "" {
			continue
		}
		if err := coordinator.RefuseDestinationInBackup(d.flag, d.dest); err != nil {
			return err
		}
	}
	return nil
}

// preflight is what to check before the backup: only the parts it will read.
func (o *backupOptions) preflight(natsURL string, natsOpts []nats.Option) preflight.Config {
	pc := preflight.Config{NATSURL: natsURL, NATSOptions: natsOpts, BackupDir: o.BackupDir,
		Compress: o.Compress, WalkBudget: 2 * time.Second, SpaceAfterPlan: !o.SkipFiles}
	if !o.SkipDB {
		pc.DatabaseURL = o.DatabaseURL
		pc.Models, _ = platform.Default.Select(o.Models)
	}
	if !o.SkipFiles {
		pc.StorageURL = o.StorageURL
	}
	return pc
}

// spaceCheck is the free-space check made once the files are planned: the database's
// estimate from the preflight plus the bytes the plan copies.
func (o *backupOptions) spaceCheck(dbBytes int64) func(context.Context, int64) error {
	dir, compress := o.BackupDir, o.Compress
	return func(_ context.Context, fileBytes int64) error {
		how := fmt.Sprintf("database about %s + files planned %s", humanize.IBytes(uint64(max(dbBytes, 0))), humanize.IBytes(uint64(fileBytes)))
		return preflight.Space(dir, dbBytes+fileBytes, compress, how)
	}
}

// writeMetricsFile writes the run's metrics for node_exporter's textfile collector: a cron
// backup exits before any scrape.
func (o *backupOptions) writeMetricsFile() {
	if o.metricsFile == "" {
		return
	}
	if err := prometheus.WriteToTextfile(o.metricsFile, telemetry.Gatherer()); err != nil {
		slog.Warn("write metrics file", "file", o.metricsFile, "err", err)
	}
}

// report prints the outcome, JSON or text, and returns err, the command's result. err comes
// through outcome.AfterCancel, so the report's status and the exit code agree.
func (o *backupOptions) report(con console, rep *coordinator.BackupReport, copied *copyStatus, err error) error {
	if o.asJSON {
		if jerr := printJSON(con.out, withCopy(backupJSON(rep, err), copied)); jerr != nil && err == nil {
			return jerr
		}
		return err
	}
	if rep != nil && (err == nil || copied != nil) {
		printBackupReport(con, rep)
		printCopyStatus(con, copied)
	}
	return err
}

func printBackupReport(con console, rep *coordinator.BackupReport) {
	out := con.out
	fmt.Fprintf(out, "Backup complete: %s\n", rep.Path)
	for _, m := range rep.Models {
		fmt.Fprintf(out, "  %-32s %8d rows  %s\n", m.Label, m.Rows, m.File)
	}
	if rep.Base != "" {
		fmt.Fprintf(out, "  files: %d (new %d, %d bytes; reused %d from %s)\n", rep.Files, rep.New.Files, rep.New.Bytes, rep.Reused.Files, rep.Base)
	} else {
		fmt.Fprintf(out, "  files: %d (%d bytes)\n", rep.Files, rep.Bytes)
	}
	if rep.Folders > 0 {
		fmt.Fprintf(out, "  folders: %d recorded (empty, or with permissions of their own)\n", rep.Folders)
	}
	if line := referencesLine(rep.References); line != "" {
		fmt.Fprintf(out, "  references: %s\n", line)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(con.err, "warning: %s\n", w)
	}
	fmt.Fprintf(out, "  run %s in %s\n", rep.RunID, rep.Duration.Round(1e6))
	if rep.TraceID != "" {
		fmt.Fprintf(out, "  trace %s\n", rep.TraceID)
	}
}

// backupJSON is the --json report of a backup; its status is outcome.Of's.
func backupJSON(rep *coordinator.BackupReport, err error) any {
	type model struct {
		Label  string `json:"label"`
		File   string `json:"file"`
		Rows   int64  `json:"rows"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	out := struct {
		Status          outcome.Status `json:"status"`
		Error           string         `json:"error,omitempty"`
		RunID           string         `json:"run_id,omitempty"`
		Path            string         `json:"path,omitempty"`
		TraceID         string         `json:"trace_id,omitempty"`
		Models          []model        `json:"models"`
		Rows            int64          `json:"rows"`
		Files           int64          `json:"files"`
		Bytes           int64          `json:"bytes"`
		Base            string         `json:"base,omitempty"`
		New             filesCount     `json:"new"`
		Reused          filesCount     `json:"reused"`
		Folders         int            `json:"folders,omitempty"`
		Warnings        []string       `json:"warnings"`
		References      any            `json:"references,omitempty"`
		DurationSeconds float64        `json:"duration_seconds"`
	}{Status: outcome.Of(err).Status, Error: errText(err), Models: []model{}, Warnings: []string{}}
	if rep != nil {
		out.RunID, out.Path, out.TraceID = rep.RunID, rep.Path, rep.TraceID
		out.Files, out.Bytes, out.DurationSeconds = rep.Files, rep.Bytes, rep.Duration.Seconds()
		out.Base, out.Folders = rep.Base, rep.Folders
		out.New, out.Reused = filesCount(rep.New), filesCount(rep.Reused)
		out.Warnings = append(out.Warnings, rep.Warnings...)
		if rep.References != nil {
			out.References = rep.References
		}
		for _, m := range rep.Models {
			out.Models = append(out.Models, model{m.Label, m.File, m.Rows, m.Bytes, m.SHA256})
			out.Rows += m.Rows
		}
	}
	return out
}

// filesCount is a number of files and their bytes in a --json report.
type filesCount struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// errText is err's message with its secrets masked, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return redact.Text(err.Error())
}
