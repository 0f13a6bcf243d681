package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// TestIncrementalSelfIndexedBase: a local backup of a local folder has no file index; the
// next one takes a file as unchanged only when its base copy still has the source's size and
// modification time. A base copy rewritten or removed since, one the base lists as changed
// while it was read, or a source file rewritten with an earlier time (which the plan, comparing
// times with the base's start, cannot tell from an unchanged one: the worker's check of the
// linked copy does) is copied again, and every backup restores its own state.
func TestIncrementalSelfIndexedBase(t *testing.T) {
	s := newIncStorage(t)
	s.put("content/a.json", "alpha")
	s.put("content/b.json", "bravo")
	s.put("content/c.json", "charlie")
	s.put("content/d.json", "delta")
	s.put("images/e.png", "echo")
	s.put("images/f.png", "foxtrot")
	c := filesSession(t, s)
	dir := t.TempDir()
	first := filesBackup(t, c, s, dir, nil)
	checkIndexed(t, first.Path, readMetadata(t, first.Path), false)

	// a is unchanged; b's base copy is rewritten (a new time); c's is removed; d is listed
	// as changed while the base read it; e changes at the source.
	copyOf := func(key string) string { return filepath.Join(first.Path, layout.FilesDir, filepath.FromSlash(key)) }
	if err := os.WriteFile(copyOf("content/b.json"), []byte("BRAVO"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copyOf("content/b.json"), time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(copyOf("content/c.json")); err != nil {
		t.Fatal(err)
	}
	meta := readMetadata(t, first.Path)
	meta.Files.ChangedDuringBackup = []string{layout.FilesDir + "/content/d.json"}
	data, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(first.Path, layout.FileMetadata), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s.put("images/e.png", "echo, changed")
	s.put("images/f.png", "FOXTROT")
	backdated := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(s.dir, "images", "f.png"), backdated, backdated); err != nil {
		t.Fatal(err)
	}
	want := treeFiles(t, s.dir)

	second := filesBackup(t, c, s, dir, nil)
	if second.Base != filepath.Base(first.Path) || second.Reused.Files != 1 || second.New.Files != 5 {
		t.Fatalf("base %q new %+v reused %+v; want the first as base, only content/a.json reused", second.Base, second.New, second.Reused)
	}
	if !sameInode(t, first.Path, second.Path, "content/a.json") {
		t.Fatal("content/a.json is not linked to the base's copy")
	}
	for _, k := range []string{"content/b.json", "content/d.json", "images/e.png", "images/f.png"} {
		if sameInode(t, first.Path, second.Path, k) {
			t.Fatalf("%s is linked to the base's copy", k)
		}
	}
	checkIndexed(t, second.Path, readMetadata(t, second.Path), false)
	checkBackupIntact(t, second.Path)
	sameTree(t, "second backup restored", restoreFiles(t, second.Path), want)

	// Nothing changed: the third links every file to the second's copies.
	third := filesBackup(t, c, s, dir, nil)
	if third.Base != filepath.Base(second.Path) || third.Reused.Files != 6 || third.New.Files != 0 {
		t.Fatalf("third: base %q new %+v reused %+v; want everything reused", third.Base, third.New, third.Reused)
	}
}

// TestCopySelfIndexedToS3: a self-indexed backup copied into an S3 object store gets the
// file index that store's readers need (listed in its SHA256SUMS, the manifest's sum in its
// metadata), and restores from there.
func TestCopySelfIndexedToS3(t *testing.T) {
	s3 := s3test.Start(t, nil, "east")
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	ctx := context.Background()
	first := backupInto(t, s, p, t.TempDir(), false)
	checkIndexed(t, first, readMetadata(t, first), false)

	east := s3.URL("east", "nightly", "")
	rep, err := s.Coordinator.Copy(ctx, copyOptions(first, east))
	if err != nil {
		t.Fatal(err)
	}
	back := t.TempDir()
	if _, err := s.Coordinator.Copy(ctx, copyOptions(rep.Path, back)); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(back, filepath.Base(first))
	sha256sumCheck(t, local)
	if m := readMetadata(t, local); m.Files.Index != layout.FileIndexGz || m.Files.SelfIndexed {
		t.Fatalf("the copy through S3: files.index %q, self_indexed %v", m.Files.Index, m.Files.SelfIndexed)
	}
	for _, src := range []string{rep.Path, local} {
		target := emptyTarget(t, database.SQLite)
		if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: src, TempDir: t.TempDir()}); err != nil {
			t.Fatalf("restore %s: %v", src, err)
		}
		compareWithBackup(t, first, target)
	}
}
