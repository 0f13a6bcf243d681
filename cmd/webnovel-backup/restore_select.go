package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/storage"
)

// addSelectFlags adds the flags of a restore of selected rows.
func (o *restoreOptions) addSelectFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.sel.Books, "book", nil, "restore only this book (its `id-or-slug`; repeatable) with everything that belongs to it and what it needs that the database lacks, merged into the live database")
	f.StringArrayVar(&o.sel.Rows, "select", nil, "restore only this `row`, given as app.Model=PK (any model; repeatable), and everything that belongs to it, like --book")
	f.StringVar(&o.sel.OnConflict, "on-conflict", "", "with --book or --select, a row the database holds with other values: `refuse` (the default: list them and change nothing), keep, or replace")
}

// checkSelect turns the selection flags into the restore's Select, refusing combinations
// that cannot work.
func (o *restoreOptions) checkSelect() error {
	if len(o.sel.Books) == 0 && len(o.sel.Rows) == 0 && o.sel.OnConflict == "" {
		return nil
	}
	if err := o.sel.Check(); err != nil {
		return err
	}
	switch {
	case len(o.Models) > 0:
		return usageErrorf("--models cannot be combined with --book or --select, which find the models themselves")
	case o.Merge:
		return usageErrorf("--merge is implied by --book and --select")
	case o.SkipDB:
		return usageErrorf("--skip-db: --book and --select restore rows of the database")
	}
	o.Select = &o.sel
	return nil
}

// printSubsetPlan shows a restore of selected rows: the graph with counts per model, and the
// conflicts.
func printSubsetPlan(w io.Writer, p *coordinator.RestorePlan) {
	s := p.Subset
	fmt.Fprintf(w, "Restore selected rows from %s (run %s, taken %s)\n", p.Backup, p.Metadata.RunID, p.Metadata.BackupTimestamp.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "  database %s: upsert by pk, nothing else changed or deleted\n", p.Database)
	printMigrationCheck(w, p.Migrations)
	fmt.Fprintf(w, "    %-32s %8s %8s %8s %8s %9s\n", "model", "selected", "needed", "links", "relinks", "conflicts")
	for _, m := range s.Models {
		fmt.Fprintf(w, "    %-32s %8d %8d %8d %8d %9d\n", m.Label, m.Selected, m.Needed, m.Links, m.Relinks, m.Conflicts)
	}
	if len(s.Conflicts) > 0 {
		fmt.Fprintf(w, "  %d rows exist in the database with other values (--on-conflict %s):\n", len(s.Conflicts), s.OnConflict)
		for _, c := range s.Conflicts {
			fmt.Fprintf(w, "    %s\n", c)
		}
		if s.OnConflict == coordinator.ConflictRefuse {
			fmt.Fprintln(w, "  the restore would be refused: add --on-conflict keep or --on-conflict replace")
		}
	}
	if p.Storage != "" {
		fmt.Fprintf(w, "  storage %s: write %d of the %d files the rows name (%d bytes), overwriting files with the same names\n", p.Storage, p.Files, s.FileKeys, p.Bytes)
	}
	if len(s.FileConflicts) > 0 {
		fmt.Fprintf(w, "  %d files are in the storage with other content than the backup's (--on-conflict %s):\n", len(s.FileConflicts), s.OnConflict)
		for _, k := range s.FileConflicts {
			fmt.Fprintf(w, "    %s\n", storage.QuoteKey(k))
		}
		if s.OnConflict == coordinator.ConflictRefuse && len(s.Conflicts) == 0 {
			fmt.Fprintln(w, "  the restore would be refused: add --on-conflict keep or --on-conflict replace")
		}
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}
