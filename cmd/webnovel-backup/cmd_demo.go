package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/redact"
)

// demoMarker marks a folder the demo made, so a second run may replace it and nothing else.
const demoMarker = ".webnovel-demo"

// demoOptions are the flags of demo.
type demoOptions struct {
	dir      string
	postgres string
	noBackup bool
	compress bool
	sample   demo.Options
}

// AddFlags adds demo's flags to f.
func (o *demoOptions) AddFlags(f *pflag.FlagSet) {
	o.sample = demo.DefaultOptions()
	f.StringVar(&o.dir, "path", "webnovel-demo", "`folder` for the sample platform (db.sqlite3, media/, backups/)")
	f.StringVar(&o.postgres, "postgres", "", "fill this PostgreSQL database `URL` instead of a SQLite file (it must exist)")
	f.BoolVar(&o.noBackup, "no-backup", false, "only write the sample platform")
	f.BoolVar(&o.compress, "compress", false, "write the backup as .tar.gz")
	f.Int64Var(&o.sample.Seed, "seed", o.sample.Seed, "random seed (same seed, same platform)")
	f.IntVar(&o.sample.Books, "books", o.sample.Books, "books")
	f.IntVar(&o.sample.ChaptersPerBook, "chapters", o.sample.ChaptersPerBook, "chapters per book")
	f.IntVar(&o.sample.Users, "users", o.sample.Users, "users")
	f.IntVar(&o.sample.Authors, "authors", o.sample.Authors, "authors")
	f.IntVar(&o.sample.Languages, "languages", o.sample.Languages, "languages")
	f.IntVar(&o.sample.MediaPerChapter, "media-per-chapter", o.sample.MediaPerChapter, "chapter media rows (and files) per chapter")
	f.IntVar(&o.sample.ChangeLogsPerChapter, "changelogs-per-chapter", o.sample.ChangeLogsPerChapter, "change log rows per chapter")
	f.IntVar(&o.sample.OnlyChapters, "only-chapters", 0, "fill just a books_chapter table of this many rows (memory benchmarks)")
	f.IntVar(&o.sample.FileBytes, "file-bytes", o.sample.FileBytes, "approximate size of each media file (0: rows only, no files)")
}

func newDemoCommand(g *globals) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Write a sample platform (SQLite or PostgreSQL, plus files) and back it up",
		Example: `  webnovel-backup demo
  webnovel-backup demo --path /tmp/wn --books 50 --chapters 40
  webnovel-backup demo --postgres postgres://user:pass@127.0.0.1:5432/webnovel`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runDemo(cmd.Context(), o, g, consoleOf(cmd)) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runDemo writes the sample platform and, unless --no-backup, backs it up.
func runDemo(ctx context.Context, o demoOptions, g *globals, con console) error {
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("demo folder %s: %w", o.dir, err)
	}
	if err := prepareDemoDir(abs); err != nil {
		return err
	}
	dbURL := "sqlite:///" + filepath.Join(abs, "db.sqlite3")
	if o.postgres != "" {
		dbURL = o.postgres
	}
	media := filepath.Join(abs, "media")
	fmt.Fprintf(con.out, "Writing a sample platform: database %s, storage %s\n", redact.URL(dbURL), media)
	sum, err := demo.Fill(ctx, dbURL, media, o.sample)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var rows int64
	for _, n := range sum.Rows {
		rows += n
	}
	fmt.Fprintf(con.out, "  %d rows in %d tables, %d files (%d bytes)\n", rows, len(sum.Rows), sum.Files, sum.FileBytes)
	if o.noBackup {
		return nil
	}
	g.database, g.storage = dbURL, media
	return demoBackup(ctx, g, con, coordinator.BackupOptions{
		DatabaseURL: dbURL, StorageURL: media, BackupDir: filepath.Join(abs, "backups"),
		Compress: o.compress, Workers: max(g.workers, 1),
	})
}

// demoBackup backs up the sample platform with in-process workers.
func demoBackup(ctx context.Context, g *globals, con console, bo coordinator.BackupOptions) error {
	cfg, err := g.pipelineConfig(bo.Workers)
	if err != nil {
		return err
	}
	s, err := pipeline.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Coordinator.Backup(ctx, bo)
	if err != nil {
		return err
	}
	printBackupReport(con, rep)
	fmt.Fprintf(con.out, "Check it with: (cd %s && sha256sum -c SHA256SUMS)\n", rep.Path)
	return nil
}

// prepareDemoDir makes dir, or empties it when an earlier demo made it; any other non-empty
// folder is refused so the demo never deletes what it did not write.
func prepareDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return fmt.Errorf("demo folder %s: %w", dir, err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return usageErrorf("demo folder %s exists and was not made by the demo; choose another --path", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("demo folder %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo folder %s: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("made by webnovel-backup demo\n"), 0o644)
}
