package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/hooks"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// errNoTerminal refuses a restore nobody can confirm.
var errNoTerminal = errors.New("refusing to restore without confirmation: standard input is not a terminal; add --force to restore anyway (nothing was changed)")

// restoreOptions are the flags of restore.
type restoreOptions struct {
	coordinator.RestoreOptions
	force         bool
	asJSON        bool
	skipPreflight bool
	metricsAddr   string
	stallTimeout  time.Duration
	hooks         *runHooks
	keys          decryptOptions
	sel           coordinator.SelectOptions
}

// AddFlags adds restore's flags to f.
func (o *restoreOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.DryRun, "dry-run", false, "check everything and show what would be restored; change nothing")
	f.BoolVar(&o.force, "force", false, "restore without asking for confirmation")
	f.BoolVar(&o.SkipFiles, "skip-files", false, "restore only the database")
	f.BoolVar(&o.SkipDB, "skip-db", false, "restore only the files")
	f.StringSliceVar(&o.Models, "models", nil, "restore only these `labels` (e.g. books.Book books.Chapter); the storage files are all restored too unless --skip-files")
	f.BoolVar(&o.Merge, "merge", false, "upsert rows by primary key (like loaddata) instead of replacing the models' tables")
	f.IntVar(&o.Jobs, "jobs", 1, "load a PostgreSQL database over `N` connections in parallel, as pg_restore -j does: only into empty tables (refused otherwise), and a failure leaves the database half-restored until a rerun with --jobs")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.BoolVar(&o.skipPreflight, "skip-preflight", false, "skip the reachability checks that run before the restore (those of webnovel-backup doctor)")
	f.BoolVar(&o.asJSON, "json", false, "print a machine-readable report (status, rows per model, files, duration, trace id) on standard output")
	f.BoolVar(&o.RequireChecksums, "require-checksums", false, "refuse a backup without SHA256SUMS even when the Python command wrote it")
	f.StringVar(&o.TempDir, "temp-dir", "", "`folder` where a .tar.gz is unpacked (default: the system's temporary folder)")
	addStallFlag(f, &o.stallTimeout)
	o.hooks = &runHooks{report: func(e error) any { return restoreJSON(nil, e) }}
	o.hooks.AddFlags(f)
	o.addSelectFlags(f)
	f.DurationVar(&o.LockTimeout, "lock-timeout", database.DefaultLockTimeout, "fail when another session or process holds a lock the restore needs for longer than this, naming the table and the holder (nothing is changed; retry later)")
	o.keys.AddFlags(f, true)
}

