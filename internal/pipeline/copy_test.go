package pipeline_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/storage"
)

// copyOptions are small: a few files per task, so a copy is several tasks.
func copyOptions(backup, dest string) coordinator.CopyOptions {
	return coordinator.CopyOptions{Backup: backup, Dest: dest, FilesPerTask: 7}
}

// backupInto backs p up into dir and returns the backup's path.
func backupInto(t *testing.T, s *pipeline.Session, p platformFixture, dir string, compress bool) string {
	t.Helper()
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir, Compress: compress, ChunkRows: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Path
}

// backupIndexedInto is backupInto a folder, writing the file index the copies would stand for.
func backupIndexedInto(t *testing.T, s *pipeline.Session, p platformFixture, dir string) string {
	t.Helper()
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir, ChunkRows: 50, FileIndex: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Path
}

// storageFiles lists a backup folder's files/ (slash paths relative to the folder).
func storageFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for p := range treeFiles(t, filepath.Join(dir, layout.FilesDir)) {
		out = append(out, layout.FilesDir+"/"+p)
	}
	sort.Strings(out)
	return out
}

// checkCopyOf asserts that copied holds exactly what orig holds, metadata aside, passes
// sha256sum -c and verify, and says where it came from.
func checkCopyOf(t *testing.T, orig, copied, from string) {
	t.Helper()
	a, b := treeFiles(t, orig), treeFiles(t, copied)
	delete(a, layout.FileMetadata)
	delete(b, layout.FileMetadata)
	if len(a) != len(b) {
		t.Fatalf("the copy holds %d files, the original %d", len(b), len(a))
	}
	for p, data := range a {
		if !bytes.Equal(b[p], data) {
			t.Fatalf("%s differs in the copy", p)
		}
	}
	sha256sumCheck(t, copied)
	m := readMetadata(t, copied)
	if m.CopiedFrom == nil || m.CopiedFrom.Source != from || m.ManifestSHA256 != readMetadata(t, orig).ManifestSHA256 {
		t.Fatalf("copied_from %+v, manifest %s", m.CopiedFrom, m.ManifestSHA256)
	}
	rep, err := verify.Verify(context.Background(), copied, verify.Options{TempDir: t.TempDir()})
	if err != nil || !rep.OK {
		t.Fatalf("verify of the copy: %v %v", err, rep.Problems)
	}
}

