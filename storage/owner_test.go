package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/storage/storagetest"
)

// requireRoot skips a test of giving files away, which only root may do (CI runs as root).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root gives files to another owner")
	}
}

// A bucket opened with GiveToFolderOwner by root gives every file, link and folder it makes to
// its root folder's owner and group; without the option, or in a folder of root's, what root
// makes stays root's.
func TestGiveToFolderOwner(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	const uid, gid = 4242, 4343
	for _, tc := range []struct {
		name       string
		folderUID  int
		opts       []storage.Option
		wantUID    int
		wantGID    int
		wantsOwner bool
	}{
		{"given to the folder's owner", uid, []storage.Option{storage.GiveToFolderOwner()}, uid, gid, true},
		{"without the option", uid, nil, 0, 0, false},
		{"a folder of root's", 0, []storage.Option{storage.GiveToFolderOwner()}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, privDir := t.TempDir(), t.TempDir()
			folderGID := gid
			if tc.folderUID == 0 {
				folderGID = 0
			}
			if err := os.Chown(dir, tc.folderUID, folderGID); err != nil {
				t.Fatal(err)
			}
			b := openBucket(t, dir, tc.opts...)
			priv := openBucket(t, privDir)
			if _, err := b.Put(ctx, "a/b/written.txt", strings.NewReader("written"), storage.Object{Mode: 0o640}); err != nil {
				t.Fatal(err)
			}
			if _, err := priv.Put(ctx, "copy.txt", strings.NewReader("linked"), storage.Object{}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.LinkFromAs(ctx, priv, "copy.txt", "c/linked.txt", storage.Object{Mode: 0o644}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"a", "a/b", "a/b/written.txt", "c", "c/linked.txt"} {
				if u, g := storagetest.OwnerOf(t, filepath.Join(dir, name)); u != tc.wantUID || g != tc.wantGID {
					t.Errorf("%s belongs to %d:%d, want %d:%d", name, u, g, tc.wantUID, tc.wantGID)
				}
			}
			if fi, _ := os.Stat(filepath.Join(dir, "a/b/written.txt")); fi.Mode().Perm() != 0o640 {
				t.Errorf("written.txt has mode %v, want 0640 (its owner given first)", fi.Mode().Perm())
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			if got := storage.OwnerOf(root); (got != nil) != (tc.folderUID != 0) {
				t.Errorf("OwnerOf = %+v", got)
			}
			if err := storage.OwnerOf(root).MkdirAll(root, "d/e/", 0o750); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"d", "d/e"} {
				fi, err := os.Lstat(filepath.Join(dir, name))
				if err != nil || !fi.IsDir() {
					t.Fatalf("%s not made: %v", name, err)
				}
				wantUID := 0
				if tc.folderUID != 0 {
					wantUID = uid
				}
				if u, _ := storagetest.OwnerOf(t, filepath.Join(dir, name)); u != wantUID {
					t.Errorf("MkdirAll: %s belongs to %d, want %d", name, u, wantUID)
				}
			}
		})
	}
}

// MkdirAll with an owner stops at a file in the way, as os.Root.MkdirAll does.
func TestOwnerMkdirAllFileInTheWay(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	o := &storage.Owner{UID: 4242, GID: 4242}
	if err := o.MkdirAll(root, "f/g", 0o755); err == nil {
		t.Fatal("made a folder under a file")
	}
	if err := o.MkdirAll(root, "f", 0o755); err == nil {
		t.Fatal("a file stands where the folder should be, and MkdirAll said it was made")
	}
	if fi, err := os.Lstat(filepath.Join(dir, "f")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the file in the way changed: %v %v", fi, err)
	}
}
