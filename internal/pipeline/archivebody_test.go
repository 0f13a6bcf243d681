package pipeline_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/workers"
)

// gatedReader holds its first Read until gate closes (or a minute passes: the test then fails
// on the order it checks, instead of hanging).
type gatedReader struct {
	r    io.Reader
	gate <-chan struct{}
	once sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() {
		select {
		case <-g.gate:
		case <-time.After(time.Minute):
		}
	})
	return g.r.Read(p)
}

// TestArchivePartsInFinishingOrder (issue 11 item 6): a local compressed backup's archive is
// built while the copies run, its parts in the order their tasks finished. The copy of the
// first file read is held until every other file is being read, so its part goes in after
// nearly all the others, far from its place in the plan; the archive, of each compression,
// still lists that file after most others, stock tar extracts exactly the source's files,
// SHA256SUMS checks, and a restore equals the source.
func TestArchivePartsInFinishingOrder(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	source := treeFiles(t, p.storage)
	if len(source) < 12 {
		t.Fatalf("the demo platform has %d files; the test needs a dozen", len(source))
	}
	for _, comp := range []archive.Compression{archive.Gzip, archive.Zstd, archive.None} {
		t.Run(string(comp), func(t *testing.T) {
			held := holdFirstRead(t, len(source))
			ctx := context.Background()
			rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
				DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: true,
				Compression: string(comp), FilesPerTask: 1, ChunkRows: 50,
			})
			if err != nil {
				t.Fatal(err)
			}
			top, _ := layout.TrimArchiveExt(filepath.Base(rep.Path))
			if pos, n := filePosition(t, rep.Path, *held); pos < n/2 {
				t.Fatalf("the file held back (%s) is entry %d of %d files: the parts went in in plan order", *held, pos, n)
			}
			dir := filepath.Join(stockTarExtract(t, rep.Path, comp), top)
			sha256sumCheck(t, dir)
			assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), source)
			target := emptyTarget(t, database.SQLite)
			if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
				t.Fatal(err)
			}
			compareWithBackup(t, dir, target)
		})
	}
}

// holdFirstRead makes the workers hold the copy of the first file they read until they have
// started reading every other one of total files, and returns where its key will be.
func holdFirstRead(t *testing.T, total int) *string {
	t.Helper()
	var (
		mu    sync.Mutex
		first string
		seen  = map[string]bool{}
		gate  = make(chan struct{})
	)
	remove := workers.SetReadHook(func(key string, r io.Reader) io.Reader {
		mu.Lock()
		defer mu.Unlock()
		if first == "" {
			first = key
			return &gatedReader{r: r, gate: gate}
		}
		if key != first && !seen[key] {
			seen[key] = true
			if len(seen) == total-1 {
				close(gate)
			}
		}
		return r
	})
	t.Cleanup(remove)
	return &first
}

// filePosition is the place of the file key (a storage key) among the files of an archive, and
// how many files it has.
func filePosition(t *testing.T, file, key string) (int, int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := archive.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	pos, n := -1, 0
	for _, e := range entries {
		_, rel, _ := strings.Cut(e.Name, "/"+layout.FilesDir+"/")
		if e.IsDir || rel == "" {
			continue
		}
		if rel == key {
			pos = n
		}
		n++
	}
	if pos < 0 {
		t.Fatalf("%s is not in the archive", key)
	}
	return pos, n
}

// TestResumeArchiveKilledWhileBuilt (issue 11 item 6): a coordinator killed -9 while it builds
// a local archive from the parts of the finished copies (the body in the staging area holds
// some of them) is finished by `backup --resume`, which builds it afresh: one archive that
// stock tar extracts into exactly the source's files, whose SHA256SUMS checks.
func TestResumeArchiveKilledWhileBuilt(t *testing.T) {
	opts := demo.DefaultOptions()
	p := sqlitePlatform(t, opts)
	embURL := queuetest.Server(t)
	s := resumableSession(t, p, embURL)
	dest := t.TempDir()
	const run = "archive-body-resume"
	body := filepath.Join(layout.StagingPath(dest, run), ".wnb", "archive.body")
	// Halted at its first finished copy, the coordinator has that part going into the body.
	killChildWhen(t, s, "copy", func() bool {
		fi, err := os.Stat(body)
		return err == nil && fi.Size() > 0
	}, "WNB_CHILD_NATS="+embURL, "WNB_CHILD_DB="+p.dbURL, "WNB_CHILD_STORAGE="+p.storage,
		"WNB_CHILD_BACKUPS="+dest, "WNB_CHILD_RUN="+run, "WNB_CHILD_COMPRESS=1")
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, Resume: run})
	if err != nil {
		t.Fatal(err)
	}
	if keys := destKeys(t, dest); len(keys) != 1 || keys[0] != filepath.Base(rep.Path) {
		t.Fatalf("after the resume the destination holds %v, want only %s", keys, filepath.Base(rep.Path))
	}
	top, _ := layout.TrimArchiveExt(filepath.Base(rep.Path))
	dir := filepath.Join(stockTarExtract(t, rep.Path, archive.Gzip), top)
	sha256sumCheck(t, dir)
	assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), treeFiles(t, p.storage))
}

// TestArchiveWhereBlocksCannotBeInserted: on a file system that cannot insert blocks into a
// file (tmpfs), a local compressed backup is concatenated from its parts at the publish, and
// is as whole: stock tar extracts exactly the source's files and SHA256SUMS checks.
func TestArchiveWhereBlocksCannotBeInserted(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "wnb-archive-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: shm, Compress: true, FilesPerTask: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	top, _ := layout.TrimArchiveExt(filepath.Base(rep.Path))
	dir := filepath.Join(stockTarExtract(t, rep.Path, archive.Gzip), top)
	sha256sumCheck(t, dir)
	assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), treeFiles(t, p.storage))
}
