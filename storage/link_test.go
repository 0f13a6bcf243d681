package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
)

func openBucket(t *testing.T, loc string, opts ...storage.Option) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), loc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// LinkFrom makes a hard link (one file, not a copy), replaces a name already taken (a task
// redone), and refuses with ErrNoLink what it cannot link: a missing source, an S3 bucket.
func TestLinkFrom(t *testing.T) {
	ctx := context.Background()
	baseDir, stageDir := t.TempDir(), t.TempDir()
	base := openBucket(t, baseDir)
	stage := openBucket(t, stageDir, storage.DeferSync())
	if _, err := base.Put(ctx, "old/files/a/b.txt", strings.NewReader("content"), storage.Object{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	// A copy already in place (a first attempt that copied) is replaced by the link.
	if _, err := stage.Put(ctx, "files/a/b.txt", strings.NewReader("a stale copy"), storage.Object{}); err != nil {
		t.Fatal(err)
	}
	for _, round := range []string{"over a copy", "again over the link"} {
		obj, err := stage.LinkFrom(ctx, base, "old/files/a/b.txt", "files/a/b.txt")
		if err != nil || obj.Size != int64(len("content")) {
			t.Fatalf("%s: link: %+v %v", round, obj, err)
		}
		fa, _ := os.Stat(filepath.Join(baseDir, "old/files/a/b.txt"))
		fb, err := os.Stat(filepath.Join(stageDir, "files/a/b.txt"))
		if err != nil || !os.SameFile(fa, fb) {
			t.Fatalf("%s: not one file: %v", round, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(stageDir, "files/a")); len(entries) != 1 {
		t.Fatalf("the folder holds %d entries, want the link alone", len(entries))
	}
	if err := stage.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	_, err := stage.LinkFrom(ctx, base, "old/files/gone.txt", "files/gone.txt")
	if !errors.Is(err, storage.ErrNoLink) || !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("missing source: %v, want ErrNoLink and ErrNotExist", err)
	}
	f := newFakeS3(t, nil, "bk")
	remote := openBucket(t, f.url("bk", "p", ""))
	if _, err := remote.LinkFrom(ctx, base, "old/files/a/b.txt", "files/a/b.txt"); !errors.Is(err, storage.ErrNoLink) {
		t.Errorf("into S3: %v, want ErrNoLink", err)
	}
	if _, err := stage.LinkFrom(ctx, base, "../escape", "files/x"); err == nil {
		t.Error("a key outside the bucket was linked")
	}
}

// Folders lists the top-level folders of a local folder and of an S3 prefix alike.
func TestFolders(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := newFakeS3(t, nil, "bk")
	for _, b := range []*storage.Bucket{openBucket(t, dir), openBucket(t, f.url("bk", "root", ""))} {
		for _, k := range []string{"backup_1/x", "backup_2/y/z", "loose.txt"} {
			if _, err := b.Put(ctx, k, strings.NewReader("x"), storage.Object{}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.Folders(ctx)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"backup_1", "backup_2"}) {
			t.Errorf("%s: folders %q, %v", b, got, err)
		}
	}
}

// A base's copy replaced by a symbolic link or a FIFO is not linked: the new name is removed
// again (fresh, or taking the place of a name already there, which stays as it was), and the
// error says why; a source folder removed and made again after it was kept open is found
// again.
func TestLinkFromRefusesSpecial(t *testing.T) {
	ctx := context.Background()
	baseDir, stageDir := t.TempDir(), t.TempDir()
	base := openBucket(t, baseDir)
	stage := openBucket(t, stageDir, storage.DeferSync())
	if _, err := base.Put(ctx, "old/files/real.txt", strings.NewReader("content"), storage.Object{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.txt", filepath.Join(baseDir, "old/files/link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(baseDir, "old/files/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := stage.Put(ctx, "files/taken", strings.NewReader("kept"), storage.Object{}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"old/files/link.txt", "old/files/fifo"} {
		for _, dst := range []string{"files/fresh", "files/taken"} {
			_, err := stage.LinkFrom(ctx, base, src, dst)
			var special *storage.SpecialError
			if !errors.Is(err, storage.ErrNoLink) || !errors.As(err, &special) {
				t.Errorf("link %s to %s: %v, want ErrNoLink and a SpecialError", src, dst, err)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(stageDir, "files/fresh")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files/fresh: %v, want nothing left", err)
	}
	if b, err := os.ReadFile(filepath.Join(stageDir, "files/taken")); err != nil || string(b) != "kept" {
		t.Errorf("files/taken: %q %v, want it kept", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(stageDir, "files")); len(entries) != 1 {
		t.Errorf("files/ holds %d entries, want files/taken alone (no temporary name left)", len(entries))
	}

	// The folder old/files is kept open by now; remove it and make it again.
	if err := os.RemoveAll(filepath.Join(baseDir, "old/files")); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Put(ctx, "old/files/real.txt", strings.NewReader("again"), storage.Object{}); err != nil {
		t.Fatal(err)
	}
	if obj, err := stage.LinkFrom(ctx, base, "old/files/real.txt", "files/again"); err != nil || obj.Size != int64(len("again")) {
		t.Fatalf("link from a folder made again: %+v %v", obj, err)
	}
}
