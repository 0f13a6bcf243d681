package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/messages"
)

// incStorage is a small platform storage whose state the test sets file by file, each file
// with its own modification time.
type incStorage struct {
	t     *testing.T
	dir   string
	clock time.Time
}

func newIncStorage(t *testing.T) *incStorage {
	t.Helper()
	return &incStorage{t: t, dir: filepath.Join(t.TempDir(), "media"), clock: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// put writes key with content and a modification time no other write had.
func (s *incStorage) put(key, content string) {
	s.t.Helper()
	s.clock = s.clock.Add(time.Minute)
	s.putAt(key, content, s.clock)
}

// putAt writes key with content and modification time mtime.
func (s *incStorage) putAt(key, content string, mtime time.Time) {
	s.t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		s.t.Fatal(err)
	}
}

func (s *incStorage) remove(key string) {
	s.t.Helper()
	if err := os.Remove(filepath.Join(s.dir, filepath.FromSlash(key))); err != nil {
		s.t.Fatal(err)
	}
}

// rename moves a file, keeping its modification time (as mv does).
func (s *incStorage) rename(from, to string) {
	s.t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(to))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(s.dir, filepath.FromSlash(from)), p); err != nil {
		s.t.Fatal(err)
	}
}

// filesSession runs files-only backups and restores of s.
func filesSession(t *testing.T, s *incStorage) *coordinator.Coordinator {
	t.Helper()
	sess := startSession(t, platformFixture{storage: s.dir}, 2, queue.Config{})
	return sess.Coordinator
}

func filesBackup(t *testing.T, c *coordinator.Coordinator, s *incStorage, dir string, adjust func(*coordinator.BackupOptions)) *coordinator.BackupReport {
	t.Helper()
	o := coordinator.BackupOptions{StorageURL: s.dir, BackupDir: dir, SkipDB: true, FilesPerTask: 3}
	if adjust != nil {
		adjust(&o)
	}
	rep, err := c.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return rep
}

// restoreFiles restores a files-only backup into an empty folder and returns its tree.
func restoreFiles(t *testing.T, backup string) map[string][]byte {
	t.Helper()
	target := filepath.Join(t.TempDir(), "restored")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	sess := startSession(t, platformFixture{storage: target}, 2, queue.Config{})
	_, err := sess.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{
		Source: backup, StorageURL: target, SkipDB: true, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("restore %s: %v", filepath.Base(backup), err)
	}
	return treeFiles(t, target)
}

// checkBackupIntact runs the backup's own checks: sha256sum -c and verify.
func checkBackupIntact(t *testing.T, backup string) {
	t.Helper()
	sha256sumCheck(t, backup)
	vr, err := verify.Verify(context.Background(), backup, verify.Options{})
	if err != nil || !vr.OK {
		t.Fatalf("%s does not verify: %v %v", filepath.Base(backup), err, vr.Problems)
	}
}

func sameTree(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s: %s is %q, want %q (present %v)", what, k, g, w, ok)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s should not be there", what, k)
		}
	}
}

