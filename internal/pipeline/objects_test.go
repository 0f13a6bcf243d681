package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// requestCounter counts the S3 requests a test makes, by kind ("PUT object", "HEAD object",
// "GET object" for the object store; "PUT", "GET", … for the rest; "COPY" for server-side
// copies).
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := r.Method
		switch {
		case r.Header.Get("X-Amz-Copy-Source") != "":
			kind = "COPY"
		case strings.Contains(r.URL.Path, "/"+layout.ObjectsDir+"/sha256/"):
			kind += " object"
		}
		c.mu.Lock()
		c.n[kind]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *requestCounter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.n
	c.n = map[string]int{}
	return old
}

// s3Chain is a platform with local storage backed up to an S3 destination.
type s3Chain struct {
	t    *testing.T
	p    platformFixture
	s    interface{ Close() }
	back func(t *testing.T) string
	dest *storage.Bucket
}

func newS3Chain(t *testing.T, s3 *s3test.Server, prefix string) *s3Chain {
	t.Helper()
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	destURL := s3.URL("backups", prefix, "")
	dest, err := storage.Open(context.Background(), destURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dest.Close() })
	back := func(t *testing.T) string {
		t.Helper()
		rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: destURL, FilesPerTask: 7,
		})
		if err != nil {
			t.Fatal(err)
		}
		where, _, _ := strings.Cut(rep.Path, "?")
		return path.Base(where)
	}
	return &s3Chain{t: t, p: p, back: back, dest: dest}
}

