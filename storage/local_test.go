package storage_test

import (
	"context"
	"path/filepath"
	"testing"

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
