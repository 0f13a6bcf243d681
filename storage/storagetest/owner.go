package storagetest

import (
	"os"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
)

// OwnerOf returns the user and group that own the local file name, failing the test when
// they cannot be read.
func OwnerOf(t testing.TB, name string) (uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, ok := storage.FileOwner(fi)
	if !ok {
		t.Fatalf("no owner known for %s", name)
	}
	return uid, gid
}
