package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

func newBackupCommand(g *globals) *cobra.Command {
	var (
		o             coordinator.BackupOptions
		includeFiles  bool
		metricsAddr   string
		asJSON        bool
		skipPreflight bool
		metricsFile   string
	)
	cmd := &cobra.Command{
		Use:     "backup [flags]",
		Aliases: []string{"backup_data"},
		Short:   "Back up the database and file storage into backup_YYYYMMDD_HHMMSS/",
		Example: `  webnovel-backup backup
  webnovel-backup backup --backup-dir /path/to/backups
  webnovel-backup backup --skip-files
  webnovel-backup backup --skip-db --include-files
  webnovel-backup backup --models books.Book books.Chapter accounts.User
  webnovel-backup backup --compress`,
		// Labels after --models may be space separated, as with the Python command: cobra
		// sees the second and later ones as arguments.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && !cmd.Flags().Changed("models") {
				return usageErrorf("unexpected argument %q (model labels go after --models)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			g.resolve()
			o.Models = append(o.Models, args...)
			if o.Resume != "" && g.nats == "" {
				return usageErrorf("--resume needs the cluster the run was on: --nats or NATS_URL")
			}
			if includeFiles && o.SkipFiles {
				return usageErrorf("--include-files and --skip-files contradict each other")
			}
			if o.SkipDB && o.SkipFiles {
				return usageErrorf("--skip-db and --skip-files leave nothing to back up")
			}
			if _, err := platform.Default.Select(o.Models); err != nil {
				return usageErrorf("--models: %w", err)
			}
			if g.workers < 0 {
				return usageErrorf("--workers must be 0 or more")
			}
			o.DatabaseURL, o.StorageURL, o.Workers = g.database, g.storage, g.workers
			cfg, err := g.pipelineConfig(g.workers)
			if err != nil {
				return err
			}
			if !skipPreflight && o.Resume == "" {
				pc := preflight.Config{NATSURL: cfg.NATSURL, NATSOptions: cfg.NATSOptions, BackupDir: o.BackupDir,
					Compress: o.Compress, WalkBudget: 2 * time.Second}
				if !o.SkipDB {
					pc.DatabaseURL = o.DatabaseURL
					pc.Models, _ = platform.Default.Select(o.Models)
				}
				if !o.SkipFiles {
					pc.StorageURL = o.StorageURL
				}
				if err := preflight.Run(cmd.Context(), pc).Err(); err != nil {
					if asJSON {
						printJSON(cmd.OutOrStdout(), backupJSON(nil, err))
					}
					return err
				}
			}
			s, stop, err := startRun(cmd, cfg, metricsAddr)
			if err != nil {
				return err
			}
			defer stop()
			bar := g.progress(cmd, asJSON)
			o.Progress = bar
			rep, err := s.Coordinator.Backup(cmd.Context(), o)
			bar.Close(err != nil)
			if metricsFile != "" {
				// For node_exporter's textfile collector: a cron backup exits before any scrape.
				if merr := prometheus.WriteToTextfile(metricsFile, telemetry.Gatherer()); merr != nil {
					slog.Warn("write metrics file", "file", metricsFile, "err", merr)
				}
			}
			if asJSON {
				if jerr := printJSON(cmd.OutOrStdout(), backupJSON(rep, err)); jerr != nil {
					return jerr
				}
				if err != nil {
					return err
				}
				return nil
			}
			if err != nil {
				return err
			}
			printBackupReport(cmd, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.BackupDir, "backup-dir", "./backups", "folder the backup is written into")
	f.BoolVar(&o.SkipFiles, "skip-files", false, "back up only the database")
	f.BoolVar(&o.SkipDB, "skip-db", false, "back up only the files")
	f.BoolVar(&includeFiles, "include-files", false, "back up the file storage (the default; with --skip-db: files only)")
	f.StringSliceVar(&o.Models, "models", nil, "back up only these models (e.g. books.Book books.Chapter accounts.User)")
	f.BoolVar(&o.Compress, "compress", false, "write backup_YYYYMMDD_HHMMSS.tar.gz instead of a folder")
	f.IntVar(&o.Indent, "indent", 0, "indent fixtures like dumpdata --indent N (0: one object per line)")
	f.IntVar(&o.ChunkRows, "chunk-rows", coordinator.DefaultChunkRows, "split tables larger than this into primary-key ranges exported in parallel")
	f.StringVar(&metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.StringVar(&metricsFile, "metrics-file", "", "write the run's metrics to this file for node_exporter's textfile collector (the last successful backup's time, for stale-backup alerts)")
	f.BoolVar(&skipPreflight, "skip-preflight", false, "skip the checks of `webnovel-backup doctor` that run before the backup")
	f.BoolVar(&asJSON, "json", false, "print a machine-readable report (status, counts, bytes, duration, path, trace id) on standard output")
	f.StringVar(&o.Resume, "resume", "", "finish the abandoned run with this id (see `webnovel-backup runs`); its other options are reused")
	return cmd
}

func printBackupReport(cmd *cobra.Command, rep *coordinator.BackupReport) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Backup complete: %s\n", rep.Path)
	for _, m := range rep.Models {
		fmt.Fprintf(out, "  %-32s %8d rows  %s\n", m.Label, m.Rows, m.File)
	}
	fmt.Fprintf(out, "  files: %d (%d bytes)\n", rep.Files, rep.Bytes)
	for _, w := range rep.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	fmt.Fprintf(out, "  run %s in %s\n", rep.RunID, rep.Duration.Round(1e6))
	if rep.TraceID != "" {
		fmt.Fprintf(out, "  trace %s\n", rep.TraceID)
	}
}

// backupJSON is the --json report of a backup.
func backupJSON(rep *coordinator.BackupReport, err error) any {
	type model struct {
		Label  string `json:"label"`
		File   string `json:"file"`
		Rows   int64  `json:"rows"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	out := struct {
		Status          string   `json:"status"`
		Error           string   `json:"error,omitempty"`
		RunID           string   `json:"run_id,omitempty"`
		Path            string   `json:"path,omitempty"`
		TraceID         string   `json:"trace_id,omitempty"`
		Models          []model  `json:"models"`
		Rows            int64    `json:"rows"`
		Files           int64    `json:"files"`
		Bytes           int64    `json:"bytes"`
		Warnings        []string `json:"warnings"`
		DurationSeconds float64  `json:"duration_seconds"`
	}{Status: "complete", Models: []model{}, Warnings: []string{}}
	if err != nil {
		out.Status, out.Error = "failed", err.Error()
	}
	if rep != nil {
		out.RunID, out.Path, out.TraceID = rep.RunID, rep.Path, rep.TraceID
		out.Files, out.Bytes, out.DurationSeconds = rep.Files, rep.Bytes, rep.Duration.Seconds()
		out.Warnings = append(out.Warnings, rep.Warnings...)
		for _, m := range rep.Models {
			out.Models = append(out.Models, model{m.Label, m.File, m.Rows, m.Bytes, m.SHA256})
			out.Rows += m.Rows
		}
	}
	return out
}
