package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/messages"
)

func TestMain(m *testing.M) {
	// Abandoned runs are noticed after three heartbeats: keep tests quick.
	messages.RunHeartbeat = 100 * time.Millisecond
	code := pgtest.Main(m)
	proctest.RemoveBinaries() // the binary the kill test runs
	os.Exit(code)
}

// platformFixture is a generated platform on disk.
type platformFixture struct {
	dbURL   string
	storage string
	summary demo.Summary
}

func sqlitePlatform(t *testing.T, opts demo.Options) platformFixture {
	t.Helper()
	dir := t.TempDir()
	p := platformFixture{dbURL: "sqlite:///" + filepath.Join(dir, "db.sqlite3"), storage: filepath.Join(dir, "media")}
	sum, err := demo.Fill(context.Background(), p.dbURL, p.storage, opts)
	if err != nil {
		t.Fatalf("demo fill: %v", err)
	}
	p.summary = sum
	return p
}

func startSession(t *testing.T, p platformFixture, workers int, q queue.Config) *pipeline.Session {
	t.Helper()
	s, err := pipeline.Start(context.Background(), pipeline.Config{
		Workers: workers, DatabaseURL: p.dbURL, StorageURL: p.storage, Queue: q,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond },
	})
	if err != nil {
		t.Fatalf("start pipeline: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// backupNames lists what in dir looks like a backup.
func backupNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if layout.IsBackupName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func sha256sumCheck(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not installed")
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c failed: %v\n%s", err, out)
	}
}

func readMetadata(t *testing.T, dir string) *layout.Metadata {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, layout.FileMetadata))
	if err != nil {
		t.Fatal(err)
	}
	m, err := layout.ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// treeFiles maps relative path → content for every regular file under dir.
func treeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackupSQLiteEndToEnd(t *testing.T) {
	opts := demo.DefaultOptions()
	p := sqlitePlatform(t, opts)
	s := startSession(t, p, 3, queue.Config{})
	backups := t.TempDir()
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, Workers: 3,
		ChunkRows: 7, FilesPerTask: 5, // force chunked exports and split prefixes
	})
	if err != nil {
		t.Fatal(err)
	}
	if names := backupNames(t, backups); len(names) != 1 || filepath.Join(backups, names[0]) != rep.Path {
		t.Fatalf("backups = %v, report path %s", names, rep.Path)
	}
	sha256sumCheck(t, rep.Path)

	meta := readMetadata(t, rep.Path)
	if meta.Status != layout.StatusComplete || meta.RunID != rep.RunID || meta.DatabaseEngine != "django.db.backends.sqlite3" {
		t.Fatalf("metadata = %+v", meta)
	}
	if len(meta.Models) != 10 {
		t.Fatalf("metadata models = %d", len(meta.Models))
	}
	for _, m := range meta.Models {
		want := p.summary.Rows[strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(m.File, "db_"), ".json"), ".", "_")]
		var objs []json.RawMessage
		data, err := os.ReadFile(filepath.Join(rep.Path, m.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &objs); err != nil {
			t.Fatalf("%s is not JSON: %v", m.File, err)
		}
		if int64(len(objs)) != m.Rows || m.Rows != want {
			t.Errorf("%s: %d objects, metadata %d, generated %d", m.File, len(objs), m.Rows, want)
		}
	}
	fi, err := os.Stat(filepath.Join(rep.Path, layout.FileRestore))
	if err != nil || fi.Mode().Perm() != layout.ScriptMode {
		t.Fatalf("restore.sh: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(filepath.Join(rep.Path, layout.FileMetadata))
	if bytes.Contains(raw, []byte("password")) {
		t.Fatalf("metadata mentions a password: %s", raw)
	}

	// Every storage file is in files/, byte for byte, with its mtime; its mode is in the
	// metadata, the copy being private.
	modeOf := meta.Files.RecordedModes()
	src := treeFiles(t, p.storage)
	got := treeFiles(t, filepath.Join(rep.Path, "files"))
	if len(src) == 0 || len(src) != len(got) || int64(len(src)) != rep.Files {
		t.Fatalf("storage has %d files, backup %d, report %d", len(src), len(got), rep.Files)
	}
	for k, b := range src {
		if !bytes.Equal(got[k], b) {
			t.Fatalf("files/%s differs", k)
		}
		a, _ := os.Stat(filepath.Join(p.storage, k))
		c, _ := os.Stat(filepath.Join(rep.Path, "files", k))
		recorded, ok := modeOf("files/" + k)
		if c.Mode() != layout.FileMode || !ok || recorded != a.Mode() || !a.ModTime().Equal(c.ModTime()) {
			t.Fatalf("files/%s: mode %v (recorded %v) mtime %v, source %v %v", k, c.Mode(), recorded, c.ModTime(), a.Mode(), a.ModTime())
		}
	}
	// No working files are left in the published backup.
	for k := range treeFiles(t, rep.Path) {
		if strings.HasPrefix(k, ".") || strings.Contains(k, "/.wnb") {
			t.Fatalf("working file left in backup: %s", k)
		}
	}
}
