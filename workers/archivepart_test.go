package workers

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
)

// readPart lists a part's tar entries (name → content), in order; a part has no end blocks,
// which the tar reader takes as the end.
func readPart(t *testing.T, file string) (names []string, data map[string]string) {
	t.Helper()
	f, err := os.Open(file)
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
	data = map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, hdr.Name)
		data[hdr.Name] = string(b)
	}
}

// A copy task of a compressed backup writes its files as one archive part, in key-list order,
// and nothing under files/; the sums are those of the archived content; a file gone since it
// was listed is a warning; a file that changed while read is kept as read, flagged and named.
func TestCopyTaskWritesArchivePart(t *testing.T) {
	for _, c := range []archive.Compression{archive.Gzip, archive.Zstd, archive.None} {
		t.Run(string(c), func(t *testing.T) {
			srv := s3test.Start(t, nil, "media")
			keys := []string{"content/b.json", "content/a.json", "content/gone.json", "content/shrinks.json"}
			task := s3CopyTask(t, srv, "copy-content-0000", keys)
			srv.Backend.DeleteObject("media", "platform/content/gone.json")
			task.Copy.Archive = &messages.ArchivePart{Output: ".wnb/parts/copy-content-0000" + c.Ext(), Top: "backup_20240101_000000", Compression: string(c)}
			defer SetReadHook(func(key string, r io.Reader) io.Reader {
				if strings.HasSuffix(key, "shrinks.json") {
					return io.LimitReader(r, 3)
				}
				return r
			})()
			w := &Worker{cfg: Config{StorageURL: srv.URL("media", "platform", ""), Concurrency: 2}}
			res, err := w.copy(context.Background(), task)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(task.Dest, "files")); !os.IsNotExist(err) {
				t.Fatalf("files/ was written (%v): the files must go into the part only", err)
			}
			names, data := readPart(t, filepath.Join(task.Dest, task.Copy.Archive.Output))
			top := "backup_20240101_000000/files/"
			want := []string{top + "content/b.json", top + "content/a.json", top + "content/shrinks.json"}
			if strings.Join(names, ",") != strings.Join(want, ",") {
				t.Fatalf("part entries %v, want %v", names, want)
			}
			if data[top+"content/a.json"] != "data of content/a.json" || data[top+"content/shrinks.json"] != "dat"+strings.Repeat("\x00", len("data of content/shrinks.json")-3) {
				t.Fatalf("part content %q", data)
			}
			if res.Files != 3 || len(res.Warnings) != 2 || !strings.Contains(strings.Join(res.Warnings, "\n"), "gone.json") ||
				!strings.Contains(strings.Join(res.Warnings, "\n"), "changed as we read it") {
				t.Fatalf("result: %d files, warnings %q", res.Files, res.Warnings)
			}
			sums, _ := os.ReadFile(filepath.Join(task.Dest, "sums.jsonl"))
			n := 0
			messages.ReadFileList(strings.NewReader(string(sums)), func(e messages.FileEntry) error {
				n++
				s := sha256.Sum256([]byte(data["backup_20240101_000000/"+e.Path]))
				if e.SHA256 != hex.EncodeToString(s[:]) || e.Changed != strings.HasSuffix(e.Path, "shrinks.json") {
					t.Errorf("sums entry %+v does not match the archived content", e)
				}
				return nil
			})
			if n != 3 {
				t.Fatalf("%d sums entries, want 3", n)
			}
		})
	}
}

// An archive part is written in key-list order, but the next files' sources are opened
// ahead (up to the worker's concurrency), so that a remote source's latency overlaps.
func TestArchivePartOpensAhead(t *testing.T) {
	f := &inFlight{delay: 30 * time.Millisecond}
	srv := s3test.Start(t, f.wrap, "media")
	var keys []string
	for j := range 12 {
		keys = append(keys, fmt.Sprintf("content/%02d.json", j))
	}
	task := s3CopyTask(t, srv, "copy-content-0000", keys)
	task.Copy.Archive = &messages.ArchivePart{Output: "part.tar.gz", Top: "backup_20240101_000000", Compression: "gzip"}
	w := &Worker{cfg: Config{StorageURL: srv.URL("media", "platform", ""), Concurrency: 4}}
	res, err := w.copy(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := readPart(t, filepath.Join(task.Dest, "part.tar.gz"))
	if res.Files != 12 || len(names) != 12 || names[0] != "backup_20240101_000000/files/content/00.json" {
		t.Fatalf("%d files, entries %v", res.Files, names)
	}
	if m := f.max.Load(); m < 2 || m > 5 {
		t.Fatalf("%d downloads at once, want 2 to 5 (opened ahead, bounded by the concurrency)", m)
	}
}
