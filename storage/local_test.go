package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/storage/storagetest"
)

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) *storage.Bucket {
		b, err := storage.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestLocalConformanceFileURL(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) *storage.Bucket {
		b, err := storage.Open(context.Background(), "file://"+filepath.ToSlash(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func openLocal(t *testing.T, dir string, opts ...storage.Option) *storage.Bucket {
	t.Helper()
	b, err := storage.Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A bucket opened with DeferSync (a staging area) makes its files durable with Sync; what it
// commits is the same as a plain bucket's.
func TestLocalDeferSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openLocal(t, dir, storage.DeferSync())
	mtime := time.Date(2022, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	storagetest.Put(t, b, "a/b/long", []byte("a long first version"), storage.Object{})
	storagetest.Put(t, b, "a/b/long", []byte("short"), storage.Object{Mode: 0o600, ModTime: mtime})
	if got, o := storagetest.Get(t, b, "a/b/long"); string(got) != "short" || o.Mode != 0o600 || !o.ModTime.Equal(mtime) {
		t.Errorf("after overwrite: %q, mode %o, time %v", got, o.Mode, o.ModTime)
	}
	w, err := b.Create(ctx, "a/b/aborted", storage.Object{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil { // nothing new: nothing to do
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a", "b"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "long" {
		t.Errorf("folder holds %v, %v; want the one committed file, no temporary or aborted one", entries, err)
	}
	// A plain bucket has nothing to sync.
	if err := openLocal(t, dir).Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// Folders are kept open between writes; one removed meanwhile, through the bucket or behind
// its back, is made again on the next write.
func TestLocalFolderRemovedBetweenWrites(t *testing.T) {
	for _, opts := range [][]storage.Option{nil, {storage.DeferSync()}} {
		ctx := context.Background()
		dir := t.TempDir()
		b := openLocal(t, dir, opts...)
		storagetest.Put(t, b, "d/e/1", []byte("1"), storage.Object{})
		if err := b.RemoveAll(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		storagetest.Put(t, b, "d/e/2", []byte("2"), storage.Object{})
		if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
			t.Fatal(err)
		}
		storagetest.Put(t, b, "d/e/3", []byte("3"), storage.Object{})
		if got, _ := storagetest.Get(t, b, "d/e/3"); string(got) != "3" {
			t.Errorf("d/e/3 = %q", got)
		}
		if keys := storagetest.Keys(t, b, ""); len(keys) != 1 || keys[0] != "d/e/3" {
			t.Errorf("Walk = %q, want [d/e/3]", keys)
		}
	}
}

// A symlink inside the folder cannot take a read or a write outside it, whether or not the
// folder it stands for was opened before.
func TestLocalSymlinkDoesNotEscape(t *testing.T) {
	ctx := context.Background()
	for _, opts := range [][]storage.Option{nil, {storage.DeferSync()}} {
		dir, outside := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		b := openLocal(t, dir, opts...)
		storagetest.Put(t, b, "in/ok", []byte("ok"), storage.Object{}) // "in" is open now
		if err := os.RemoveAll(filepath.Join(dir, "in")); err != nil {
			t.Fatal(err)
		}
		for _, link := range []string{"in", "link"} {
			if err := os.Symlink(outside, filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Put(ctx, link+"/new", strings.NewReader("x"), storage.Object{}); err == nil {
				t.Errorf("Put(%s/new) through a symlink out of the folder succeeded", link)
			}
			if r, _, err := b.Open(ctx, link+"/secret"); err == nil {
				r.Close()
				t.Errorf("Open(%s/secret) through a symlink out of the folder succeeded", link)
			}
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Errorf("the outside folder holds %v, want only its own file", entries)
		}
	}
}

// A local folder is walked in byte order of its keys, which is not the order of each folder's
// names: "a.txt" comes before "a/b" ('.' < '/'), "a/b" before "a0". The backup's planner joins
// the listing with a base's sorted manifest as it comes, relying on it.
func TestLocalWalkKeyOrder(t *testing.T) {
	dir := t.TempDir()
	// "a" and "a/b" are folders; each name sorts differently among its folder's names.
	keys := []string{"a b", "a-b", "a.txt", "a/b.c", "a/b/c", "a/b0", "a0", "ab/x", "b/.hidden", "b/c/d/e", "b/c.d", "b/c0", "caf\xe9/x", "z\xff"}
	for _, k := range keys {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := openLocal(t, dir).Walk(context.Background(), "", func(o storage.Object) error {
		got = append(got, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Errorf("walked\n%q\nwant, in byte order,\n%q", got, want)
	}
}

// TestOpenRegular: a regular file opens; a FIFO (which a plain open would wait on for ever,
// with no writer) and a folder are refused at once with a SpecialError naming them.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file, fifo := filepath.Join(dir, "SHA256SUMS"), filepath.Join(dir, "db_books_book.json")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, kind string
		missing          bool
	}{
		{"regular file", file, "", false},
		{"FIFO", fifo, "fifo", false},
		{"folder", dir, "folder", false},
		{"missing", filepath.Join(dir, "gone"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				f   *os.File
				err error
			)
			returnsWithin(t, 10*time.Second, "OpenRegular("+tt.path+")", func() { f, err = storage.OpenRegular(tt.path) })
			var special *storage.SpecialError
			switch {
			case tt.missing:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("err = %v, want not exist", err)
				}
			case tt.kind == "":
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			case !errors.As(err, &special) || !errors.Is(err, storage.ErrNotRegular) || special.Kind != tt.kind || !strings.Contains(err.Error(), tt.path):
				t.Fatalf("err = %v, want a %s refused by name", err, tt.kind)
			}
		})
	}
}

// ReadRegular reads a small file whole: up to its limit exactly; one byte more, a FIFO or a
// folder is refused at once, naming the file; a missing file is fs.ErrNotExist.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	full, over, fifo := filepath.Join(dir, "backup_key.age"), filepath.Join(dir, "backup_metadata.json"), filepath.Join(dir, "sidecar.json")
	if err := os.WriteFile(full, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, []byte("0123456789x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"at the limit", full, ""},
		{"over the limit", over, "larger than 10 bytes"},
		{"FIFO", fifo, "is a fifo"},
		{"folder", dir, "is a folder"},
		{"missing", filepath.Join(dir, "gone"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				data []byte
				err  error
			)
			returnsWithin(t, 10*time.Second, "ReadRegular("+tt.path+")", func() { data, err = storage.ReadRegular(tt.path, 10) })
			switch {
			case tt.want == "":
				if err != nil || string(data) != "0123456789" {
					t.Fatalf("ReadRegular = %q, %v", data, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path):
				t.Fatalf("err = %v, want %q naming %s", err, tt.want, tt.path)
			case tt.name == "missing" && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("err = %v, want fs.ErrNotExist", err)
			case tt.name == "over the limit" && storage.ErrorCode(err) != storage.CodeInvalid:
				t.Fatalf("err = %v: code %v, want CodeInvalid", err, storage.ErrorCode(err))
			}
		})
	}
}

// A name a file system cannot give (a file and a folder of one name, as an S3 source may hold
// "a" and "a/b") is CodeConflict, naming the key, whichever of the two is written first.
func TestLocalNameConflict(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string) error {
		w, err := b.Create(ctx, key, storage.Object{})
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte(key)); err != nil {
			w.Abort()
			return err
		}
		return w.Commit()
	}
	for _, pair := range [][2]string{{"a", "a/b"}, {"c/d", "c"}} {
		if err := put(pair[0]); err != nil {
			t.Fatal(err)
		}
		err := put(pair[1])
		if storage.ErrorCode(err) != storage.CodeConflict || !strings.Contains(err.Error(), pair[1]) {
			t.Errorf("%s after %s: err = %v (code %v), want a name conflict naming it", pair[1], pair[0], err, storage.ErrorCode(err))
		}
	}
	if got, _, err := b.Open(ctx, "a"); err != nil {
		t.Errorf("the file written first is gone: %v", err)
	} else {
		got.Close()
	}
	// A folder that is a link (to anywhere) is never written through, and the error says so.
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := put("linked/x"); storage.ErrorCode(err) != storage.CodeConflict || !strings.Contains(err.Error(), "linked is a symbolic link") {
		t.Errorf("linked/x: err = %v, want it refused as written through a link", err)
	}
}

// returnsWithin runs fn and fails the test if it has not returned after limit: opening a FIFO
// as a file would wait for ever.
func returnsWithin(t *testing.T, limit time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s still waits after %s", what, limit)
	}
}

// A local walk tells of the folders a backup's files do not bring back: an empty one, and one
// whose permissions differ from the storage folder's, each with its mode; the files are listed
// as ever.
func TestLocalWalkSpecialFolders(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"media/private", "media/empty", "media/public", "uploads/2025/01", "content/a"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"media/private/contract.pdf", "media/public/a.png", "content/a/1.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "media/private"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		prefix      string
		files, said []string
	}{
		{"", []string{"content/a/1.json", "media/private/contract.pdf", "media/public/a.png"},
			[]string{"folder permissions media/private/ 0700 own", "empty folder media/empty/ 0755", "empty folder uploads/2025/01/ 0755"}},
		{"media/", []string{"media/private/contract.pdf", "media/public/a.png"},
			[]string{"folder permissions media/private/ 0700 own", "empty folder media/empty/ 0755"}},
		{"content/", []string{"content/a/1.json"}, nil},
	} {
		var files, said []string
		err := b.WalkSpecial(context.Background(), tt.prefix, func(o storage.Object) error {
			files = append(files, o.Key)
			return nil
		}, func(sp storage.Special) error {
			told := fmt.Sprintf("%s %s %04o", sp.Kind, sp.Key, sp.Mode)
			if sp.OwnMode {
				told += " own"
			}
			said = append(said, told)
			if !strings.Contains(sp.Warning(), sp.Key) {
				t.Errorf("warning %q does not name %s", sp.Warning(), sp.Key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(said)
		want := slices.Sorted(slices.Values(tt.said))
		if !slices.Equal(files, tt.files) || !slices.Equal(said, want) {
			t.Errorf("prefix %q: files %q, told %q; want %q and %q", tt.prefix, files, said, tt.files, want)
		}
	}
}
