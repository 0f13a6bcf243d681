package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// TestBackupManifestMergedFromRuns backs up a platform in many small copy tasks while the
// coordinator may hold only a few entries in memory, so SHA256SUMS is merged from many sorted
// runs on disk: it must be byte for byte the manifest of the backup's tree, in byte order
// even where a folder walk's order differs ("a.png" before "a/b.png"), escaped names included.
func TestBackupManifestMergedFromRuns(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	for _, name := range []string{"media/a/b.png", "media/a.png", "media/a-z.png", `media/back\slash.png`, "zz/last.txt", "0/first.txt"} {
		full := filepath.Join(p.storage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WNB_TEST_SUMS_MEMORY", "600") // a handful of entries per run
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Workers: 2, FilesPerTask: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(rep.Path, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := layout.SumTree(context.Background(), rep.Path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tree.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if tree.Len() < 20 {
		t.Fatalf("only %d files: too few runs to merge", tree.Len())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("SHA256SUMS differs from the backup tree's manifest:\n%s\nwant\n%s", got, want)
	}
	sha256sumCheck(t, rep.Path)
}