// sameInode reports whether key is one file (a hard link) in both backups.
func sameInode(t *testing.T, a, b, key string) bool {
	t.Helper()
	fa, err := os.Stat(filepath.Join(a, layout.FilesDir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(filepath.Join(b, layout.FilesDir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// chainStep changes the storage before a backup and says which of the files are unchanged
// since the backup before it.
type chainStep struct {
	change    func(s *incStorage)
	unchanged []string
}

// TestIncrementalChainOfFive takes five backups of a changing storage: each after the first
// hard-links exactly the files unchanged since the one before, stores the rest, counts both,
// and restores its own state byte for byte; removing backups by hand or by prune leaves the
// others restorable and verified. The chain is taken self-indexed (the copies stand for the
// file index: a local folder into a local folder) and with a file index, as earlier versions
// wrote.
func TestIncrementalChainOfFive(t *testing.T) {
	t.Run("self-indexed", func(t *testing.T) { chainOfFive(t, false) })
	t.Run("file index", func(t *testing.T) { chainOfFive(t, true) })
}

func chainOfFive(t *testing.T, withIndex bool) {
	s := newIncStorage(t)
	steps := []chainStep{
		{change: func(s *incStorage) {
			s.put("content/1/a.json", "alpha")
			s.put("content/1/b.json", "bravo")
			s.put("content/2/c.json", "charlie")
			s.put("images/x.png", "x-ray image")
			s.put("images/y.png", "yankee image")
			s.put("media/audio/z.mp3", "zulu audio")
			s.put("top.txt", "a root file")
		}},
		{change: func(s *incStorage) {
			s.put("content/1/a.json", "alpha, longer now") // changed
			s.remove("images/y.png")                       // deleted
			s.rename("media/audio/z.mp3", "media/audio/z2.mp3")
			s.put("images/new.png", "new image")
		}, unchanged: []string{"content/1/b.json", "content/2/c.json", "images/x.png", "top.txt"}},
		{change: func(s *incStorage) {
			s.put("content/1/b.json", "BRAVO") // same size, new time
			s.remove("top.txt")
		}, unchanged: []string{"content/1/a.json", "content/2/c.json", "images/x.png", "images/new.png", "media/audio/z2.mp3"}},
		{change: func(s *incStorage) {
			s.put("top.txt", "a root file") // back, with a new time: copied again
			s.rename("content/2/c.json", "content/3/c.json")
		}, unchanged: []string{"content/1/a.json", "content/1/b.json", "images/x.png", "images/new.png", "media/audio/z2.mp3"}},
		{change: func(s *incStorage) {
			s.remove("images/x.png")
			s.put("images/y.png", "yankee again")
		}, unchanged: []string{"content/1/a.json", "content/1/b.json", "content/3/c.json", "images/new.png", "media/audio/z2.mp3", "top.txt"}},
	}
	c := filesSession(t, s)
	dir := t.TempDir()
	var backups []string
	var states []map[string][]byte
	for i, st := range steps {
		st.change(s)
		states = append(states, treeFiles(t, s.dir))
		rep := filesBackup(t, c, s, dir, func(o *coordinator.BackupOptions) { o.FileIndex = withIndex })
		checkChainStep(t, i, rep, backups, st, states[i], withIndex)
		backups = append(backups, rep.Path)
	}
	for i, b := range backups {
		checkBackupIntact(t, b)
		sameTree(t, filepath.Base(b)+" restored", restoreFiles(t, b), states[i])
	}

	// Deleting backups 1 and 3 by hand leaves the others complete.
	for _, i := range []int{0, 2} {
		if err := os.RemoveAll(backups[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 3, 4} {
		checkBackupIntact(t, backups[i])
		sameTree(t, filepath.Base(backups[i])+" restored after deletions", restoreFiles(t, backups[i]), states[i])
	}
	// A sixth backup bases itself on the newest that is left, then prune keeps the last two.
	six := filesBackup(t, c, s, dir, nil)
	if want := filepath.Base(backups[4]); six.Base != want || six.New.Files != 0 {
		t.Fatalf("sixth backup: base %q, new %d; want base %s and nothing new", six.Base, six.New.Files, want)
	}
	pruneLast(t, dir, 2)
	for _, b := range []string{backups[4], six.Path} {
		checkBackupIntact(t, b)
		sameTree(t, filepath.Base(b)+" restored after prune", restoreFiles(t, b), states[4])
	}
	if _, err := os.Stat(backups[3]); !os.IsNotExist(err) {
		t.Fatalf("prune --last 2 left %s (%v)", backups[3], err)
	}
}

// checkChainStep checks backup i of the chain: its base is the backup before, the unchanged
// files are links to that backup's copies and the others are not, and the counts agree.
func checkChainStep(t *testing.T, i int, rep *coordinator.BackupReport, backups []string, st chainStep, state map[string][]byte, withIndex bool) {
	t.Helper()
	meta := readMetadata(t, rep.Path)
	checkIndexed(t, rep.Path, meta, withIndex)
	wantBase := ""
	if i > 0 {
		wantBase = filepath.Base(backups[i-1])
	}
	var reusedBytes int64
	for _, k := range st.unchanged {
		reusedBytes += int64(len(state[k]))
	}
	wantReused := layout.FileCount{Files: int64(len(st.unchanged)), Bytes: reusedBytes}
	wantNew := layout.FileCount{Files: int64(len(state)) - wantReused.Files, Bytes: meta.Files.Bytes - reusedBytes}
	if meta.Files.Base != wantBase || meta.Files.Reused != wantReused || meta.Files.New != wantNew {
		t.Fatalf("backup %d: base %q new %+v reused %+v; want base %q new %+v reused %+v",
			i+1, meta.Files.Base, meta.Files.New, meta.Files.Reused, wantBase, wantNew, wantReused)
	}
	if rep.Base != wantBase || rep.Reused != wantReused {
		t.Fatalf("backup %d report: base %q reused %+v", i+1, rep.Base, rep.Reused)
	}
	if i == 0 {
		return
	}
	for k := range state {
		_, err := os.Stat(filepath.Join(backups[i-1], layout.FilesDir, filepath.FromSlash(k)))
		linked := err == nil && sameInode(t, backups[i-1], rep.Path, k)
		if want := slices.Contains(st.unchanged, k); linked != want {
			t.Errorf("backup %d: %s linked to the previous backup's copy: %v, want %v", i+1, k, linked, want)
		}
	}
}

// checkIndexed checks that a local backup has a file index, or is self-indexed and has none.
func checkIndexed(t *testing.T, backup string, meta *layout.Metadata, withIndex bool) {
	t.Helper()
	_, err := os.Stat(filepath.Join(backup, layout.FileIndexGz))
	if withIndex && (meta.Files.Index != layout.FileIndexGz || meta.Files.SelfIndexed || err != nil) {
		t.Fatalf("%s: files.index %q, self_indexed %v (%v); want an index", filepath.Base(backup), meta.Files.Index, meta.Files.SelfIndexed, err)
	}
	if !withIndex && (meta.Files.Index != "" || !meta.Files.SelfIndexed || !os.IsNotExist(err)) {
		t.Fatalf("%s: files.index %q, self_indexed %v (%v); want self-indexed", filepath.Base(backup), meta.Files.Index, meta.Files.SelfIndexed, err)
	}
}

// pruneLast runs prune keeping the n newest backups.
func pruneLast(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	d, err := retention.OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := retention.Prune(ctx, d, retention.Policy{Last: n}, retention.PruneOptions{}); err != nil {
		t.Fatalf("prune: %v", err)
	}
}

// TestIncrementalTamperedBaseNotUsed damages the newest backup's manifest or index in several
// ways: the next backup names it in a warning and copies every file instead.
func TestIncrementalTamperedBaseNotUsed(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, backup string)
		reason string
	}{
		{"index edited", func(t *testing.T, b string) {
			editFile(t, filepath.Join(b, layout.FileIndexGz), `"n":5`, `"n":6`)
		}, "files_index.jsonl.gz has sha256"},
		{"index edited and SHA256SUMS re-signed", func(t *testing.T, b string) {
			editFile(t, filepath.Join(b, layout.FileIndexGz), `"n":5`, `"n":6`)
			sum, _, err := layout.HashFile(context.Background(), filepath.Join(b, layout.FileIndexGz))
			if err != nil {
				t.Fatal(err)
			}
			rewriteSumsLine(t, b, layout.FileIndexGz, sum)
		}, "SHA256SUMS has sha256"},
		{"SHA256SUMS line added", func(t *testing.T, b string) {
			f, err := os.OpenFile(filepath.Join(b, layout.FileSums), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(strings.Repeat("0", 64) + "  files/extra\n")
			f.Close()
		}, "SHA256SUMS has sha256"},
		// Untrusted sizes: read as a stream, refused at the first line no manifest or index
		// holds, not held in memory (a sparse 64 GiB manifest; an index of one line).
		{"SHA256SUMS of one huge line", func(t *testing.T, b string) {
			if err := os.Truncate(filepath.Join(b, layout.FileSums), 64<<30); err != nil {
				t.Fatal(err)
			}
		}, "line longer than"},
		{"index missing", func(t *testing.T, b string) {
			if err := os.Remove(filepath.Join(b, layout.FileIndexGz)); err != nil {
				t.Fatal(err)
			}
		}, "files_index.jsonl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c, dir := filesPlatform(t, "content/a.json", "alpha", "images/b.png", "bravo")
			first := filesBackup(t, c, s, dir, withFileIndex)
			tc.damage(t, first.Path)
			second := filesBackup(t, c, s, dir, nil)
			if second.Base != "" || second.Reused.Files != 0 || second.New.Files != 2 {
				t.Fatalf("a damaged base was used: base %q new %+v reused %+v", second.Base, second.New, second.Reused)
			}
			wantWarning(t, second.Warnings, "base backup "+filepath.Base(first.Path)+" not used", tc.reason)
			if sameInode(t, first.Path, second.Path, "content/a.json") {
				t.Fatal("the second backup links into the damaged one")
			}
			checkBackupIntact(t, second.Path)
		})
	}
}

// A base whose index passes its manifest (re-signed) but is a gzip bomb of one line is found
// damaged at the first line, not read into memory: it is passed over with a warning naming it,
// and the backup is made without it.
func TestIncrementalIndexBombRefused(t *testing.T) {
	s := newIncStorage(t)
	s.put("content/a.json", "alpha")
	c := filesSession(t, s)
	dir := t.TempDir()
	first := filesBackup(t, c, s, dir, withFileIndex)
	b := first.Path
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte(" "), 64*messages.MaxEntryLine))
	zw.Close()
	if err := os.WriteFile(filepath.Join(b, layout.FileIndexGz), gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, _, err := layout.HashFile(context.Background(), filepath.Join(b, layout.FileIndexGz))
	if err != nil {
		t.Fatal(err)
	}
	rewriteSumsLine(t, b, layout.FileIndexGz, sum)
	manifest, _, err := layout.HashFile(context.Background(), filepath.Join(b, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	editFile(t, filepath.Join(b, layout.FileMetadata), readMetadata(t, b).ManifestSHA256, manifest)
	rep, err := c.Backup(context.Background(), coordinator.BackupOptions{StorageURL: s.dir, BackupDir: dir, SkipDB: true})
	if err != nil {
		t.Fatalf("backup on a base whose index is one 64 MiB line: %v", err)
	}
	if rep.Base != "" || rep.New.Files != 1 {
		t.Fatalf("backup on a damaged base: base %q, new %+v", rep.Base, rep.New)
	}
	wantWarning(t, rep.Warnings, "base backup "+filepath.Base(b)+" not used", "line longer than")
}

// withFileIndex has a backup write its file index where its copies would stand for it, as
// earlier versions did.
func withFileIndex(o *coordinator.BackupOptions) { o.FileIndex = true }

func wantWarning(t *testing.T, warnings []string, parts ...string) {
	t.Helper()
	for _, w := range warnings {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(w, p)
		}
		if ok {
			return
		}
	}
	t.Fatalf("no warning with %q in %q", parts, warnings)
}

func editFile(t *testing.T, p, old, new string) {
	t.Helper()
	b, err := os.ReadFile(p)
	gz := strings.HasSuffix(p, ".gz")
	if err == nil && gz {
		b, err = io.ReadAll(layout.DecompressIndex(bytes.NewReader(b)))
	}
	if err != nil || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q (%v)", p, old, err)
	}
	b = bytes.Replace(b, []byte(old), []byte(new), 1)
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		b = z.Bytes()
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewriteSumsLine sets file's sum in the backup's SHA256SUMS, leaving the metadata as it was.
func rewriteSumsLine(t *testing.T, backup, file, sum string) {
	t.Helper()
	p := filepath.Join(backup, layout.FileSums)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "  "+file) {
			lines[i] = sum + "  " + file
		}
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIncrementalChecksumAndFull: a file rewritten with the same size and modification time
// is taken as unchanged by default, stored anew with --checksum; --full links nothing; --base
// picks an older backup.
func TestIncrementalChecksumAndFull(t *testing.T) {
	s := newIncStorage(t)
	mtime := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	s.putAt("content/same.json", "version-1", mtime)
	s.put("images/keep.png", "kept")
	c := filesSession(t, s)
	dir := t.TempDir()
	first := filesBackup(t, c, s, dir, nil)
	s.putAt("content/same.json", "version-2", mtime) // same size, same time

	tests := []struct {
		name       string
		adjust     func(*coordinator.BackupOptions)
		wantReused int64
		wantSame   string // what content/same.json holds in the backup
	}{
		{"size and time", nil, 2, "version-1"},
		{"checksum", func(o *coordinator.BackupOptions) { o.Checksum = true }, 1, "version-2"},
		{"full", func(o *coordinator.BackupOptions) { o.Full = true }, 0, "version-2"},
		{"base named", func(o *coordinator.BackupOptions) { o.Base = filepath.Base(first.Path); o.Checksum = true }, 1, "version-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := filesBackup(t, c, s, dir, tc.adjust)
			if rep.Reused.Files != tc.wantReused {
				t.Fatalf("reused %d files, want %d (base %q)", rep.Reused.Files, tc.wantReused, rep.Base)
			}
			got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, "content", "same.json"))
			if err != nil || string(got) != tc.wantSame {
				t.Fatalf("content/same.json in the backup is %q (%v), want %q", got, err, tc.wantSame)
			}
			if linked := sameInode(t, first.Path, rep.Path, "images/keep.png"); linked != (tc.wantReused > 0) {
				t.Fatalf("images/keep.png linked to the first backup: %v", linked)
			}
			checkBackupIntact(t, rep.Path)
		})
	}
}

// TestIncrementalChecksumReadsTheBaseCopy: a base copy damaged since it was written, with its
// size and time kept (bit rot), is linked by a plain incremental backup (only verify finds it),
// but --checksum reads it as rsync -c does: the file is copied afresh from the intact source,
// with a warning naming the damaged copy, and the new backup verifies.
func TestIncrementalChecksumReadsTheBaseCopy(t *testing.T) {
	s := newIncStorage(t)
	s.put("content/a.json", "chapter one, as written")
	s.put("images/b.png", "an image")
	c := filesSession(t, s)
	dir := t.TempDir()
	first := filesBackup(t, c, s, dir, nil)
	copyPath := filepath.Join(first.Path, layout.FilesDir, "content", "a.json")
	fi, err := os.Stat(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, []byte("chapter one, as rotted!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copyPath, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rep := filesBackup(t, c, s, dir, func(o *coordinator.BackupOptions) { o.Checksum = true })
	if rep.Reused.Files != 1 || rep.New.Files != 1 {
		t.Fatalf("reused %d, new %d; want the image reused and the damaged copy's file copied anew", rep.Reused.Files, rep.New.Files)
	}
	if got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, "content", "a.json")); err != nil || string(got) != "chapter one, as written" {
		t.Fatalf("content/a.json in the new backup: %q (%v)", got, err)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "content/a.json") && strings.Contains(w, "afresh") }) {
		t.Errorf("no warning names the damaged earlier copy: %q", rep.Warnings)
	}
	checkBackupIntact(t, rep.Path)
}

