package pipeline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/storage"
)

// addBigFiles adds incompressible files of 6 MiB (one archive part of 5 MiB and more each,
// with FilesPerTask 3) and a few of 300 KiB to a storage folder.
func addBigFiles(t *testing.T, dir string) {
	t.Helper()
	for i, size := range []int{6 << 20, 6 << 20, 300 << 10, 300 << 10, 300 << 10, 6 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		name := filepath.Join(dir, "media", "big", fmt.Sprintf("clip_%d.bin", i))
		if i%2 == 1 {
			name = filepath.Join(dir, "media", "big", fmt.Sprintf("photo_%d.jpg", i))
		}
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestArchiveBuiltFromParts: with several copy tasks (FilesPerTask 3), a compressed backup of
// each compression, local and on S3, is one archive that stock tar lists and extracts into
// exactly the source's files, whose SHA256SUMS checks, and that this tool verifies and
// restores. On S3 the parts of 5 MiB and more are concatenated server-side (UploadPartCopy).
func TestArchiveBuiltFromParts(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	addBigFiles(t, p.storage)
	var partCopies atomic.Int64
	s3 := s3test.Start(t, s3test.PartCopies(&partCopies), "backups")
	s := startSession(t, p, 2, queue.Config{})
	for _, comp := range []archive.Compression{archive.Gzip, archive.Zstd, archive.None} {
		for _, onS3 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-s3=%v", comp, onS3), func(t *testing.T) {
				ctx := context.Background()
				dest := t.TempDir()
				if onS3 {
					dest = s3.URL("backups", string(comp), "")
				}
				partCopies.Store(0)
				rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
					DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest, Compress: true,
					Compression: string(comp), FilesPerTask: 3, ChunkRows: 50,
				})
				if err != nil {
					t.Fatal(err)
				}
				where, _, _ := strings.Cut(rep.Path, "?")
				if !strings.HasSuffix(where, comp.Ext()) {
					t.Fatalf("backup path %s, want a %s", rep.Path, comp.Ext())
				}
				file := rep.Path
				if onS3 {
					file = downloadArchive(t, dest, filepath.Base(where))
					if partCopies.Load() == 0 {
						t.Fatal("no UploadPartCopy: the parts of 5 MiB and more were not concatenated server-side")
					}
				}
				top, _ := layout.TrimArchiveExt(filepath.Base(where))
				out := stockTarExtract(t, file, comp)
				dir := filepath.Join(out, top)
				sha256sumCheck(t, dir)
				assertSameTree(t, treeFiles(t, filepath.Join(dir, layout.FilesDir)), treeFiles(t, p.storage))
				vr, err := verify.Verify(ctx, file, verify.Options{TempDir: t.TempDir()})
				if err != nil || len(vr.Problems) > 0 {
					t.Fatalf("verify %s: %v %v", file, err, vr)
				}
				target := emptyTarget(t, database.SQLite)
				if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
					t.Fatal(err)
				}
				compareWithBackup(t, dir, target)
			})
		}
	}
}

// downloadArchive copies the archive name from an S3 destination into a local file.
func downloadArchive(t *testing.T, dest, name string) string {
	t.Helper()
	ctx := context.Background()
	b, err := storage.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, _, err := b.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	file := filepath.Join(t.TempDir(), name)
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// stockTarExtract lists and extracts an archive with the system's tar (tar tzf / xzf,
// --zstd, or plain) and returns the folder it extracted into.
func stockTarExtract(t *testing.T, file string, c archive.Compression) string {
	t.Helper()
	flag := map[archive.Compression]string{archive.Gzip: "-z", archive.Zstd: "--zstd", archive.None: ""}[c]
	run := func(args ...string) []byte {
		t.Helper()
		if flag != "" {
			args = append([]string{flag}, args...)
		}
		out, err := exec.Command("tar", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tar %v: %v\n%s", args, err, out)
		}
		return out
	}
	if list := run("-t", "-f", file); !bytes.Contains(list, []byte(layout.FileMetadata)) {
		t.Fatalf("tar -t lists no metadata:\n%s", list)
	}
	out := t.TempDir()
	run("-x", "-f", file, "-C", out)
	return out
}

// assertSameTree compares two file trees (path → content).
func assertSameTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s: extracted %d bytes (present %v), source has %d", k, len(g), ok, len(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extracted, not in the source", k)
		}
	}
}
