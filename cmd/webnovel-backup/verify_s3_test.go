package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/layout/objtest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// `verify s3://…` checks a backup on S3 as it checks a local one (restore's fetch into a
// private temporary folder), folder and archive alike, and finds a corrupted object there.
func TestVerifyS3(t *testing.T) {
	dir := sitePlatform(t)
	s3 := s3test.Start(t, nil, "backups")
	for i, compress := range []bool{false, true} {
		dest := s3.URL("backups", fmt.Sprintf("nightly%d", i), "")
		args := []string{"backup", "--backup-dir", dest}
		if compress {
			args = append(args, "--compress")
		}
		if code, out := cli(t, dir, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		name := onlyS3Backup(t, s3, fmt.Sprintf("nightly%d/", i))
		src := s3.URL("backups", fmt.Sprintf("nightly%d/%s", i, name), "")
		code, out, errOut := runSplit(t, "verify", src)
		if code != 0 || !strings.Contains(out, "Backup OK: 10 models") || !strings.Contains(out, "Verifying s3://backups/") {
			t.Fatalf("verify %s: exit %d\n%s%s", src, code, out, errOut)
		}
	}

	// A fixture deleted on S3 after the backup: verify names it and exits 1.
	name := onlyS3Backup(t, s3, "nightly0/")
	if _, err := s3.Backend.DeleteObject("backups", "nightly0/"+name+"/db_books_language.json"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runSplit(t, "verify", s3.URL("backups", "nightly0/"+name, ""))
	if code != 1 || !strings.Contains(out, "db_books_language.json") {
		t.Fatalf("verify of a corrupted S3 backup: exit %d\n%s%s", code, out, errOut)
	}
}

// onlyS3Backup returns the name of the one backup under prefix in the bucket.
func onlyS3Backup(t *testing.T, s3 *s3test.Server, prefix string) string {
	t.Helper()
	list, err := s3.Backend.ListBucket("backups", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, o := range list.Contents {
		rest, ok := strings.CutPrefix(o.Key, prefix)
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(rest, "/")
		if layout.IsBackupName(first) {
			found[first] = true
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one backup under %s, found %v", prefix, found)
	}
	for n := range found {
		return filepath.Base(n)
	}
	return ""
}

// `verify s3://…` of an object-store backup reads its files from the destination's
// objects/ (the backup's parent), and names a file whose object is missing.
func TestVerifyS3ObjectStore(t *testing.T) {
	dir := sitePlatform(t)
	local := t.TempDir()
	if code, out := cli(t, dir, "backup", "--backup-dir", local); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	folders, err := filepath.Glob(filepath.Join(local, "backup_*"))
	if err != nil || len(folders) != 1 {
		t.Fatalf("backup folders %v %v", folders, err)
	}
	s3 := s3test.Start(t, nil, "backups")
	name, index := objtest.Convert(t, folders[0], s3.URL("backups", "nightly", ""))
	src := s3.URL("backups", "nightly/"+name, "")
	code, out, errOut := runSplit(t, "verify", src)
	if code != 0 || !strings.Contains(out, "objects") {
		t.Fatalf("verify %s: exit %d\n%s%s", src, code, out, errOut)
	}
	victim := index[0]
	if _, err := s3.Backend.DeleteObject("backups", "nightly/"+layout.ObjectKey(victim.SHA256)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runSplit(t, "verify", src)
	if code != 1 || !strings.Contains(out, victim.Path+": its object") {
		t.Fatalf("verify with a missing object: exit %d, want 1 naming %s\n%s%s", code, victim.Path, out, errOut)
	}
}