// From an S3 storage, an unchanged object is told by its ETag and size, not its time: a second
// backup links the objects untouched and the one uploaded again with the same content, and
// stores anew the one rewritten (same size, new content).
func TestIncrementalS3Source(t *testing.T) {
	s3 := s3test.Start(t, nil, "media")
	mediaURL := s3.URL("media", "site", "")
	s3.Put(t, "media", "site/content/a.json", []byte("alpha"))
	s3.Put(t, "media", "site/images/b.png", []byte("bravo"))
	s3.Put(t, "media", "site/top.txt", []byte("top"))
	c := startSession(t, platformFixture{storage: mediaURL}, 2, queue.Config{}).Coordinator
	dir := t.TempDir()
	backup := func() *coordinator.BackupReport {
		t.Helper()
		rep, err := c.Backup(context.Background(), coordinator.BackupOptions{StorageURL: mediaURL, BackupDir: dir, SkipDB: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := backup()
	s3.Put(t, "media", "site/images/b.png", []byte("BRAVO"))
	s3.Put(t, "media", "site/top.txt", []byte("top")) // a new LastModified, the same ETag
	second := backup()
	if second.Base != filepath.Base(first.Path) || second.Reused.Files != 2 || second.New.Files != 1 {
		t.Fatalf("second backup: base %q new %+v reused %+v", second.Base, second.New, second.Reused)
	}
	if !sameInode(t, first.Path, second.Path, "content/a.json") || !sameInode(t, first.Path, second.Path, "top.txt") || sameInode(t, first.Path, second.Path, "images/b.png") {
		t.Fatal("the unchanged objects are not links to the first backup's copies, or the changed one is")
	}
	want := map[string][]byte{"content/a.json": []byte("alpha"), "images/b.png": []byte("BRAVO"), "top.txt": []byte("top")}
	sameTree(t, "second backup's files", treeFiles(t, filepath.Join(second.Path, layout.FilesDir)), want)
	checkBackupIntact(t, second.Path)
}

// A base copy that cannot be linked (gone since the base was taken: pruned meanwhile, or
// deleted by hand) is copied from the source instead and counted as new, not reused.
func TestIncrementalLinkFailureCopies(t *testing.T) {
	s := newIncStorage(t)
	s.put("content/a.json", "alpha")
	s.put("content/b.json", "bravo")
	c := filesSession(t, s)
	dir := t.TempDir()
	first := filesBackup(t, c, s, dir, nil)
	if err := os.Remove(filepath.Join(first.Path, layout.FilesDir, "content", "a.json")); err != nil {
		t.Fatal(err)
	}
	second := filesBackup(t, c, s, dir, nil)
	if second.Base != filepath.Base(first.Path) || second.Reused.Files != 1 || second.New.Files != 1 {
		t.Fatalf("base %q new %+v reused %+v; want one new (the copy), one reused", second.Base, second.New, second.Reused)
	}
	got, err := os.ReadFile(filepath.Join(second.Path, layout.FilesDir, "content", "a.json"))
	if err != nil || string(got) != "alpha" {
		t.Fatalf("content/a.json: %q, %v", got, err)
	}
	checkBackupIntact(t, second.Path)
}

// A base written by an earlier version, whose index is files_index.jsonl uncompressed, is
// still used: its unchanged files are linked, and the new backup's index is gzipped.
func TestIncrementalUncompressedIndexBase(t *testing.T) {
	s, c, dir := filesPlatform(t, "content/a.json", "alpha", "images/b.png", "bravo")
	first := filesBackup(t, c, s, dir, withFileIndex)
	uncompressIndex(t, first.Path)
	s.put("images/b.png", "bravo, changed")
	second := filesBackup(t, c, s, dir, nil)
	if second.Base != filepath.Base(first.Path) || second.Reused.Files != 1 || second.New.Files != 1 {
		t.Fatalf("base %q new %+v reused %+v; want the uncompressed-index backup as base, one reused", second.Base, second.New, second.Reused)
	}
	if !sameInode(t, first.Path, second.Path, "content/a.json") {
		t.Fatal("content/a.json is not linked to the base's copy")
	}
	checkIndexed(t, second.Path, readMetadata(t, second.Path), false)
	checkBackupIntact(t, second.Path)
}

// uncompressIndex turns a backup's index into the form earlier versions wrote: the JSON
// lines as files_index.jsonl, listed so in SHA256SUMS and its metadata, the manifest's sum
// updated.
func uncompressIndex(t *testing.T, backup string) {
	t.Helper()
	gz := filepath.Join(backup, layout.FileIndexGz)
	f, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(layout.DecompressIndex(f))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backup, layout.FileIndex), plain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gz); err != nil {
		t.Fatal(err)
	}
	sums := filepath.Join(backup, layout.FileSums)
	b, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "  "+layout.FileIndexGz) {
			h := sha256.Sum256(plain)
			lines[i] = hex.EncodeToString(h[:]) + "  " + layout.FileIndex
		}
	}
	manifest := []byte(strings.Join(lines, "\n"))
	if err := os.WriteFile(sums, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	meta := readMetadata(t, backup)
	h := sha256.Sum256(manifest)
	meta.Files.Index, meta.ManifestSHA256 = layout.FileIndex, hex.EncodeToString(h[:])
	if err := layout.WriteMetadata(backup, meta); err != nil {
		t.Fatal(err)
	}
}