func newRestoreCommand(g *globals) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:     "restore PATH",
		Aliases: []string{"restore_data"},
		Short:   "Restore the database and files from a backup folder or .tar.gz",
		Example: `  webnovel-backup restore /path/to/backup_20241201_143022
  webnovel-backup restore /path/to/backup_20241201_143022.tar.gz
  webnovel-backup restore /path/to/backup --dry-run
  webnovel-backup restore /path/to/backup --force
  webnovel-backup restore /path/to/backup --skip-files
  webnovel-backup restore /path/to/backup --skip-db`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("restore needs the backup to restore: restore PATH")
			}
			if len(args) > 1 && !cmd.Flags().Changed("models") {
				return usageErrorf("unexpected argument %q (restore takes one PATH)", args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.hooks.wrap(cmd, func() error { return runRestore(cmd.Context(), o, g, consoleOf(cmd), args) })
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runRestore checks the options, runs the preflight, restores (asking first unless --force)
// and reports it.
func runRestore(ctx context.Context, o restoreOptions, g *globals, con console, args []string) error {
	g.resolve()
	o.Source = storage.LocalPath(args[0]) // file:///srv/backups/backup_x is that folder
	o.Models = append(o.Models, args[1:]...)
	o.DatabaseURL, o.StorageURL = g.database, g.storage
	if err := o.check(); err != nil {
		return err
	}
	if !storage.IsS3(o.Source) {
		if err := coordinator.RefuseTargetInsideBackup(o.Source, o.RestoreOptions); err != nil {
			return o.report(con, nil, err)
		}
	}
	if !o.force && !o.DryRun {
		o.Confirm = o.confirm(con)
	}
	coordinator.TuneRestoreGC()
	cfg, err := g.pipelineConfig(g.workers)
	if err != nil {
		return err
	}
	if o.Identities, o.Passphrase, err = o.keys.keysFor(ctx, o.Source); err != nil {
		return o.report(con, nil, err)
	}
	cfg.Identities = o.Identities
	if err := o.hooks.pre(ctx, hooks.Env{"BACKUP_PATH": redact.URL(o.Source)}); err != nil {
		return o.report(con, nil, err)
	}
	// A parallel restore's fixtures are hashed while the preflight connects.
	o.EarlySums = coordinator.StartEarlySums(ctx, o.RestoreOptions)
	defer o.EarlySums.Stop()
	// A restore with no files to copy has no tasks: no queue, no workers.
	cfg.NoQueue = !coordinator.RestoreNeedsQueue(ctx, o.RestoreOptions)
	if cfg.NoQueue {
		cfg.NATSURL = ""
	}
	if !o.skipPreflight {
		rep := preflight.Run(ctx, o.preflight(ctx, cfg.NATSURL, cfg.NATSOptions))
		if rep.Database != nil {
			defer rep.Database.Close()
		}
		if err := rep.Err(); err != nil {
			return o.report(con, nil, outcome.AfterCancel(ctx, err))
		}
		o.Target = rep.Database
	}
	s, stop, err := startRun(ctx, cfg, o.metricsAddr, o.stallTimeout)
	if err != nil {
		return err
	}
	defer stop()
	bar := g.progress(con.err, o.asJSON)
	if !o.DryRun {
		o.Progress = bar
	}
	rep, err := s.Coordinator.Restore(ctx, o.RestoreOptions)
	bar.Close(err != nil)
	o.hooks.done(func(e error) any { return restoreJSON(rep, e) })
	return o.report(con, rep, outcome.AfterCancel(ctx, err))
}

// check refuses option combinations that cannot work.
func (o *restoreOptions) check() error {
	if o.SkipDB && o.SkipFiles {
		return usageErrorf("--skip-db and --skip-files leave nothing to restore")
	}
	if o.Jobs < 1 {
		return usageErrorf("--jobs must be at least 1, not %d", o.Jobs)
	}
	if o.Jobs > 1 && o.Merge {
		return usageErrorf("--jobs cannot be combined with --merge: a parallel restore fills empty tables")
	}
	if o.Jobs > 1 && o.SkipDB {
		return usageErrorf("--jobs loads the database in parallel; with --skip-db there is none to load")
	}
	if err := checkTimeouts(o.stallTimeout, o.LockTimeout); err != nil {
		return err
	}
	if _, err := platform.Default.Select(o.Models); err != nil {
		return usageErrorf("--models: %w", err)
	}
	return o.checkSelect()
}

// confirm shows the plan and asks the operator; without a terminal nobody can answer, which
// is a usage error (add --force).
func (o *restoreOptions) confirm(con console) func(*coordinator.RestorePlan) (bool, error) {
	return func(p *coordinator.RestorePlan) (bool, error) {
		if o.asJSON {
			printRestorePlan(con.err, p) // standard output carries the report
		} else {
			printRestorePlan(con.out, p)
		}
		if !stdinIsTerminal() {
			return false, outcome.NewUsage(errNoTerminal)
		}
		return askYes(con.in, con.out)
	}
}

// preflight is what to check before the restore: reachability of the target, its schema
// (migrated?), storage and queue; the restore checks the backup itself before it changes
// anything. The storage check reads one file instead of summing every size (the restore
// measures the free space itself, once its files are planned, and the walk of a large
// storage, or of the working directory when ./media does not exist yet, was most of a small
// restore's time), and is left out for a backup known to hold no files; nor is the database
// measured.
func (o *restoreOptions) preflight(ctx context.Context, natsURL string, natsOpts []nats.Option) preflight.Config {
	pc := preflight.Config{NATSURL: natsURL, NATSOptions: natsOpts, SpaceAfterPlan: true, NoDatabaseSize: true}
	c := coordinator.PeekBackup(ctx, o.Source)
	if !o.SkipDB && (!c.Known || c.Database) {
		pc.DatabaseURL = o.DatabaseURL
		pc.Models, _ = platform.Default.Select(o.Models)
		// The restore loads over the connection checked here (checked for every model it may
		// load), not opening a second one and reading the schema again.
		pc.KeepDatabase, pc.DatabaseOptions = true, database.Options{LockTimeout: o.LockTimeout, Silence: database.SilenceFor(o.stallTimeout)}
	}
	if !o.SkipFiles && !storage.IsS3(o.StorageURL) && (!c.Known || c.Files) {
		pc.StorageURL = storageForPreflight(o.StorageURL)
	}
	return pc
}

// report prints the outcome (JSON, the dry run's plan, or the text report) and returns err,
// the command's result. err comes through outcome.AfterCancel, so the report's status and
// the exit code agree.
func (o *restoreOptions) report(con console, rep *coordinator.RestoreReport, err error) error {
	// Doubts about the backup (no checksums) go to standard error in every output mode, so
	// that neither --json nor --quiet hides them.
	if rep != nil && rep.Plan != nil {
		for _, w := range rep.Plan.Warnings {
			fmt.Fprintf(con.err, "warning: %s\n", w)
		}
	}
	switch {
	case o.asJSON:
		if jerr := printJSON(con.out, restoreJSON(rep, err)); jerr != nil && err == nil {
			return jerr
		}
	case rep != nil && rep.DryRun && err == nil:
		printRestorePlan(con.out, rep.Plan)
		fmt.Fprintln(con.out, "Dry run: every check passed; nothing was changed.")
	case rep != nil && !rep.DryRun && outcome.Of(err).Status != outcome.Refused && outcome.Of(err).Status != outcome.Usage:
		// A refusal changed nothing: the error says why, and no "finished" report follows it.
		printRestoreReport(con.out, rep)
	}
	return err
}

func printRestorePlan(w io.Writer, p *coordinator.RestorePlan) {
	if p.Subset != nil {
		printSubsetPlan(w, p)
		return
	}
	fmt.Fprintf(w, "Restore from %s (run %s, taken %s)\n", p.Backup, p.Metadata.RunID, p.Metadata.BackupTimestamp.Format("2006-01-02 15:04:05"))
	if p.Database != "" {
		verb := "REPLACE the rows of"
		if p.Merge {
			verb = "merge (upsert by pk) into"
		}
		fmt.Fprintf(w, "  database %s: %s %d tables\n", p.Database, verb, len(p.Models))
		printMigrationCheck(w, p.Migrations)
		for _, m := range p.Models {
			fmt.Fprintf(w, "    %-32s now %8d rows -> %8d rows from %s\n", m.Label, m.Current, m.Rows, m.File)
		}
	}
	if p.Storage != "" {
		fmt.Fprintf(w, "  storage %s: write %d files (%d bytes), overwriting files with the same names\n", p.Storage, p.Files, p.Bytes)
		if p.Space != nil {
			fmt.Fprintf(w, "    free space: %s\n", p.Space)
		}
		if p.Folders > 0 {
			fmt.Fprintf(w, "    folders: %d recorded (empty, or with permissions of their own), made or given their permissions after the files\n", p.Folders)
		}
		if p.Owner != "" {
			fmt.Fprintf(w, "    owner: what is written is given %s, the storage folder's owner and group (this restore runs as root)\n", p.Owner)
		}
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

func printRestoreReport(w io.Writer, r *coordinator.RestoreReport) {
	if r.Stopped != "" {
		fmt.Fprintln(w, "Restore stopped:")
	} else {
		fmt.Fprintln(w, "Restore finished:")
	}
	// A merge upserts the backup's rows among the table's: it does not say how many it holds.
	format := "  %-32s %8d rows (had %d)\n"
	if r.Plan != nil && r.Plan.Merge {
		format = "  %-32s %8d rows merged (it had %d; other rows kept)\n"
	}
	for _, m := range r.Loaded {
		fmt.Fprintf(w, format, m.Label, m.Rows, m.Before)
	}
	printRestoredFiles(w, r)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failed: %s\n", f)
	}
	fmt.Fprintf(w, "  run %s in %s\n", r.RunID, r.Duration.Round(1e6))
	if r.TraceID != "" {
		fmt.Fprintf(w, "  trace %s\n", r.TraceID)
	}
}

// printRestoredFiles prints the files' counts; when the copies stopped midway, as what is
// known to be in the storage, what is not, and why they stopped.
func printRestoredFiles(w io.Writer, r *coordinator.RestoreReport) {
	if r.Stopped == "" {
		fmt.Fprintf(w, "  files: %d restored (%d bytes), %d failed\n", r.Files, r.Bytes, r.Failed)
		if r.Plan != nil && r.Plan.Folders > 0 {
			fmt.Fprintf(w, "  folders: %d recorded, made or given their permissions\n", r.Plan.Folders)
		}
		return
	}
	least, most := "", ""
	if r.FilesAtLeast {
		least, most = "at least ", "at most "
	}
	fmt.Fprintf(w, "  files: %s%d restored (%d bytes) before the copies stopped, %d failed, %s%d not restored\n",
		least, r.Files, r.Bytes, r.Failed, most, r.Unfinished)
	if r.FilesAtLeast {
		fmt.Fprintln(w, "  (copies still running when they stopped may have written more)")
	}
	fmt.Fprintf(w, "  stopped: %s\n", r.Stopped)
}

// stdinIsTerminal reports whether a person can answer the confirmation prompt (/dev/null is a
// character device too, so ask the terminal driver).
func stdinIsTerminal() bool {
	return term.IsTerminal(int(os.Stdin.Fd()))
}

func askYes(in io.Reader, out io.Writer) (bool, error) {
	fmt.Fprint(out, "Type yes to restore: ")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, err
	}
	return strings.TrimSpace(line) == "yes", nil
}

// restoreJSON is the --json report of a restore; its status is outcome.Of's.
func restoreJSON(rep *coordinator.RestoreReport, err error) any {
	type model struct {
		Label  string `json:"label"`
		Rows   int64  `json:"rows"`
		Before int64  `json:"rows_before"`
	}
	out := struct {
		Status   outcome.Status `json:"status"`
		Error    string         `json:"error,omitempty"`
		DryRun   bool           `json:"dry_run"`
		RunID    string         `json:"run_id,omitempty"`
		Backup   string         `json:"backup,omitempty"`
		TraceID  string         `json:"trace_id,omitempty"`
		Models   []model        `json:"models"`
		Files    int64          `json:"files"`
		Bytes    int64          `json:"bytes"`
		Failed   int64          `json:"failed"`
		Failures []string       `json:"failures"`
		// Stopped is why the file copies ended before every task finished; Files and Bytes
		// then count what is known to be restored (at least, with FilesAtLeast), and
		// Unfinished the files not counted.
		Stopped      string `json:"files_stopped,omitempty"`
		Unfinished   int64  `json:"files_not_restored,omitempty"`
		FilesAtLeast bool   `json:"files_at_least,omitempty"`
		// Folders is the recorded folders (empty, or with permissions of their own) the
		// restore makes or gives their permissions.
		Folders int `json:"folders,omitempty"`
		// Owner is the "uid:gid" the restored files and folders are given: the storage
		// folder's, when the restore runs as root.
		Owner string `json:"owner,omitempty"`
		// Space is the free-space check of a local storage folder.
		Space           *coordinator.SpaceCheck `json:"space,omitempty"`
		Warnings        []string                `json:"warnings"`
		DurationSeconds float64                 `json:"duration_seconds"`
		// Selection is the graph of a restore of selected rows (--book, --select).
		Selection *coordinator.SubsetPlan `json:"selection,omitempty"`
		// Migrations compares the backup's recorded Django migrations with the target's.
		Migrations *database.MigrationCheck `json:"migrations,omitempty"`
	}{Models: []model{}, Failures: []string{}, Warnings: []string{}}
	out.Status, out.Error = outcome.Of(err).Status, errText(err)
	if rep == nil {
		return out
	}
	out.DryRun, out.RunID, out.TraceID = rep.DryRun, rep.RunID, rep.TraceID
	out.Files, out.Bytes, out.Failed, out.DurationSeconds = rep.Files, rep.Bytes, rep.Failed, rep.Duration.Seconds()
	out.Failures = append(out.Failures, rep.Failures...)
	out.Stopped, out.Unfinished, out.FilesAtLeast = rep.Stopped, rep.Unfinished, rep.FilesAtLeast
	if rep.Plan != nil {
		out.Backup, out.Selection, out.Migrations, out.Space = rep.Plan.Backup, rep.Plan.Subset, rep.Plan.Migrations, rep.Plan.Space
		out.Folders, out.Owner = rep.Plan.Folders, rep.Plan.Owner
		out.Warnings = append(out.Warnings, rep.Plan.Warnings...)
		if rep.DryRun {
			if err == nil {
				out.Status = outcome.DryRun
			}
			for _, m := range rep.Plan.Models {
				out.Models = append(out.Models, model{Label: m.Label, Rows: m.Rows, Before: m.Current})
			}
			out.Files, out.Bytes = rep.Plan.Files, rep.Plan.Bytes
		}
	}
	for _, m := range rep.Loaded {
		out.Models = append(out.Models, model{Label: m.Label, Rows: m.Rows, Before: m.Before})
	}
	return out
}

// storageForPreflight is the storage to check before a restore: a folder that does not exist
// yet is fine (the restore creates it), so its nearest existing parent is checked instead.
func storageForPreflight(u string) string {
	p := storage.LocalPath(u)
	for {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			return p
		}
		p = filepath.Dir(p)
	}
}
