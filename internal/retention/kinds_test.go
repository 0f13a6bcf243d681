package retention

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// TestListReadsEveryArchiveKind: .tar.zst and .tar archives are listed as archives and, with
// ReadArchives, read up to their metadata like a .tar.gz.
func TestListReadsEveryArchiveKind(t *testing.T) {
	dir := t.TempDir()
	kinds := map[string]archive.Compression{
		"backup_20240701_020000.tar.gz":  archive.Gzip,
		"backup_20240702_020000.tar.zst": archive.Zstd,
		"backup_20240703_020000.tar":     archive.None,
	}
	for name, c := range kinds {
		top, _ := layout.TrimArchiveExt(name)
		at, _ := time.ParseInLocation("backup_20060102_150405", top, time.UTC)
		src := t.TempDir()
		writeTree(t, src, backupFiles(t, at, layout.StatusComplete, 4), at)
		var buf bytes.Buffer
		if _, err := archive.WriteHead(context.Background(), &buf, c, src, top, nil); err != nil {
			t.Fatal(err)
		}
		if err := archive.WriteEnd(&buf, c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	d, err := OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, ListOptions{Location: time.UTC, ReadArchives: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != len(kinds) {
		t.Fatalf("listed %v, want the %d archives", summary(bs), len(kinds))
	}
	for _, b := range bs {
		if _, ok := kinds[b.Name]; !ok || b.Kind != KindArchive || b.Status != StatusComplete || b.Rows != 4 {
			t.Errorf("%s: kind %s, status %s, rows %d, problem %q; want a complete archive of 4 rows", b.Name, b.Kind, b.Status, b.Rows, b.Problem)
		}
	}
}
