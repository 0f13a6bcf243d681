package storage_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
)

// BenchmarkLinkFrom links a base's copies into a new staging area, as a second backup's
// worker does for its unchanged files: folders of 300 files, under a few levels.
func BenchmarkLinkFrom(b *testing.B) {
	ctx := context.Background()
	base := openBucketB(b, b.TempDir())
	const files = 3000
	key := func(i int) string { return fmt.Sprintf("files/media/%d/f%06d.bin", i/300, i) }
	for i := range files {
		if _, err := base.Put(ctx, "backup_1/"+key(i), strings.NewReader("x"), storage.Object{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		stage := openBucketB(b, b.TempDir(), storage.DeferSync())
		b.StartTimer()
		for i := range files {
			if _, err := stage.LinkFrom(ctx, base, "backup_1/"+key(i), key(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/link")
}

func openBucketB(b *testing.B, loc string, opts ...storage.Option) *storage.Bucket {
	b.Helper()
	bk, err := storage.Open(context.Background(), loc, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bk.Close() })
	return bk
}
