package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/retention"
)

// listOptions are the flags of list.
type listOptions struct {
	retention.ListOptions
	backupDir string
	asJSON    bool
}

// AddFlags adds list's flags to f.
func (o *listOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.backupDir, "backup-dir", "./backups", "the `destination`: a folder or s3://bucket/prefix?…")
	f.BoolVar(&o.asJSON, "json", false, "print the list as JSON")
	f.BoolVar(&o.ReadArchives, "read-archives", false, "read every archive up to its metadata, which is its first entry, for its rows, files and scope")
}

func newListCommand(g *globals) *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backups in a destination, newest first, with their status",
		Long: `List every backup in --backup-dir (a folder or s3://bucket/prefix), newest first: folders
and .tar.gz archives, incomplete ones (no complete backup_metadata.json) and runs in progress
(staging folders .wnb-staging-<run>) or abandoned ones (their owner process is gone), with
scope (full, database only, files only, or the model subset), size, age and, for complete
folders, the rows and files their metadata records.

An archive is published atomically; a local one whose end is missing (cut short by a copy
that stopped, or a full disk) is listed incomplete, found by reading its last few KiB (an
encrypted one by the size its sidecar records), so that prune never keeps it in place of a
whole one. --read-archives also reads each archive up to its metadata, its first entry, for
its rows, files and scope. verify reads an archive whole.

Exit status: 0 listed, 1 the destination cannot be read.`,
		Example: `  webnovel-backup list --backup-dir /backups/daily
  webnovel-backup list --backup-dir 's3://backups/nightly?region=eu-west-1' --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runList(cmd.Context(), o, consoleOf(cmd)) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runList lists the destination's backups.
func runList(ctx context.Context, o listOptions, con console) error {
	d, err := retention.OpenDestination(ctx, o.backupDir)
	if err != nil {
		return err
	}
	defer d.Close()
	bs, err := d.List(ctx, o.ListOptions)
	if err != nil {
		return err
	}
	if o.asJSON {
		return printJSON(con.out, bs)
	}
	if len(bs) == 0 {
		fmt.Fprintf(con.out, "No backups in %s\n", d)
		return nil
	}
	return printList(con.out, bs, time.Now())
}

func printList(out io.Writer, bs []retention.Backup, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tSCOPE\tTAKEN\tAGE\tSIZE\tROWS\tFILES")
	for _, b := range bs {
		rows, files := "-", "-"
		if b.Status == retention.StatusComplete && !b.MetadataTime.IsZero() {
			rows, files = fmt.Sprint(b.Rows), listFiles(b)
		}
		status := string(b.Status)
		if b.Problem != "" {
			status += " (" + b.Problem + ")"
		}
		scope := string(b.Scope)
		if scope == "" {
			scope = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, status, scope, b.Time.Format("2006-01-02 15:04:05"),
			opsAge(now.Sub(b.Time)), humanBytes(b.Size), rows, files)
	}
	return tw.Flush()
}

// listFiles is a backup's file count and, for an incremental one, what it stored anew and
// what it reused from its base: "1200 (new 12, 3.1 MiB; reused 1188 from backup_…)".
func listFiles(b retention.Backup) string {
	if b.Base == "" && b.Reused.Files == 0 {
		return fmt.Sprint(b.Files)
	}
	s := fmt.Sprintf("%d (new %d, %s; reused %d", b.Files, b.New.Files, humanBytes(b.New.Bytes), b.Reused.Files)
	if b.Base != "" {
		s += " from " + b.Base
	}
	return s + ")"
}

// opsAge prints a duration as a person reads a backup's age: "3d4h", "5h12m", "40s".
func opsAge(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return d.Round(time.Second).String()
	}
}

// humanBytes prints a size in binary units for people ("1.5 KiB").
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
