package pipeline_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

var fixtureLines = fixture.Format{}

func extract(r io.Reader, dest string) (string, error) {
	return archive.Extract(context.Background(), r, dest)
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("flip a byte of %s: %v", p, err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceInFixture edits a fixture and re-signs the backup, so that only the database can
// notice what is wrong.
func replaceInFixture(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q (%v)", file, old, err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	resign(t, dir)
}

func resign(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	sums, err := layout.SumTree(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := sums.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.ManifestSHA256 = manifest
	for i, e := range m.Models {
		sum, _, err := layout.HashFile(ctx, filepath.Join(dir, e.File))
		if err != nil {
			t.Fatal(err)
		}
		m.Models[i].SHA256 = sum
	}
	if err := layout.WriteMetadata(dir, m); err != nil {
		t.Fatal(err)
	}
}

// hostileArchive packs dir as a backup archive with an entry that escapes, placed last.
func hostileArchive(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "backup_20240101_000000.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	top := filepath.Base(dir)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(filepath.Join(top, rel))
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, Typeflag: tar.TypeDir})
		}
		b, _ := os.ReadFile(p)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		_, err = tw.Write(b)
		return err
	})
	evil := []byte("owned")
	tw.WriteHeader(&tar.Header{Name: top + "/../../evil.txt", Mode: 0o644, Size: int64(len(evil)), Typeflag: tar.TypeReg})
	tw.Write(evil)
	tw.Close()
	gz.Close()
	return out
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func dropTable(t *testing.T, url, table string) {
	t.Helper()
	if !strings.HasPrefix(url, "sqlite:///") {
		t.Fatal("dropTable supports SQLite targets")
	}
	db, err := database.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	sqlitetest.Exec(t, strings.TrimPrefix(url, "sqlite:///"), "DROP TABLE "+table)
}

// waitUntil checks cond every interval until it holds, failing the test if it does not
// within the given time.
func waitUntil(t *testing.T, within, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(interval)
	}
}
