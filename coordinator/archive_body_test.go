package coordinator

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/storage"
)

// A part written again after it went into the archive's body (a copy task run a second time
// after its first result arrived, e.g. redelivered) makes the publish give the body up and
// concatenate the parts as they are now: the archive holds the part's last version. Without a
// rewrite the body itself is published.
func TestArchiveBodyPartRewrittenAfterAppend(t *testing.T) {
	const top, file = "backup_20260101_000000", "files/a.txt"
	first, second := "first version", "later version" // the same size: only the content differs
	cases := []struct {
		name    string
		rewrite func(t *testing.T, d *localDestination, key string)
		want    string
	}{
		{"not rewritten", func(*testing.T, *localDestination, string) {}, first},
		{"replaced by the storage", func(t *testing.T, d *localDestination, key string) {
			// What a task run again does: the part is written anew and renamed into place.
			old, err := os.Stat(filepath.Join(d.stage.Path(), key))
			if err != nil {
				t.Fatal(err)
			}
			part := partBytes(t, top, file, second)
			if _, err := d.bucket.Put(context.Background(), key, bytes.NewReader(part), storage.Object{Mode: 0o600}); err != nil {
				t.Fatal(err)
			}
			// Same size and time: only the file's identity tells the new part from the old.
			if err := os.Chtimes(filepath.Join(d.stage.Path(), key), old.ModTime(), old.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, second},
		{"rewritten in place", func(t *testing.T, d *localDestination, key string) {
			part := partBytes(t, top, file, second+" and more")
			if err := os.WriteFile(filepath.Join(d.stage.Path(), key), part, 0o600); err != nil {
				t.Fatal(err)
			}
		}, second + " and more"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			d, b := stagedBody(t, top, file, first)
			bodyInfo, err := b.f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			c.rewrite(t, d, "parts/p2")
			final, err := d.publishArchive(ctx, publishOptions{compress: true, body: b})
			if err != nil {
				t.Fatal(err)
			}
			if got := archivedFile(t, final, top+"/"+file); got != c.want {
				t.Fatalf("the archive holds %q for %s, want %q", got, file, c.want)
			}
			finalInfo, err := os.Stat(final)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == first && !os.SameFile(finalInfo, bodyInfo) {
				t.Fatal("the archive was concatenated again though no part changed: the body was not used")
			}
		})
	}
}

// stagedBody stages a local compressed backup of two parts, p1 (an unrelated file) and p2
// (file with content), both appended to a body, and the manifest listing them in that order.
// It skips the test where the file system cannot insert blocks (no body is built there).
func stagedBody(t *testing.T, top, file, content string) (*localDestination, *archiveBody) {
	t.Helper()
	ctx := context.Background()
	dest, err := openDestination(ctx, t.TempDir(), "body-test")
	if err != nil {
		t.Fatal(err)
	}
	d := dest.(*localDestination)
	t.Cleanup(d.Close)
	parts := map[string][]byte{"parts/p1": partBytes(t, top, "files/other.txt", "other"), "parts/p2": partBytes(t, top, file, content)}
	for _, key := range []string{"parts/p1", "parts/p2"} {
		if _, err := d.bucket.Put(ctx, key, bytes.NewReader(parts[key]), storage.Object{Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := json.Marshal(archiveManifest{Top: top, Compression: string(archive.Gzip), Parts: []string{"parts/p1", "parts/p2"}})
	if _, err := d.bucket.Put(ctx, archiveManifestFile, bytes.NewReader(m), storage.Object{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	b, err := newArchiveBody(ctx, d.stage.Path(), slog.New(slog.DiscardHandler))
	if errors.Is(err, errInsertUnsupported) {
		t.Skipf("the temporary folder's file system: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.discard)
	b.add("parts/p1")
	b.add("parts/p2")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	return d, b
}

// partBytes is a gzip archive part holding one file.
func partBytes(t *testing.T, top, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	pw, err := archive.NewPartWriter(&buf, archive.Gzip, top, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := archive.File{Name: name, Size: int64(len(content)), Mode: 0o600, ModTime: time.Unix(1700000000, 0)}
	if _, err := pw.Add(context.Background(), f, strings.NewReader(content), nil); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archivedFile is the content of the entry name of the archive at path; the archive must
// hold it once.
func archivedFile(t *testing.T, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := archive.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if h.Name == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(data))
		}
	}
	if len(got) != 1 {
		t.Fatalf("the archive holds %s %d times (%q)", name, len(got), got)
	}
	return got[0]
}