// A copy into a local destination is the backup, byte for byte, under the same name; the
// next copy hard-links what did not change; a third copy of the same backup does nothing; and
// the copy restores.
func TestCopyLocalToLocalIncremental(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	srcDir, dest := t.TempDir(), t.TempDir()
	ctx := context.Background()

	first := backupInto(t, s, p, srcDir, false)
	rep, err := s.Coordinator.Copy(ctx, copyOptions(first, dest))
	if err != nil {
		t.Fatal(err)
	}
	copy1 := filepath.Join(dest, filepath.Base(first))
	if rep.Path != copy1 || rep.Reused != 0 || rep.Copied == 0 {
		t.Fatalf("first copy: %+v", rep)
	}
	checkCopyOf(t, first, copy1, first)

	files := storageFiles(t, first)
	changed := files[len(files)/2]
	key := strings.TrimPrefix(changed, layout.FilesDir+"/")
	if err := os.WriteFile(filepath.Join(p.storage, filepath.FromSlash(key)), []byte("changed since the first backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := backupInto(t, s, p, srcDir, false)
	rep, err = s.Coordinator.Copy(ctx, copyOptions(second, dest))
	if err != nil {
		t.Fatal(err)
	}
	copy2 := filepath.Join(dest, filepath.Base(second))
	if rep.Reused != int64(len(files)-1) {
		t.Fatalf("second copy reused %d files, want %d (all but %s)", rep.Reused, len(files)-1, changed)
	}
	checkCopyOf(t, second, copy2, second)
	if m := readMetadata(t, copy2); m.Files.Base != filepath.Base(first) || m.Files.Reused.Files != rep.Reused {
		t.Fatalf("metadata files: base %q, reused %+v", m.Files.Base, m.Files.Reused)
	}
	for _, f := range files {
		a, err1 := os.Stat(filepath.Join(copy1, f))
		b, err2 := os.Stat(filepath.Join(copy2, f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if linked := os.SameFile(a, b); linked != (f != changed) {
			t.Fatalf("%s: hard-linked to the first copy: %v", f, linked)
		}
	}

	again, err := s.Coordinator.Copy(ctx, copyOptions(second, dest))
	if err != nil || !again.AlreadyThere || again.Path != copy2 {
		t.Fatalf("copying again: %+v, %v", again, err)
	}
	// prune works on the destination alone: the first copy goes, the second (whose files are
	// mostly links to it) stays whole and restores.
	d, err := retention.OpenDestination(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := retention.Prune(ctx, d, retention.Policy{Last: 1}, retention.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	if names := backupNames(t, dest); len(names) != 1 || names[0] != filepath.Base(second) {
		t.Fatalf("after prune --keep-last 1: %v", names)
	}
	checkCopyOf(t, second, copy2, second)
	target := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: copy2}); err != nil {
		t.Fatal(err)
	}
	compareWithBackup(t, second, target)
}

// A source that is not a complete backup whose manifest holds is refused before anything is
// copied; a file that does not match the manifest is caught on arrival, named, and nothing
// is published.
func TestCopyBadSource(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backup := backupInto(t, s, p, t.TempDir(), false)
	victim := storageFiles(t, backup)[3]
	tests := []struct {
		name    string
		damage  func(dir string)
		status  outcome.Status
		mention string
	}{
		{"file corrupted", func(dir string) { flipByte(t, filepath.Join(dir, victim)) }, outcome.Failed, victim},
		{"fixture corrupted", func(dir string) { flipByte(t, filepath.Join(dir, readMetadata(t, dir).Models[0].File)) }, outcome.Failed, readMetadata(t, backup).Models[0].File},
		{"manifest tampered", func(dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, layout.FileSums), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(strings.Repeat("0", 64) + "  files/extra\n")
			f.Close()
		}, outcome.Refused, "manifest_sha256"},
		{"incomplete", func(dir string) { os.Remove(filepath.Join(dir, layout.FileMetadata)) }, outcome.Refused, "incomplete"},
		// A manifest cut short, its sum put right in the metadata: what the metadata says the
		// backup holds is not all listed.
		{"fixture unlisted", func(dir string) {
			fixture := readMetadata(t, dir).Models[0].File
			rewriteSums(t, dir, func(l string) bool { return !strings.HasSuffix(l, "  "+fixture) })
		}, outcome.Refused, readMetadata(t, backup).Models[0].File + " (" + readMetadata(t, backup).Models[0].Label + ")"},
		{"file unlisted", func(dir string) {
			rewriteSums(t, dir, func(l string) bool { return !strings.HasSuffix(l, "  "+victim) })
		}, outcome.Refused, "an incomplete backup"},
		{"manifest emptied", func(dir string) { rewriteSums(t, dir, func(string) bool { return false }) }, outcome.Refused, "an incomplete backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), filepath.Base(backup))
			copyInto(t, backup, src, func(string) bool { return true })
			tt.damage(src)
			dest := t.TempDir()
			_, err := s.Coordinator.Copy(context.Background(), copyOptions(src, dest))
			if err == nil {
				t.Fatal("the copy succeeded")
			}
			if got := outcome.Of(err).Status; got != tt.status || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("status %s, error %v; want %s naming %q", got, err, tt.status, tt.mention)
			}
			if left, _ := os.ReadDir(dest); len(left) != 0 {
				t.Fatalf("the destination holds %v", left)
			}
		})
	}
}

// An archive is copied as one object, its sum checked; a damaged one is refused.
func TestCopyArchive(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	archive := backupInto(t, s, p, t.TempDir(), true)
	dest := t.TempDir()
	rep, err := s.Coordinator.Copy(context.Background(), copyOptions(archive, dest))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(archive)
	got, err := os.ReadFile(filepath.Join(dest, filepath.Base(archive)))
	if err != nil || !bytes.Equal(got, want) || rep.Path != filepath.Join(dest, filepath.Base(archive)) {
		t.Fatalf("copied archive: %d bytes of %d, path %s, %v", len(got), len(want), rep.Path, err)
	}
	if names := backupNames(t, dest); len(names) != 1 {
		t.Fatalf("destination holds %v", names)
	}
	again, err := s.Coordinator.Copy(context.Background(), copyOptions(archive, dest))
	if err != nil || !again.AlreadyThere {
		t.Fatalf("copying again: %+v %v", again, err)
	}
	// To S3 and back: one object each way, the same bytes.
	s3 := s3test.Start(t, nil, "offsite")
	there, err := s.Coordinator.Copy(context.Background(), copyOptions(archive, s3.URL("offsite", "archives", "")))
	if err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, s3, "offsite", "archives"); len(keys) != 1 || keys[0] != filepath.Base(archive) {
		t.Fatalf("the S3 destination holds %v", keys)
	}
	home := t.TempDir()
	if _, err := s.Coordinator.Copy(context.Background(), copyOptions(there.Path, home)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(home, filepath.Base(archive))); !bytes.Equal(got, want) {
		t.Fatalf("the archive back from S3 differs (%d bytes of %d)", len(got), len(want))
	}
	bad := filepath.Join(t.TempDir(), filepath.Base(archive))
	damaged := bytes.Clone(want)
	damaged[len(damaged)/2] ^= 1
	os.WriteFile(bad, damaged, 0o600)
	if _, err := s.Coordinator.Copy(context.Background(), copyOptions(bad, t.TempDir())); outcome.Of(err).Status != outcome.Refused {
		t.Fatalf("a damaged archive: %v", err)
	}
	// An entry the manifest does not list is refused at its header, not read to its stated
	// end first (here 8 GiB, of which the archive holds a few bytes).
	os.WriteFile(bad, withUnlistedEntry(t, want, 8<<30), 0o600)
	_, err = s.Coordinator.Copy(context.Background(), copyOptions(bad, t.TempDir()))
	if outcome.Of(err).Status != outcome.Refused || !strings.Contains(fmt.Sprint(err), "files/unlisted is in the archive but not in SHA256SUMS") {
		t.Fatalf("an archive with an unlisted entry: %v", err)
	}
}

