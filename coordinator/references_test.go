package coordinator

import (
	"context"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/messages"
)

// joinReferences joins the index's files as they come when their paths sort as their keys,
// and sorts them first when not (an encrypted copy's ".age" puts "x-y" before "x"): either
// way exactly the missing references are found.
func TestJoinReferences(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ext  string
	}{{"paths in key order", ""}, {"paths out of key order", ".age"}} {
		t.Run(tc.name, func(t *testing.T) {
			index := layout.NewFileIndexWriter(t.TempDir(), 1<<20)
			defer index.Close()
			for _, key := range []string{"media/x", "media/x-y", "media/w"} {
				if err := index.Add(messages.FileEntry{Path: layout.FilesDir + "/" + key + tc.ext, Key: key, SHA256: sum}); err != nil {
					t.Fatal(err)
				}
			}
			chk := references.NewChecker(t.TempDir(), 1<<20)
			defer chk.Close()
			for i, p := range []string{"media/x", "media/x-y", "media/z"} {
				if err := chk.Add(references.Ref{Model: "books.chaptermedia", PK: string(rune('1' + i)), Field: "file", Path: p}); err != nil {
					t.Fatal(err)
				}
			}
			r := &backupRun{}
			rep, err := r.joinReferences(context.Background(), chk, index)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Refs != 3 || rep.Missing != 1 || rep.MissingList[0].Path != "media/z" {
				t.Fatalf("refs %d missing %d %+v, want 3 refs, media/z missing", rep.Refs, rep.Missing, rep.MissingList)
			}
		})
	}
}
