package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
)

// demoMarker marks a folder the demo made, so a second run may replace it and nothing else.
const demoMarker = ".webnovel-demo"

func newDemoCommand(g *globals) *cobra.Command {
	var (
		dir      string
		postgres string
		noBackup bool
		compress bool
		opts     = demo.DefaultOptions()
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Write a sample platform (SQLite or PostgreSQL, plus files) and back it up",
		Example: `  webnovel-backup demo
  webnovel-backup demo --path /tmp/wn --books 50 --chapters 40
  webnovel-backup demo --postgres postgres://user:pass@127.0.0.1:5432/webnovel`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if err := prepareDemoDir(abs); err != nil {
				return err
			}
			dbURL := "sqlite:///" + filepath.Join(abs, "db.sqlite3")
			if postgres != "" {
				dbURL = postgres
			}
			media := filepath.Join(abs, "media")
			fmt.Fprintf(cmd.OutOrStdout(), "Writing a sample platform: database %s, storage %s\n", redactURL(dbURL), media)
			sum, err := demo.Fill(ctx, dbURL, media, opts)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			var rows int64
			for _, n := range sum.Rows {
				rows += n
			}
			fmt.Fprintf(cmd.OutOrStdout(), "  %d rows in %d tables, %d files (%d bytes)\n", rows, len(sum.Rows), sum.Files, sum.FileBytes)
			if noBackup {
				return nil
			}
			g.database, g.storage = dbURL, media
			cfg, err := g.pipelineConfig(max(g.workers, 1))
			if err != nil {
				return err
			}
			s, err := pipeline.Start(ctx, cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
				DatabaseURL: dbURL, StorageURL: media, BackupDir: filepath.Join(abs, "backups"),
				Compress: compress, Workers: max(g.workers, 1),
			})
			if err != nil {
				return err
			}
			printBackupReport(cmd, rep)
			fmt.Fprintf(cmd.OutOrStdout(), "Check it with: (cd %s && sha256sum -c SHA256SUMS)\n", rep.Path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "path", "webnovel-demo", "folder for the sample platform (db.sqlite3, media/, backups/)")
	f.StringVar(&postgres, "postgres", "", "fill this PostgreSQL database instead of a SQLite file (it must exist)")
	f.BoolVar(&noBackup, "no-backup", false, "only write the sample platform")
	f.BoolVar(&compress, "compress", false, "write the backup as .tar.gz")
	f.Int64Var(&opts.Seed, "seed", opts.Seed, "random seed (same seed, same platform)")
	f.IntVar(&opts.Books, "books", opts.Books, "books")
	f.IntVar(&opts.ChaptersPerBook, "chapters", opts.ChaptersPerBook, "chapters per book")
	f.IntVar(&opts.Users, "users", opts.Users, "users")
	f.IntVar(&opts.Authors, "authors", opts.Authors, "authors")
	f.IntVar(&opts.Languages, "languages", opts.Languages, "languages")
	f.IntVar(&opts.MediaPerChapter, "media-per-chapter", opts.MediaPerChapter, "chapter media rows (and files) per chapter")
	f.IntVar(&opts.ChangeLogsPerChapter, "changelogs-per-chapter", opts.ChangeLogsPerChapter, "change log rows per chapter")
	f.IntVar(&opts.OnlyChapters, "only-chapters", 0, "fill just a books_chapter table of this many rows (memory benchmarks)")
	f.IntVar(&opts.FileBytes, "file-bytes", opts.FileBytes, "approximate size of each media file (0: rows only, no files)")
	return cmd
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