// withUnlistedEntry returns the .tar.gz archive with one more entry, files/unlisted, whose
// header states size bytes and which holds a few.
func withUnlistedEntry(t *testing.T, archive []byte, size int64) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	top := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		top, _, _ = strings.Cut(hdr.Name, "/")
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: top + "/files/unlisted", Mode: 0o600, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("a few bytes"))
	tw.Flush()
	zw.Close() // the entry is cut short: its stated size is never read
	return out.Bytes()
}

// s3Requests counts the requests on object-store keys (objects/…) by kind.
type s3Requests struct {
	gets, puts, copies atomic.Int64
	// present is the last list of objects present a copy wrote into its staging area.
	present atomic.Value
}

func (c *s3Requests) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/present-objects.jsonl") {
			body, _ := io.ReadAll(r.Body)
			c.present.Store(string(body))
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if strings.Contains(r.URL.Path, "/"+layout.ObjectsDir+"/") {
			switch {
			case r.Header.Get("X-Amz-Copy-Source") != "":
				c.copies.Add(1)
			case r.Method == http.MethodGet:
				c.gets.Add(1)
			case r.Method == http.MethodPut:
				c.puts.Add(1)
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (c *s3Requests) reset() { c.gets.Store(0); c.puts.Store(0); c.copies.Store(0) }

// objectKeys lists the keys under prefix in a bucket of the fake S3.
func objectKeys(t *testing.T, s3 *s3test.Server, bucket, prefix string) []string {
	t.Helper()
	return bucketKeys(t, s3.URL(bucket, prefix, ""))
}

// bucketKeys lists every key of the storage at url (a folder or an S3 URL).
func bucketKeys(t *testing.T, url string) []string {
	t.Helper()
	b, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var keys []string
	if err := b.Walk(context.Background(), "", func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A local backup copied to S3 goes into the destination's object store (no files/ under the
// backup's prefix); copied on to another bucket of the same service it is copied
// server-side, no file's bytes read by the worker; copied back to a folder it is the
// original, and restores. A second backup copied to S3 uploads only what changed.
func TestCopyThroughS3ObjectStore(t *testing.T) {
	var count s3Requests
	s3 := s3test.Start(t, count.wrap, "east", "west")
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	ctx := context.Background()
	// With a file index: the copies are then the backup byte for byte (a self-indexed one
	// gains an index in an object store: TestCopySelfIndexedToS3).
	first := backupIndexedInto(t, s, p, t.TempDir())
	name := filepath.Base(first)
	files := storageFiles(t, first)

	east := s3.URL("east", "nightly", "")
	rep, err := s.Coordinator.Copy(ctx, copyOptions(first, east))
	if err != nil {
		t.Fatal(err)
	}
	objects := objectKeys(t, s3, "east", "nightly/"+layout.ObjectsDir)
	if len(objects) == 0 || len(objects) > len(files) || count.puts.Load() != int64(len(objects)) {
		t.Fatalf("%d objects stored by %d PUTs for %d files", len(objects), count.puts.Load(), len(files))
	}
	for _, k := range objectKeys(t, s3, "east", "nightly/"+name) {
		if strings.HasPrefix(k, layout.FilesDir+"/") || strings.HasPrefix(k, layout.StagingPrefix) {
			t.Fatalf("the S3 copy holds %s", k)
		}
	}

	count.reset()
	west := s3.URL("west", "offsite", "")
	if _, err := s.Coordinator.Copy(ctx, copyOptions(rep.Path, west)); err != nil {
		t.Fatal(err)
	}
	if count.gets.Load() != 0 || count.puts.Load() != 0 || count.copies.Load() < int64(len(objects)) {
		t.Fatalf("S3 to S3: %d GETs and %d PUTs of objects, %d server-side copies for %d objects", count.gets.Load(), count.puts.Load(), count.copies.Load(), len(objects))
	}

	back := t.TempDir()
	rep, err = s.Coordinator.Copy(ctx, copyOptions(storageJoin(west, name), back))
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(back, name)
	checkCopyOf(t, first, local, storageJoin(west, name))
	if m := readMetadata(t, local); m.Files.Store != "" {
		t.Fatalf("a local copy with files.store %q", m.Files.Store)
	}
	target := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: local}); err != nil {
		t.Fatal(err)
	}
	compareWithBackup(t, first, target)

	changed := strings.TrimPrefix(files[len(files)/2], layout.FilesDir+"/")
	os.WriteFile(filepath.Join(p.storage, filepath.FromSlash(changed)), []byte("changed since the first backup"), 0o644)
	// Into the first one's folder: a backup taken in the same second elsewhere would have the
	// same name, which east already holds with another manifest (a refusal, not this test's).
	second := backupIndexedInto(t, s, p, filepath.Dir(first))
	count.reset()
	rep, err = s.Coordinator.Copy(ctx, copyOptions(second, east))
	if err != nil {
		t.Fatal(err)
	}
	if count.puts.Load() != 1 || rep.Reused != int64(len(files)-1) || rep.Copied != 1 {
		t.Fatalf("second copy to S3: %d PUTs of objects, %d files reused and %d copied of %d", count.puts.Load(), rep.Reused, rep.Copied, len(files))
	}
	// What it found stored was named in its staging area while it ran, where a prune's mark
	// finds the runs in progress: every object but the changed file's.
	present, _ := count.present.Load().(string)
	if n := strings.Count(present, "\n"); n == 0 || n > len(objects) {
		t.Fatalf("the second copy named %d objects present, of %d stored:\n%.300s", n, len(objects), present)
	}
	var missing []string
	for _, k := range objects {
		if !strings.Contains(present, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 1 { // the changed file's old content, which the second backup does not hold
		t.Errorf("objects stored before the second copy and not named present: %q", missing)
	}
}

// storageJoin is the location of name under an s3:// location with parameters.
func storageJoin(loc, name string) string { return storage.Join(loc, name) }

// A destination that cannot be read where the copy looks for a backup of the same name (here
// it refuses access) fails the copy as a storage that is down does, naming the destination,
// instead of refusing it as if another backup of that name stood in the way.
func TestCopyDestinationUnreadable(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backup := backupInto(t, s, p, t.TempDir(), false)
	name := filepath.Base(backup)
	s3 := s3test.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.URL.Path, "/"+name) {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "offsite")
	_, err := s.Coordinator.Copy(context.Background(), copyOptions(backup, s3.URL("offsite", "nightly", "")))
	if err == nil || outcome.Of(err).Status == outcome.Refused || strings.Contains(err.Error(), "already holds") || !strings.Contains(err.Error(), "nothing was copied") {
		t.Fatalf("copy into an unreadable destination: %v (%s); want a failure saying nothing was copied, not a refusal", err, outcome.Of(err).Status)
	}
}

// rewriteSums keeps the lines of dir's SHA256SUMS that keep says to, and puts the new sum in
// its metadata's manifest_sha256, as someone covering their tracks would.
func rewriteSums(t *testing.T, dir string, keep func(line string) bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l != "" && keep(strings.TrimSuffix(l, "\n")) {
			out.WriteString(l)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, layout.FileSums), []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, layout.FileMetadata))
	if err != nil || json.Unmarshal(raw, &meta) != nil {
		t.Fatalf("read metadata: %v", err)
	}
	sum := sha256.Sum256([]byte(out.String()))
	meta["manifest_sha256"] = hex.EncodeToString(sum[:])
	raw, _ = json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(dir, layout.FileMetadata), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Nightly copies of an S3 object-store backup chain into a folder: the second copy reads from
// the object store only the file that changed and the one added, hard-links the others to
// the first copy, and its report and metadata count the storage files as the backup does
// (new + reused = the backup's files; its fixtures and manifest are written, not counted).
func TestCopyObjectStoreToLocalIncremental(t *testing.T) {
	var count s3Requests
	s3 := s3test.Start(t, count.wrap, "east")
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	ctx := context.Background()
	east, dest := s3.URL("east", "nightly", ""), t.TempDir()

	first := backupInto(t, s, p, east, false)
	if _, err := s.Coordinator.Copy(ctx, copyOptions(first, dest)); err != nil {
		t.Fatal(err)
	}
	copy1 := filepath.Join(dest, path.Base(strings.Split(first, "?")[0]))
	files := storageFiles(t, copy1)
	changed, gone := files[len(files)/2], files[len(files)/3]
	for rel, data := range map[string]string{changed: "changed since the first backup", "files/added-after-the-first.txt": "added since the first backup"} {
		if err := os.WriteFile(filepath.Join(p.storage, filepath.FromSlash(strings.TrimPrefix(rel, layout.FilesDir+"/"))), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(p.storage, filepath.FromSlash(strings.TrimPrefix(gone, layout.FilesDir+"/")))); err != nil {
		t.Fatal(err)
	}

	second := backupInto(t, s, p, east, false)
	count.reset()
	rep, err := s.Coordinator.Copy(ctx, copyOptions(second, dest))
	if err != nil {
		t.Fatal(err)
	}
	copy2 := rep.Path
	unchanged := int64(len(files) - 2) // neither changed nor gone
	if count.gets.Load() != 2 || rep.Reused != unchanged || rep.Copied != 2 || rep.Written <= rep.Copied {
		t.Fatalf("second copy: %d GETs of objects; copied %d, reused %d, written %d; want 2 GETs, 2 copied, %d reused, more written (fixtures, manifest)",
			count.gets.Load(), rep.Copied, rep.Reused, rep.Written, unchanged)
	}
	m := readMetadata(t, copy2)
	if m.Files.Base != filepath.Base(copy1) || m.Files.Reused.Files != unchanged || m.Files.New.Files != 2 ||
		m.Files.New.Bytes+m.Files.Reused.Bytes != m.Files.Bytes || m.Files.New != (layout.FileCount{Files: rep.Copied, Bytes: rep.Bytes}) {
		t.Fatalf("metadata files: count %d (%d bytes), base %q, new %+v, reused %+v", m.Files.Count, m.Files.Bytes, m.Files.Base, m.Files.New, m.Files.Reused)
	}
	linked := 0
	for _, f := range storageFiles(t, copy2) {
		a, errA := os.Stat(filepath.Join(copy1, f))
		b, err := os.Stat(filepath.Join(copy2, f))
		if err != nil {
			t.Fatal(err)
		}
		if errA == nil && os.SameFile(a, b) {
			linked++
		}
	}
	if linked != int(unchanged) {
		t.Fatalf("%d files of the second copy are links to the first, want %d", linked, unchanged)
	}
	checkCopyOf(t, copy2, copy2, second)
	target := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: copy2}); err != nil {
		t.Fatal(err)
	}
	compareWithBackup(t, copy2, target)
}
