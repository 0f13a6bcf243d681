package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
