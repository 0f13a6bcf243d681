package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/retention"
)

// pruneOptions are the flags of prune.
type pruneOptions struct {
	retention.PruneOptions
	policy    retention.Policy
	backupDir string
	asJSON    bool
	push      pushOptions
}

// AddFlags adds prune's flags to f.
func (o *pruneOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.backupDir, "backup-dir", "./backups", "the `destination`: a folder or s3://bucket/prefix?…")
	f.IntVar(&o.policy.Last, "keep-last", 0, "keep the `N` newest backups")
	f.IntVar(&o.policy.Daily, "keep-daily", 0, "keep the newest backup of each of the `N` newest days that have backups")
	f.IntVar(&o.policy.Weekly, "keep-weekly", 0, "keep the newest backup of each of the `N` newest ISO weeks that have backups")
	f.IntVar(&o.policy.Monthly, "keep-monthly", 0, "keep the newest backup of each of the `N` newest months that have backups")
	f.BoolVar(&o.DryRun, "dry-run", false, "show what would be deleted and why the rest is kept; delete nothing")
	f.BoolVar(&o.PruneIncomplete, "prune-incomplete", false, "also delete incomplete backups older than a day")
	f.BoolVar(&o.asJSON, "json", false, "print the decisions as JSON")
	o.push.AddFlags(f)
	f.DurationVar(&o.Grace, "grace", retention.DefaultGrace, "keep objects of the S3 object store that no backup names but that were written less than this `duration` ago (a backup still running may not have listed them yet)")
}

func newPruneCommand(g *globals) *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune --keep-last N | --keep-daily N | --keep-weekly N | --keep-monthly N",
		Short: "Delete old backups by a restic-style retention policy",
		Long: `Delete the complete backups in --backup-dir that no --keep rule keeps. A backup is kept if any
rule keeps it: --keep-last N keeps the N newest; --keep-daily N the newest of each of the N
newest days that have backups; --keep-weekly per ISO week (Monday to Sunday); --keep-monthly per
calendar month. Days are read from the backups' names (the local time of the machine that took
them).

The rules apply to each scope on its own (see list's SCOPE): full backups, database-only
(--skip-files), files-only (--skip-db), and each model subset (--models). A partial backup
never counts towards, nor keeps, a full one; archives are read up to their metadata to know
their scope.

Never deleted: the newest backup of each scope (so always the newest full backup), runs in
progress (.wnb-staging-<run> whose owner process still runs), and incomplete backups younger
than a day. Incomplete backups older than a day, and abandoned runs (their owner process is
gone), are listed, and deleted only with --prune-incomplete. Other files are never touched.

--dry-run shows what would be deleted, and why each kept backup is kept, and deletes nothing.

On S3, folder backups keep their files' content once in the destination's object store
(objects/sha256/…), shared between backups. After removing backups, prune deletes the objects
that no complete backup's file index and no run in progress (its staging area's key
lists and sums) names, and only those written more than --grace ago (default 24h): a backup
that started before the sweep may have stored objects it has not listed yet. A backup is
removed metadata first, so an interrupted prune never leaves a complete backup without its
objects; running prune again finishes the sweep.

Exit status: 0 done, 1 a deletion failed (the others are still done), 2 no --keep rule given.`,
		Example: `  webnovel-backup prune --backup-dir /backups/daily --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  webnovel-backup prune --backup-dir 's3://backups/nightly' --keep-last 3 --keep-daily 14`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.push.wrap(cmd, func() error { return runPrune(cmd.Context(), o, consoleOf(cmd)) })
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runPrune applies the retention policy to the destination and reports each decision.
func runPrune(ctx context.Context, o pruneOptions, con console) error {
	p := o.policy
	if p.Last < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return usageErrorf("--keep-* counts must not be negative")
	}
	if p.Empty() {
		return usageErrorf("prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly")
	}
	if o.Grace < 0 {
		return usageErrorf("--grace must not be negative")
	}
	d, err := retention.OpenDestination(ctx, o.backupDir)
	if err != nil {
		return err
	}
	defer d.Close()
	res, perr := retention.Prune(ctx, d, p, o.PruneOptions)
	if res == nil {
		return perr
	}
	if o.asJSON {
		if err := printJSON(con.out, res); err != nil {
			return err
		}
		return perr
	}
	printPrune(con.out, res)
	return perr
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
		switch {
		case !d.Keep && slices.Contains(res.InUse, d.Backup.Name):
			action = "in use"
		case !d.Keep:
			action = verb
			removed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", action, d.Backup.Name, strings.Join(d.Reasons, "; "))
	}
	tw.Flush()
	if res.DryRun {
		fmt.Fprintf(out, "Dry run: %d of %d would be removed; nothing was deleted\n", removed, len(res.Decisions))
	} else {
		fmt.Fprintf(out, "Removed %d of %d\n", len(res.Removed), len(res.Decisions))
	}
	for _, name := range res.InUse {
		fmt.Fprintf(out, "  warning: kept %s: a restore, copy or verify is reading it; a later prune removes it\n", name)
	}
	printSweep(out, res.Sweep)
}

// printSweep says what the object store's garbage collection did, if there is a store.
func printSweep(out io.Writer, s *retention.SweepResult) {
	if s == nil {
		return
	}
	verb := "swept"
	if s.DryRun {
		verb = "would sweep"
	}
	fmt.Fprintf(out, "Object store: %d objects, %d in use, %d unused but younger than --grace; %s %d (%s)\n",
		s.Objects, s.Live, s.Young, verb, s.Swept, humanBytes(s.SweptBytes))
	for _, w := range s.Warnings {
		fmt.Fprintf(out, "  warning: %s\n", w)
	}
}
