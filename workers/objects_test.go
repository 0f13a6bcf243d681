package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

func sumOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// requestLog records the paths a fake S3 is asked for, by method.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path"
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// count counts the requests whose method and path contain both words.
func (l *requestLog) count(method, inPath string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, inPath) {
			n++
		}
	}
	return n
}

// objectTask is a copy task into an object store on srv: its key list is written into the
// run's staging area there.
func objectTask(t *testing.T, srv *s3test.Server, source string, entries []messages.FileEntry, checksum bool) *messages.Task {
	t.Helper()
	var b bytes.Buffer
	lw := messages.NewFileListWriter(&b)
	for _, e := range entries {
		lw.Add(e)
	}
	lw.Flush()
	stage := srv.URL("backups", "nightly/.wnb-staging-run1", "")
	sb, err := storage.Open(context.Background(), stage)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.Put(context.Background(), ".wnb/keys/copy-0000.jsonl", &b, storage.Object{}); err != nil {
		t.Fatal(err)
	}
	return &messages.Task{
		Version: messages.Version, Run: "run1", ID: "copy-content-0000", Kind: messages.KindCopyPrefix, Dest: stage,
		Copy: &messages.CopyTask{
			Source: source, Prefix: "content/", KeyList: ".wnb/keys/copy-0000.jsonl", DestPrefix: "files/",
			Sums: ".wnb/sums/copy-0000.jsonl", Keys: len(entries), Checksum: checksum,
			Objects: srv.URL("backups", "nightly", ""), Base: srv.URL("backups", "nightly", ""),
		},
	}
}

// readAll reads a key of an S3 location.
func readAll(t *testing.T, loc, key string) ([]byte, error) {
	t.Helper()
	b, err := storage.Open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, _, err := b.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// A copy task into the object store stores each content once under its sum, costs no request
// for a file reused from the base (unless --checksum, which reads the source and reuses only
// equal content), warns about a vanished file, removes its staging keys, and writes sums whose
// Stored is each file's object key, from a local or an S3 source alike.
func TestStoreObjects(t *testing.T) {
	files := map[string]string{
		"content/a.json":   "alpha",
		"content/b.json":   "beta",
		"content/dup.json": "alpha", // the same content as a.json: one object
		"content/re.json":  "reused content",
	}
	tests := []struct {
		name     string
		s3Source bool
		checksum bool
		// reuseSum is the sum the key list gives content/re.json as reused from the base.
		reuseSum   string
		wantReused int64
		wantRe     string // the sum content/re.json ends with
	}{
		{name: "local source, reuse trusted", reuseSum: sumOf("base content"), wantReused: 1, wantRe: sumOf("base content")},
		{name: "local source, --checksum, same content", checksum: true, reuseSum: sumOf("reused content"), wantReused: 1, wantRe: sumOf("reused content")},
		{name: "local source, --checksum, changed content", checksum: true, reuseSum: sumOf("base content"), wantReused: 0, wantRe: sumOf("reused content")},
		{name: "S3 source, reuse trusted", s3Source: true, reuseSum: sumOf("base content"), wantReused: 1, wantRe: sumOf("base content")},
		{name: "S3 source, --checksum, changed content", s3Source: true, checksum: true, reuseSum: sumOf("base content"), wantReused: 0, wantRe: sumOf("reused content")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log requestLog
			srv := s3test.Start(t, log.wrap, "backups", "media")
			source := t.TempDir()
			for k, v := range files {
				p := filepath.Join(source, filepath.FromSlash(k))
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(v), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			if tt.s3Source {
				source = srv.URL("media", "site", "")
				for k, v := range files {
					srv.Put(t, "media", "site/"+k, []byte(v))
				}
			}
			entries := []messages.FileEntry{
				{Key: "content/a.json", Size: 5, ModTime: 7},
				{Key: "content/b.json", Size: 4, ETag: "e"},
				{Key: "content/dup.json", Size: 5},
				{Key: "content/gone.json", Size: 3},
				{Key: "content/re.json", Size: 14, SHA256: tt.reuseSum, Mode: 0o640, Reuse: layout.ObjectKey(tt.reuseSum)},
			}
			task := objectTask(t, srv, source, entries, tt.checksum)
			w := &Worker{cfg: Config{StorageURL: source, Concurrency: 3}}
			res, err := w.copy(context.Background(), task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Files != 4 || res.Reused != tt.wantReused || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "content/gone.json") {
				t.Fatalf("result %+v", res)
			}
			if !tt.checksum && log.count("", "site/content/re.json")+log.count("", tt.reuseSum) != 0 {
				t.Fatalf("a reused file cost requests: %v", log.reqs)
			}
			if n := log.count("PUT", "/objects/sha256/"+sumOf("alpha")[:2]+"/"+sumOf("alpha")); n != 1 {
				t.Fatalf("%d writes of the object of a.json and dup.json, want 1: %v", n, log.reqs)
			}
			sums, err := readAll(t, task.Dest, task.Copy.Sums)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]messages.FileEntry{}
			messages.ReadFileList(bytes.NewReader(sums), func(e messages.FileEntry) error {
				got[e.Path] = e
				return nil
			})
			want := map[string]string{"files/content/a.json": sumOf("alpha"), "files/content/b.json": sumOf("beta"), "files/content/dup.json": sumOf("alpha"), "files/content/re.json": tt.wantRe}
			if len(got) != len(want) {
				t.Fatalf("sums %v", got)
			}
			for p, sum := range want {
				e := got[p]
				if e.SHA256 != sum || e.Stored != layout.ObjectKey(sum) || e.Key != strings.TrimPrefix(p, "files/") {
					t.Fatalf("sums entry %s: %+v, want sum %s", p, e, sum)
				}
				if p == "files/content/re.json" && tt.wantReused == 1 {
					continue // the base's object, not in this test's store
				}
				data, err := readAll(t, task.Copy.Objects, e.Stored)
				if err != nil || sumOf(string(data)) != sum {
					t.Fatalf("object of %s: %q, %v", p, data, err)
				}
			}
			if got["files/content/a.json"].ModTime != 7 || got["files/content/b.json"].ETag != "e" {
				t.Fatalf("sums lost the key list's modification time or ETag: %+v", got)
			}
			if n, err := countIncoming(t, task.Dest); err != nil || n != 0 {
				t.Fatalf("%d staging keys left (%v)", n, err)
			}
		})
	}
}

