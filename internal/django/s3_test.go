package django_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"

	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// TestS3Storage runs the commands in a project whose default storage is django-storages' S3
// backend (an S3 service on loopback): restore_data fills the bucket under AWS_LOCATION,
// backup_data backs it up, and restore_data puts back a deleted and an overwritten object;
// MEDIA_ROOT is never touched.
func TestS3Storage(t *testing.T) {
	tools(t)
	srv := s3test.Start(t, nil, "platform-media")
	settings := map[string]any{
		"AWS_STORAGE_BUCKET_NAME": "platform-media", "AWS_LOCATION": "media/",
		"AWS_S3_ENDPOINT_URL": srv.Endpoint(), "AWS_S3_REGION_NAME": "us-east-1",
		"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "test-secret-do-not-log",
	}
	s := newSite(t, "sqlite", "WNB_TEST_S3="+mustJSON(t, settings))
	want := sampleFiles(t)
	expectObjects(t, srv, want)

	backups := filepath.Join(s.work, "backups")
	s.mustManage("backup_data")
	backup := newEntry(t, backups, nil)
	if _, err := srv.Backend.DeleteObject("platform-media", "media/images/covers/book_1.png"); err != nil {
		t.Fatal(err)
	}
	srv.Put(t, "platform-media", "media/content/1/1.json", []byte(`{"changed": true}`))
	s.mustManage("restore_data", backup, "--force")
	expectObjects(t, srv, want)
	if names := listDir(t, s.media); len(names) != 0 {
		t.Errorf("MEDIA_ROOT was written to although the storage is S3: %v", names)
	}
}

// sampleFiles are the platform sample's storage files: key -> SHA-256.
func sampleFiles(t *testing.T) map[string]string {
	t.Helper()
	root := "../platform/testdata/sample-fixtures/files"
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = sha(data)
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("sample files: %d, %v", len(files), err)
	}
	return files
}

// expectObjects checks that the bucket holds exactly the files under media/.
func expectObjects(t *testing.T, srv *s3test.Server, want map[string]string) {
	t.Helper()
	list, err := srv.Backend.ListBucket("platform-media", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range list.Contents {
		obj, err := srv.Backend.GetObject("platform-media", c.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		if err != nil {
			t.Fatal(err)
		}
		key, ok := strings.CutPrefix(c.Key, "media/")
		if !ok {
			t.Errorf("object %s outside AWS_LOCATION media/", c.Key)
		}
		got[key] = sha(data)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("object media/%s: sha256 %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d objects, want %d", len(got), len(want))
	}
}
