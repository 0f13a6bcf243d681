package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putBase writes a backup folder named name into root as a backup with a file index would:
// index, SHA256SUMS listing it, metadata vouching for SHA256SUMS; edit may spoil any of them.
func putBase(t *testing.T, root *storage.Bucket, name, storageName, store string, entries []messages.FileEntry, edit func(index, sums *[]byte, m *layout.Metadata)) {
	t.Helper()
	ctx := context.Background()
	var index strings.Builder
	w := messages.NewFileListWriter(&index)
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	idx := []byte(index.String())
	sums := []byte(hexSum(idx) + "  " + layout.FileIndex + "\n")
	m := &layout.Metadata{BackupTimestamp: time.Now(), RunID: "r", Status: layout.StatusComplete, Storage: storageName,
		BackupOptions: layout.BackupOptions{IncludeFiles: true}, Files: layout.FilesSummary{Index: layout.FileIndex, Store: store}}
	if edit != nil {
		edit(&idx, &sums, m)
	}
	if m.ManifestSHA256 == "" {
		m.ManifestSHA256 = hexSum(sums)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range map[string][]byte{layout.FileIndex: idx, layout.FileSums: sums, layout.FileMetadata: data} {
		if _, err := root.Put(ctx, name+"/"+key, strings.NewReader(string(b)), storage.Object{}); err != nil {
			t.Fatal(err)
		}
	}
}

// On an S3 destination the base is found through the bucket, verified, and only one whose
// files are in the object store is used: an unchanged file's Reuse is its object's key. A
// newer base that fails its checks is named in a warning and passed over for an older one.
func TestFindBaseOnS3(t *testing.T) {
	ctx := context.Background()
	srcDir := t.TempDir()
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for k, v := range map[string]string{"content/a.json": "alpha", "content/b.json": "bravo"} {
		p := filepath.Join(srcDir, filepath.FromSlash(k))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(v), 0o644)
		os.Chtimes(p, mtime, mtime)
	}
	src, err := storage.Open(ctx, srcDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s3 := s3test.Start(t, nil, "bk")
	destURL := s3.URL("bk", "nightly", "")
	root, err := storage.Open(ctx, destURL)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	sumA := hexSum([]byte("alpha"))
	entries := []messages.FileEntry{
		{Path: "files/content/a.json", Key: "content/a.json", Size: 5, ModTime: mtime.UnixNano(), SHA256: sumA},
		{Path: "files/content/b.json", Key: "content/b.json", Size: 5, ModTime: mtime.UnixNano() + 1, SHA256: hexSum([]byte("BRAVO"))},
	}
	putBase(t, root, "backup_20240101_000000", src.String(), layout.StoreObjects, entries, nil)
	putBase(t, root, "backup_20240102_000000", src.String(), "", entries, nil) // files under files/: not a base here
	putBase(t, root, "backup_20240103_000000", src.String(), layout.StoreObjects, entries, func(_, _ *[]byte, m *layout.Metadata) {
		m.ManifestSHA256 = strings.Repeat("1", 64)
	})
	putBase(t, root, "backup_20240105_000000", src.String(), layout.StoreObjects, entries, func(idx, _ *[]byte, _ *layout.Metadata) {
		*idx = []byte(strings.Replace(string(*idx), `"n":5`, `"n":6`, 1)) // after SHA256SUMS listed it
	})
	putBase(t, root, "backup_20240104_000000", "/another/storage", layout.StoreObjects, entries, nil)

	r := &backupRun{o: BackupOptions{StorageURL: srcDir, BackupDir: destURL, FilesPerTask: 10, BytesPerTask: 1 << 20, RunID: "run"},
		src: src, log: slog.New(slog.DiscardHandler)}
	base, err := r.findBase(ctx, root)
	if err != nil || base == nil || base.name != "backup_20240101_000000" {
		t.Fatalf("base %+v, %v; want backup_20240101_000000", base, err)
	}
	if len(r.warnings) != 2 || !strings.Contains(r.warnings[0], "base backup backup_20240105_000000 not used: files_index.jsonl has sha256") ||
		!strings.Contains(r.warnings[1], "base backup backup_20240103_000000 not used: SHA256SUMS has sha256") {
		t.Fatalf("warnings %q: want backup_20240105_000000's index and backup_20240103_000000's manifest named", r.warnings)
	}

	stage, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer stage.Close()
	inc := incremental{base: base, location: destURL}
	tasks, _, info, err := (&Coordinator{}).planCopies(ctx, "run", src, r.o, stage, "staging", "", inc)
	if err != nil || len(tasks) != 1 || info.Base != base.name || tasks[0].Copy.Base != destURL {
		t.Fatalf("plan: %d tasks, base %q, %v", len(tasks), info.Base, err)
	}
	rc, _, err := stage.Open(ctx, tasks[0].Copy.KeyList)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	reuse := map[string]string{}
	messages.ReadFileList(rc, func(e messages.FileEntry) error { reuse[e.Key] = e.Reuse; return nil })
	if reuse["content/a.json"] != layout.ObjectKey(sumA) || reuse["content/b.json"] != "" {
		t.Fatalf("reuse %q: want content/a.json at %s and content/b.json copied", reuse, layout.ObjectKey(sumA))
	}
}
