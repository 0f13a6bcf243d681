package demo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

func TestZZMedium(t *testing.T) {
	o := Options{Seed: 1, Users: 50, Authors: 20, Languages: 8, Books: 200, ChaptersPerBook: 100, MediaPerChapter: 1, ChangeLogsPerChapter: 3, FileBytes: 2000}
	for _, u := range []string{"sqlite:///" + filepath.Join(t.TempDir(), "a.sqlite3"), pgtest.URL(t)} {
		start := time.Now()
		s, err := Fill(context.Background(), u, t.TempDir(), o)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, n := range s.Rows {
			total += n
		}
		t.Logf("%s: %d rows, %d files, %d bytes in %v", u[:6], total, s.Files, s.FileBytes, time.Since(start))
	}
}
