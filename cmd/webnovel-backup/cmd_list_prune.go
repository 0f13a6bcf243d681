package main

import (
	"encoding/json"
	"fmt"
	"github.com/dustin/go-humanize"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/retention"
)

func newListCommand(g *globals) *cobra.Command {
	var (
		backupDir string
		asJSON    bool
		o         retention.ListOptions
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backups in a destination, newest first, with their status",
		Long: `List every backup in --backup-dir (a folder or s3://bucket/prefix), newest first: folders
and .tar.gz archives, incomplete ones (no complete backup_metadata.json) and runs in progress
(staging folders .wnb-staging-<run>), with size, age and, for complete folders, the rows and
files their metadata records.

An archive is complete by its name (archives are published atomically); --read-archives reads
each one up to its metadata, decompressing it whole, to find truncated ones and their counts.

Exit status: 0 listed, 1 the destination cannot be read.`,
		Example: `  webnovel-backup list --backup-dir /backups/daily
  webnovel-backup list --backup-dir 's3://backups/nightly?region=eu-west-1' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := retention.OpenDestination(ctx, backupDir)
			if err != nil {
				return err
			}
			defer d.Close()
			bs, err := d.List(ctx, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return opsJSON(out, bs)
			}
			if len(bs) == 0 {
				fmt.Fprintf(out, "No backups in %s\n", d)
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tTAKEN\tAGE\tSIZE\tROWS\tFILES")
			for _, b := range bs {
				rows, files := "-", "-"
				if b.Status == retention.StatusComplete && !b.MetadataTime.IsZero() {
					rows, files = fmt.Sprint(b.Rows), fmt.Sprint(b.Files)
				}
				status := string(b.Status)
				if b.Problem != "" {
					status += " (" + b.Problem + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, status, b.Time.Format("2006-01-02 15:04:05"),
					opsAge(now.Sub(b.Time)), humanBytes(b.Size), rows, files)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&backupDir, "backup-dir", "./backups", "the destination: a folder or s3://bucket/prefix?…")
	f.BoolVar(&asJSON, "json", false, "print the list as JSON")
	f.BoolVar(&o.ReadArchives, "read-archives", false, "read every .tar.gz up to its metadata (decompresses it whole)")
	return cmd
}

func newPruneCommand(g *globals) *cobra.Command {
	var (
		backupDir string
		asJSON    bool
		p         retention.Policy
		o         retention.PruneOptions
	)
	cmd := &cobra.Command{
		Use:   "prune --keep-last N | --keep-daily N | --keep-weekly N | --keep-monthly N",
		Short: "Delete old backups by a restic-style retention policy",
		Long: `Delete the complete backups in --backup-dir that no --keep rule keeps. A backup is kept if any
rule keeps it: --keep-last N keeps the N newest; --keep-daily N the newest of each of the N
newest days that have backups; --keep-weekly per ISO week (Monday to Sunday); --keep-monthly per
calendar month. Days are read from the backups' names (the local time of the machine that took
them).

Never deleted: the newest complete backup, runs in progress (.wnb-staging-<run>, see
` + "`webnovel-backup runs`" + `), and incomplete backups younger than a day. Incomplete backups older
than a day are listed, and deleted only with --prune-incomplete. Other files are never touched.

--dry-run shows what would be deleted, and why each kept backup is kept, and deletes nothing.

Exit status: 0 done, 1 a deletion failed (the others are still done), 2 no --keep rule given.`,
		Example: `  webnovel-backup prune --backup-dir /backups/daily --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  webnovel-backup prune --backup-dir 's3://backups/nightly' --keep-last 3 --keep-daily 14`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if p.Last < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
				return usageErrorf("--keep-* counts must not be negative")
			}
			if p.Empty() {
				return usageErrorf("prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly")
			}
			ctx := cmd.Context()
			d, err := retention.OpenDestination(ctx, backupDir)
			if err != nil {
				return err
			}
			defer d.Close()
			res, perr := retention.Prune(ctx, d, p, o)
			if res == nil {
				return perr
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := opsJSON(out, res); err != nil {
					return err
				}
				return perr
			}
			printPrune(out, res)
			return perr
		},
	}
	f := cmd.Flags()
	f.StringVar(&backupDir, "backup-dir", "./backups", "the destination: a folder or s3://bucket/prefix?…")
	f.IntVar(&p.Last, "keep-last", 0, "keep the N newest backups")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the newest backup of each of the N newest days that have backups")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest backup of each of the N newest ISO weeks that have backups")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest backup of each of the N newest months that have backups")
	f.BoolVar(&o.DryRun, "dry-run", false, "show what would be deleted and why the rest is kept; delete nothing")
	f.BoolVar(&o.PruneIncomplete, "prune-incomplete", false, "also delete incomplete backups older than a day")
	f.BoolVar(&asJSON, "json", false, "print the decisions as JSON")
	return cmd
}

func printPrune(out io.Writer, res *retention.PruneResult) {
	verb := "remove"
	if res.DryRun {
		verb = "would remove"
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	removed := 0
	for _, d := range res.Decisions {
		action := "keep"
		if !d.Keep {
			action = verb
			removed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", action, d.Backup.Name, strings.Join(d.Reasons, "; "))
	}
	tw.Flush()
	if res.DryRun {
		fmt.Fprintf(out, "Dry run: %d of %d would be removed; nothing was deleted\n", removed, len(res.Decisions))
		return
	}
	fmt.Fprintf(out, "Removed %d of %d\n", len(res.Removed), len(res.Decisions))
}

func opsJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
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
