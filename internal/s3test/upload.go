package s3test

import (
	"context"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
)

// UploadTree copies a local folder into an S3 location (any storage location, in fact),
// keeping each file's mode and modification time.
func UploadTree(t testing.TB, dir, url string) {
	t.Helper()
	ctx := context.Background()
	src, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	err = src.Walk(ctx, "", func(o storage.Object) error {
		r, obj, err := src.Open(ctx, o.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = dst.Put(ctx, o.Key, r, obj)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