// read returns an object of the destination.
func (c *s3Chain) read(key string) ([]byte, error) {
	r, _, err := c.dest.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// objects maps each sum in the object store to its object's size.
func (c *s3Chain) objects() map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	err := c.dest.Walk(context.Background(), layout.ObjectsDir+"/", func(o storage.Object) error {
		out[path.Base(o.Key)] = o.Size
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// checkBackup checks a published object-store backup: no files/ under its prefix, metadata
// naming the store and index, SHA256SUMS vouching for the index, and an index that maps
// exactly the storage files of want to objects holding their bytes. It returns the sums the
// backup needs.
func (c *s3Chain) checkBackup(name string, want map[string][]byte) map[string]bool {
	t := c.t
	t.Helper()
	ctx := context.Background()
	c.dest.Walk(ctx, name+"/", func(o storage.Object) error {
		if strings.HasPrefix(o.Key, name+"/"+layout.FilesDir+"/") {
			t.Errorf("%s: file published under the backup's prefix: %s", name, o.Key)
		}
		return nil
	})
	mdata, err := c.read(name + "/" + layout.FileMetadata)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := layout.ParseMetadata(mdata)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Files.Store != layout.StoreObjects || meta.Files.Index != layout.FileIndexGz || meta.Files.New.Files+meta.Files.Reused.Files != meta.Files.Count {
		t.Fatalf("%s: files summary %+v", name, meta.Files)
	}
	index, err := c.read(name + "/" + layout.FileIndexGz)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := c.read(name + "/" + layout.FileSums)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(manifest); hex.EncodeToString(got[:]) != meta.ManifestSHA256 {
		t.Fatalf("%s: manifest_sha256 does not match SHA256SUMS", name)
	}
	sums, err := layout.ParseSums(bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(index); sums[layout.FileIndexGz] != hex.EncodeToString(got[:]) {
		t.Fatalf("%s: SHA256SUMS lists %s as %q", name, layout.FileIndexGz, sums[layout.FileIndexGz])
	}
	need := map[string]bool{}
	seen := map[string]bool{}
	prev := ""
	err = messages.ReadFileList(layout.DecompressIndex(bytes.NewReader(index)), func(e messages.FileEntry) error {
		if e.Path <= prev {
			t.Errorf("%s: index not sorted by path at %q", name, e.Path)
		}
		prev = e.Path
		key := strings.TrimPrefix(e.Path, layout.FilesDir+"/")
		content, ok := want[key]
		if !ok {
			t.Errorf("%s: index lists %s, which the storage did not hold", name, e.Path)
			return nil
		}
		seen[key] = true
		got, err := c.read(e.Stored)
		if e.Stored != layout.ObjectKey(e.SHA256) || err != nil || !bytes.Equal(got, content) || sums[e.Path] != e.SHA256 {
			t.Errorf("%s: %s: stored %s (%v), sum in SHA256SUMS %q, content matches %v", name, e.Path, e.Stored, err, sums[e.Path], bytes.Equal(got, content))
		}
		need[e.SHA256] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: index lists %d of the %d storage files", name, len(seen), len(want))
	}
	return need
}

// union is the sums the given backups need.
func union(needs map[string]map[string]bool, names ...string) map[string]bool {
	out := map[string]bool{}
	for _, n := range names {
		maps.Copy(out, needs[n])
	}
	return out
}

// sameKeys reports whether the store holds exactly the sums of want.
func sameKeys(store map[string]int64, want map[string]bool) bool {
	return slices.Equal(slices.Sorted(maps.Keys(store)), slices.Sorted(maps.Keys(want)))
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A chain of five S3 backups with changes, deletions and renames between them: the object
// store holds each content once (an unchanged storage adds no object and uploads no file
// data; a changed file adds one object; a rename or a file put back adds none); each backup's
// index maps exactly its own storage state to objects with the right bytes, and it restores
// exactly that state. Pruning subsets then sweeps exactly the objects no remaining backup
// needs, keeps what a run in progress names, and the rest stay whole and restorable.
func TestS3ObjectStoreChain(t *testing.T) {
	var rc requestCounter
	rc.reset()
	s3 := s3test.Start(t, rc.wrap, "backups")
	c := newS3Chain(t, s3, "nightly")
	files := treeFiles(t, c.p.storage)
	keys := slices.Sorted(maps.Keys(files))
	changed, deleted, renamed := keys[0], keys[1], keys[2]
	deletedContent := files[deleted]

	needs := map[string]map[string]bool{}
	trees := map[string]map[string][]byte{}
	var names []string
	step := func(wantNew int, change func()) {
		t.Helper()
		change()
		before := c.objects()
		rc.reset()
		name := c.back(t)
		reqs := rc.reset()
		names = append(names, name)
		trees[name] = treeFiles(t, c.p.storage)
		needs[name] = c.checkBackup(name, trees[name])
		c.dest.Walk(context.Background(), layout.StagingPrefix, func(o storage.Object) error {
			t.Errorf("backup %d: staging object left after the publish: %s", len(names), o.Key)
			return nil
		})
		after := c.objects()
		if len(after)-len(before) != wantNew || reqs["PUT object"] != wantNew || reqs["GET object"] != 0 {
			t.Fatalf("backup %d: %d new objects, %d object PUTs, want %d (requests %v)", len(names), len(after)-len(before), reqs["PUT object"], wantNew, reqs)
		}
		if !sameKeys(after, union(needs, names...)) {
			t.Fatalf("backup %d: the store holds %d objects, the backups need %d", len(names), len(after), len(union(needs, names...)))
		}
		t.Logf("backup %d (%s): requests %v", len(names), name, reqs)
	}
	step(len(distinctSums(files)), func() {})
	step(0, func() {}) // unchanged storage: no object, no file data uploaded
	step(1, func() {
		writeFile(t, filepath.Join(c.p.storage, changed), []byte("changed content of "+changed))
		os.Remove(filepath.Join(c.p.storage, deleted))
		writeFile(t, filepath.Join(c.p.storage, "renamed", renamed), files[renamed])
		os.Remove(filepath.Join(c.p.storage, renamed))
	})
	step(1, func() {
		writeFile(t, filepath.Join(c.p.storage, "new", "brand-new.txt"), []byte("new in backup 4"))
		writeFile(t, filepath.Join(c.p.storage, "new", "copy-of-changed.txt"), []byte("changed content of "+changed))
	})
	step(0, func() { writeFile(t, filepath.Join(c.p.storage, "back", deleted), deletedContent) })
	restoresOwnState := func(names []string) {
		t.Helper()
		for _, n := range names {
			sameTree(t, n+" restored", restoreFiles(t, s3.URL("backups", "nightly/"+n, "")), trees[n])
		}
	}
	restoresOwnState(names)

	ctx := context.Background()
	d, err := retention.OpenDestination(ctx, s3.URL("backups", "nightly", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	backupsByName := map[string]retention.Backup{}
	list, err := d.List(ctx, retention.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range list {
		backupsByName[b.Name] = b
	}
	oldChanged := sha256.Sum256(files[changed])
	oldSum := hex.EncodeToString(oldChanged[:])
	// Backups 1 and 2 pruned: the old content of the changed file is needed by no backup,
	// but a grace period keeps it while it is young.
	for _, n := range names[:2] {
		if err := d.Remove(ctx, backupsByName[n]); err != nil {
			t.Fatal(err)
		}
	}
	remaining := slices.Clone(names[2:])
	res, err := d.SweepObjects(ctx, retention.SweepOptions{Grace: time.Hour})
	if err != nil || res.Swept != 0 || res.Young != 1 {
		t.Fatalf("sweep within the grace period: %+v, %v", res, err)
	}
	// A run in progress whose key list names that content keeps it through a sweep.
	var keyList bytes.Buffer
	lw := messages.NewFileListWriter(&keyList)
	lw.Add(messages.FileEntry{Key: changed, Size: int64(len(files[changed])), SHA256: oldSum, Reuse: layout.ObjectKey(oldSum)})
	lw.Flush()
	running := layout.StagingPrefix + "20990101T000000-running"
	if _, err := c.dest.Put(ctx, running+"/.wnb/keys/copy-content-0000.jsonl", &keyList, storage.Object{}); err != nil {
		t.Fatal(err)
	}
	want := union(needs, remaining...)
	want[oldSum] = true
	if res, err := d.SweepObjects(ctx, retention.SweepOptions{}); err != nil || !sameKeys(c.objects(), want) || res.Swept != 0 {
		t.Fatalf("sweep with a run in progress: %+v, %v; the store holds %d objects, want %d", res, err, len(c.objects()), len(want))
	}
	if err := c.dest.RemoveAll(ctx, running); err != nil { // the run ends
		t.Fatal(err)
	}
	for _, prune := range []int{3, 2} { // backup 4, then backup 3
		if err := d.Remove(ctx, backupsByName[names[prune]]); err != nil {
			t.Fatal(err)
		}
		remaining = slices.DeleteFunc(remaining, func(n string) bool { return n == names[prune] })
		before := c.objects()
		res, err := d.SweepObjects(ctx, retention.SweepOptions{})
		if err != nil {
			t.Fatal(err)
		}
		after := c.objects()
		if want := union(needs, remaining...); !sameKeys(after, want) || res.Swept != int64(len(before)-len(after)) {
			t.Fatalf("after pruning, %v remain: the store holds %d objects, they need %d (sweep %+v)", remaining, len(after), len(want), res)
		}
		for _, n := range remaining {
			c.checkBackup(n, trees[n]) // still whole: every object there with its bytes
		}
		restoresOwnState(remaining)
	}
	if _, ok := c.objects()[oldSum]; ok {
		t.Fatal("the object the finished run named was never swept")
	}
}

// distinctSums is the set of contents of files.
func distinctSums(files map[string][]byte) map[string]bool {
	out := map[string]bool{}
	for _, b := range files {
		s := sha256.Sum256(b)
		out[hex.EncodeToString(s[:])] = true
	}
	return out
}