// countIncoming counts the objects left under the staging area's incoming keys.
func countIncoming(t *testing.T, stage string) (int, error) {
	t.Helper()
	b, err := storage.Open(context.Background(), stage)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	n := 0
	err = b.Walk(context.Background(), incomingDir+"/", func(storage.Object) error { n++; return nil })
	return n, err
}

// A local file rewritten between the hash and the upload is never stored under the sum of
// content it no longer has: it is read once more, and what that read got is stored under its
// own sum.
func TestStoreObjectsFileChangedAfterHash(t *testing.T) {
	srv := s3test.Start(t, nil, "backups")
	source := t.TempDir()
	p := filepath.Join(source, "content", "a.json")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("first version"), 0o644); err != nil {
		t.Fatal(err)
	}
	var reads int
	var mu sync.Mutex
	defer SetReadHook(func(key string, r io.Reader) io.Reader {
		mu.Lock()
		defer mu.Unlock()
		if reads++; reads == 2 { // the upload's read: the file is rewritten just before
			if err := os.WriteFile(p, []byte("second version!"), 0o644); err != nil {
				t.Error(err)
			}
		}
		return r
	})()
	task := objectTask(t, srv, source, []messages.FileEntry{{Key: "content/a.json", Size: 13}}, false)
	w := &Worker{cfg: Config{StorageURL: source}}
	res, err := w.copy(context.Background(), task)
	if err != nil || res.Files != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	sums, _ := readAll(t, task.Dest, task.Copy.Sums)
	var e messages.FileEntry
	messages.ReadFileList(bytes.NewReader(sums), func(x messages.FileEntry) error { e = x; return nil })
	if e.SHA256 != sumOf("second version!") || e.Size != 15 {
		t.Fatalf("sums entry %+v, want the second version", e)
	}
	data, err := readAll(t, task.Copy.Objects, layout.ObjectKey(sumOf("second version!")))
	if err != nil || string(data) != "second version!" {
		t.Fatalf("object %q, %v", data, err)
	}
	if _, err := readAll(t, task.Copy.Objects, layout.ObjectKey(sumOf("first version"))); err == nil {
		t.Fatal("an object was stored under the sum of content the file no longer had")
	}
}

// An object the store already holds but that was written over an hour ago is written again,
// so that a sweep's grace period covers it until the task's sums name it; a young one is
// taken as it is.
func TestStoreObjectsRewritesOldObject(t *testing.T) {
	s3test.Env(t)
	clock := gofakes3.FixedTimeSource(time.Now().Add(-2 * time.Hour))
	mem := s3mem.New(s3mem.WithTimeSource(clock))
	if err := mem.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	var log requestLog
	fake := gofakes3.New(mem, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithTimeSource(clock), gofakes3.WithTimeSkewLimit(0))
	srv := httptest.NewServer(log.wrap(fake.Server()))
	defer srv.Close()
	loc := func(prefix string) string {
		return "s3://backups/" + prefix + "?endpoint=" + url.QueryEscape(srv.URL) + "&path_style=true&region=us-east-1"
	}
	root, err := storage.Open(context.Background(), loc("nightly"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	put := func(key, data string) {
		if _, err := root.Put(context.Background(), key, strings.NewReader(data), storage.Object{}); err != nil {
			t.Fatal(err)
		}
	}
	put(layout.ObjectKey(sumOf("old")), "old")
	clock.Advance(2 * time.Hour)
	put(layout.ObjectKey(sumOf("young")), "young")

	source := t.TempDir()
	for name, data := range map[string]string{"old.json": "old", "young.json": "young"} {
		os.MkdirAll(filepath.Join(source, "content"), 0o755)
		if err := os.WriteFile(filepath.Join(source, "content", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	lw := messages.NewFileListWriter(&b)
	lw.Add(messages.FileEntry{Key: "content/old.json", Size: 3})
	lw.Add(messages.FileEntry{Key: "content/young.json", Size: 5})
	lw.Flush()
	put(".wnb-staging-run1/keys.jsonl", b.String())
	task := &messages.Task{
		Version: messages.Version, Run: "run1", ID: "copy-content-0000", Kind: messages.KindCopyPrefix, Dest: loc("nightly/.wnb-staging-run1"),
		Copy: &messages.CopyTask{Source: source, Prefix: "content/", KeyList: "keys.jsonl", DestPrefix: "files/", Sums: "sums.jsonl", Objects: loc("nightly")},
	}
	w := &Worker{cfg: Config{StorageURL: source}}
	log.mu.Lock()
	log.reqs = nil // the task's requests only
	log.mu.Unlock()
	if _, err := w.copy(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if n := log.count("PUT", sumOf("old")); n != 1 {
		t.Fatalf("the old object was written %d times, want once: %v", n, log.reqs)
	}
	if n := log.count("PUT", sumOf("young")); n != 0 {
		t.Fatalf("the young object was written %d times, want none: %v", n, log.reqs)
	}
}