// A base whose manifest's sum matches its metadata (both edited together), but whose lines
// break what a manifest this tool writes holds (a path out of order), is found damaged as the
// plan reads it: the newest such base is passed over with a warning naming it, and the plan is
// made again against the next older one, instead of every later backup failing.
func TestIncrementalDamagedBaseFoundWhileReadIsPassedOver(t *testing.T) {
	// With a file index, the sums of the files the index lists are read from the manifest as
	// the join asks for them: a stray line of a file no index entry names is never read, and
	// that base's copies are sound. Either way the third backup must succeed, whole.
	for _, tc := range []struct {
		name     string
		adjust   func(*coordinator.BackupOptions)
		detected bool
	}{{"self-indexed", nil, true}, {"with a file index", withFileIndex, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, dir := filesPlatform(t, "content/a.json", "alpha", "images/b.png", "bravo")
			older := filesBackup(t, c, s, dir, tc.adjust)
			time.Sleep(1100 * time.Millisecond) // backup names are per second
			newer := filesBackup(t, c, s, dir, tc.adjust)
			f, err := os.OpenFile(filepath.Join(newer.Path, layout.FileSums), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(strings.Repeat("0", 64) + "  files/aaa\n")
			f.Close()
			rewriteSums(t, newer.Path, func(string) bool { return true }) // the metadata re-signed
			time.Sleep(1100 * time.Millisecond)
			third := filesBackup(t, c, s, dir, tc.adjust)
			if third.Reused.Files != 2 {
				t.Fatalf("third backup: base %q, reused %+v; want all reused", third.Base, third.Reused)
			}
			if tc.detected {
				if third.Base != filepath.Base(older.Path) {
					t.Fatalf("third backup: base %q, want the older %s", third.Base, filepath.Base(older.Path))
				}
				wantWarning(t, third.Warnings, "base backup "+filepath.Base(newer.Path)+" not used", "files/aaa")
			}
			checkBackupIntact(t, third.Path)
		})
	}
}

