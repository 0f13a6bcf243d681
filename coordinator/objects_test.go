package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// A run that reuses a base checks, once its key lists are written, that the base still has
// its metadata: a base pruned in between fails the check, naming it.
func TestCheckBaseKept(t *testing.T) {
	srv := s3test.Start(t, nil, "backups")
	srv.Put(t, "backups", "nightly/backup_20240630_020000/"+layout.FileMetadata, []byte("{}"))
	srv.Put(t, "backups", "nightly/backup_20240629_020000/"+layout.FileIndex, []byte("")) // metadata gone: pruned
	root, err := storage.Open(context.Background(), srv.URL("backups", "nightly", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tests := []struct {
		base    string
		wantErr bool
	}{
		{"", false},
		{"backup_20240630_020000", false},
		{"backup_20240629_020000", true},
		{"backup_20240101_020000", true},
	}
	for _, tt := range tests {
		err := CheckBaseKept(context.Background(), root, tt.base)
		if tt.wantErr != (err != nil) || (err != nil && (!errors.Is(err, ErrBasePruned) || !strings.Contains(err.Error(), tt.base))) {
			t.Errorf("base %q: %v", tt.base, err)
		}
	}
}

// Folder backups to S3 use the destination's object store; local destinations and archives
// do not.
func TestObjectStoreFor(t *testing.T) {
	tests := []struct {
		o    BackupOptions
		want string
	}{
		{BackupOptions{BackupDir: "s3://b/nightly?region=x"}, "s3://b/nightly?region=x"},
		{BackupOptions{BackupDir: "s3://b/nightly", Compress: true}, ""},
		{BackupOptions{BackupDir: "/srv/backups"}, ""},
	}
	for _, tt := range tests {
		if got := objectStoreFor(tt.o); got != tt.want {
			t.Errorf("objectStoreFor(%+v) = %q, want %q", tt.o, got, tt.want)
		}
	}
}
