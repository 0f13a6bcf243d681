package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
)

// copyOptions are the flags of copy.
type copyOptions struct {
	asJSON       bool
	filesPerTask int
	stallTimeout time.Duration
	metricsAddr  string
}

// AddFlags adds copy's flags to f.
func (o *copyOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.asJSON, "json", false, "print a machine-readable report (status, source, path, storage files copied and reused, files and bytes written, duration) on standard output")
	f.IntVar(&o.filesPerTask, "files-per-task", 2000, "files in one copy task")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", metricsFlagUsage)
	addStallFlag(f, &o.stallTimeout)
}

func newCopyCommand(g *globals) *cobra.Command {
	var o copyOptions
	cmd := &cobra.Command{
		Use:   "copy BACKUP DEST",
		Short: "Copy a complete backup (folder or archive) to another destination",
		Long: `Copy the complete backup BACKUP (a backup folder or archive; a path or an s3:// location) into
the destination DEST (a folder or an s3://bucket/prefix, as --backup-dir), under the same name,
through the queue and its workers. S3 credentials come from the standard AWS chain for both ends;
between two locations of one S3 service (the same endpoint) files are copied server-side.

BACKUP's manifest is checked first (an incomplete, corrupt or tampered backup is refused), and
every file is checked on arrival against it: a mismatch fails the copy, naming the file, and
nothing is published. The copy is staged in DEST/.wnb-staging-<run>/ and published with its
metadata last, which records where it was copied from.

Incremental: into a folder, files whose path and sum match the newest complete backup of DEST
are hard links to it; into S3, files go to DEST's object store (objects/sha256/…), where content
already there is not copied again. An archive is copied as one object, its SHA-256 checked
(its metadata is inside it, so it records no copied_from).

When DEST already holds the backup, complete and with the same manifest, copy does nothing and
succeeds; another backup of that name is refused (exit 2).`,
		Example: `  webnovel-backup copy ./backups/backup_20241201_143022 's3://offsite/nightly?region=eu-west-1'
  webnovel-backup copy 's3://backups/nightly/backup_20241201_143022.tar.gz?endpoint=https://minio.local' /mnt/offsite`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), o, g, consoleOf(cmd), args[0], args[1])
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runCopy copies the backup and reports it.
func runCopy(ctx context.Context, o copyOptions, g *globals, con console, backup, dest string) error {
	g.resolve()
	if err := checkTimeouts(o.stallTimeout, 0); err != nil {
		return err
	}
	if o.filesPerTask <= 0 {
		return usageErrorf("--files-per-task must be 1 or more")
	}
	cfg, err := g.pipelineConfig(g.workers)
	if err != nil {
		return err
	}
	s, stop, err := startRun(ctx, cfg, o.metricsAddr, o.stallTimeout)
	if err != nil {
		return err
	}
	defer stop()
	rep, err := s.Coordinator.Copy(ctx, coordinator.CopyOptions{Backup: backup, Dest: dest, FilesPerTask: o.filesPerTask})
	err = outcome.AfterCancel(ctx, err)
	if o.asJSON {
		if jerr := printJSON(con.out, copyJSON(rep, dest, err)); jerr != nil && err == nil {
			return jerr
		}
		return err
	}
	if err == nil {
		printCopyReport(con, rep)
	}
	return err
}

func printCopyReport(con console, rep *coordinator.CopyReport) {
	if rep.AlreadyThere {
		fmt.Fprintf(con.out, "Already there: %s (same manifest); nothing copied\n", redact.URL(rep.Path))
		return
	}
	fmt.Fprintf(con.out, "Copy complete: %s\n", redact.URL(rep.Path))
	fmt.Fprintf(con.out, "  from %s\n", rep.Source)
	fmt.Fprintf(con.out, "  files copied %d (%d bytes); reused %d (%d bytes)\n", rep.Copied, rep.Bytes, rep.Reused, rep.ReusedBytes)
	fmt.Fprintf(con.out, "  written %d files (%d bytes), fixtures and manifest included\n", rep.Written, rep.WrittenBytes)
	fmt.Fprintf(con.out, "  run %s in %s\n", rep.RunID, rep.Duration.Round(time.Millisecond))
}

// copyStatus is the JSON report of one copy (also the "copy" part of backup --copy-to's).
type copyStatus struct {
	Status          outcome.Status `json:"status"`
	Error           string         `json:"error,omitempty"`
	RunID           string         `json:"run_id,omitempty"`
	Source          string         `json:"source,omitempty"`
	Dest            string         `json:"dest"`
	Path            string         `json:"path,omitempty"`
	AlreadyThere    bool           `json:"already_there,omitempty"`
	Copied          int64          `json:"copied"`
	Bytes           int64          `json:"bytes"`
	Reused          int64          `json:"reused"`
	ReusedBytes     int64          `json:"reused_bytes"`
	Written         int64          `json:"written"`
	WrittenBytes    int64          `json:"written_bytes"`
	DurationSeconds float64        `json:"duration_seconds"`
	TraceID         string         `json:"trace_id,omitempty"`
}

// copyJSON is the --json report of a copy; its status is outcome.Of's.
func copyJSON(rep *coordinator.CopyReport, dest string, err error) *copyStatus {
	out := &copyStatus{Status: outcome.Of(err).Status, Error: errText(err), Dest: redact.URL(dest)}
	if rep != nil {
		out.RunID, out.Source, out.Path, out.AlreadyThere = rep.RunID, rep.Source, redact.URL(rep.Path), rep.AlreadyThere
		out.Copied, out.Bytes, out.Reused, out.ReusedBytes = rep.Copied, rep.Bytes, rep.Reused, rep.ReusedBytes
		out.Written, out.WrittenBytes = rep.Written, rep.WrittenBytes
		out.DurationSeconds, out.TraceID = rep.Duration.Seconds(), rep.TraceID
	}
	return out
}

// copyAfterBackup is backup --copy-to: the finished backup is copied to dest in the same run.
// A failed copy leaves the backup complete and makes the run partial, naming dest.
func copyAfterBackup(ctx context.Context, c *coordinator.Coordinator, rep *coordinator.BackupReport, dest string) (*copyStatus, error) {
	crep, err := c.Copy(ctx, coordinator.CopyOptions{Backup: rep.Path, Dest: dest})
	st := copyJSON(crep, dest, outcome.AfterCancel(ctx, err))
	if err == nil {
		return st, nil
	}
	if ctx.Err() != nil {
		return st, err
	}
	err = outcome.Errorf(outcome.Partial, "backup complete at %s, but its copy to %s failed: %w", redact.URL(rep.Path), redact.URL(dest), err)
	st.Status, st.Error = outcome.Partial, errText(err)
	return st, err
}

// withCopy adds backup --copy-to's copy report to the backup's JSON report as "copy".
func withCopy(report any, st *copyStatus) any {
	if st == nil {
		return report
	}
	b, err := json.Marshal(report)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		return report
	}
	c, err := json.Marshal(st)
	if err != nil {
		return report
	}
	out := append(b[:len(b)-1:len(b)-1], []byte(`,"copy":`)...)
	return json.RawMessage(append(append(out, c...), '}'))
}

// printCopyStatus says, under a backup's report, where it was copied (a failure is the
// command's error, printed by main).
func printCopyStatus(con console, st *copyStatus) {
	if st == nil {
		return
	}
	if st.Status != outcome.Complete {
		fmt.Fprintf(con.out, "  copy to %s: %s\n", st.Dest, st.Status)
		return
	}
	fmt.Fprintf(con.out, "  copied to %s (files copied %d, reused %d)\n", st.Path, st.Copied, st.Reused)
}