// filesPlatform is a storage holding the given files (key, content, key, content, …), a session
// backing it up, and an empty backup folder.
func filesPlatform(t *testing.T, files ...string) (*incStorage, *coordinator.Coordinator, string) {
	t.Helper()
	s := newIncStorage(t)
	for i := 0; i+1 < len(files); i += 2 {
		s.put(files[i], files[i+1])
	}
	return s, filesSession(t, s), t.TempDir()
}

// TestIncrementalPassesOverABaseBeingPruned: a base that a prune is deleting (it holds the
// backup's lock alone) is not used, with a warning naming it; the backup takes the next older
// base, here none, so copies every file.
func TestIncrementalPassesOverABaseBeingPruned(t *testing.T) {
	s, c, dir := filesPlatform(t, "content/a.json", "alpha")
	first := filesBackup(t, c, s, dir, nil)
	release, err := layout.Claim(first.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	second := filesBackup(t, c, s, dir, nil)
	if second.Base != "" || second.Reused.Files != 0 {
		t.Fatalf("second backup based on %q, %d files reused; want no base while it is pruned", second.Base, second.Reused.Files)
	}
	if !slices.ContainsFunc(second.Warnings, func(w string) bool { return strings.Contains(w, "prune is deleting it") }) {
		t.Fatalf("warnings %q do not name the base being pruned", second.Warnings)
	}
}
