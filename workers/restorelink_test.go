//go:build linux

package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
)

// restoreTaskOfUnpacked writes an unpacked backup folder holding one file (mode 0600) into
// source and a restore task of it into the storage platform, with linkSource as the task's
// LinkSource; the file is to be restored with mode 0644 and the time mtime.
func restoreTaskOfUnpacked(t *testing.T, source, platform, content string, mtime time.Time, linkSource bool) *messages.Task {
	t.Helper()
	lists := t.TempDir()
	p := filepath.Join(source, "files", "content", "a.txt")
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	var b strings.Builder
	lw := messages.NewFileListWriter(&b)
	lw.Add(messages.FileEntry{Key: "content/a.txt", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Mode: 0o644, ModTime: mtime.UnixNano()})
	lw.Flush()
	os.WriteFile(filepath.Join(lists, "keys.jsonl"), []byte(b.String()), 0o600)
	return &messages.Task{
		Version: messages.Version, Run: "run1", ID: "restore-content-0000", Kind: messages.KindRestorePrefix, Dest: platform,
		Copy: &messages.CopyTask{Source: source, SourcePrefix: "files/", Prefix: "content/", ListStore: lists, KeyList: "keys.jsonl", Keys: 1, LinkSource: linkSource},
	}
}

// otherFilesystem is a fresh folder on another filesystem than dir's (/dev/shm), or "" when
// there is none.
func otherFilesystem(t *testing.T, dir string) string {
	t.Helper()
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat("/dev/shm", &b) != nil || a.Dev == b.Dev {
		return ""
	}
	other, err := os.MkdirTemp("/dev/shm", "wnb-restorelink-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	return other
}

// A restore task whose source is the run's unpacked copy (LinkSource) puts the file in place
// as a link to that copy, with the permissions and time the restore gives it; across
// filesystems the link fails (EXDEV) and the file is copied; without LinkSource it is always
// copied. The file's content, permissions, time and counts are the same every way.
func TestRestoreTaskLinksUnpackedSource(t *testing.T) {
	const content = "chapter one: it was a dark and stormy night"
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 8000, time.UTC)
	tests := []struct {
		name       string
		otherFS    bool
		linkSource bool
		wantLinked bool
	}{
		{"linked", false, true, true},
		{"another filesystem: copied", true, true, false},
		{"not an unpacked copy: copied", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source, platform := t.TempDir(), t.TempDir()
			if tt.otherFS {
				if platform = otherFilesystem(t, source); platform == "" {
					t.Skip("no other filesystem than the temporary folder's to restore into")
				}
			}
			task := restoreTaskOfUnpacked(t, source, platform, content, mtime, tt.linkSource)
			w := &Worker{cfg: Config{StorageURL: platform}, log: slog.Default()}
			res, err := w.copy(context.Background(), task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Files != 1 || res.Bytes != int64(len(content)) || res.Failed != 0 {
				t.Fatalf("result %+v, want one file of %d bytes", res, len(content))
			}
			restored := filepath.Join(platform, "content", "a.txt")
			got, err := os.ReadFile(restored)
			if err != nil || string(got) != content {
				t.Fatalf("restored %q (%v)", got, err)
			}
			fi, err := os.Stat(restored)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(mtime) {
				t.Errorf("restored with mode %v, time %v; want 0644, %v", fi.Mode().Perm(), fi.ModTime(), mtime)
			}
			src, err := os.Stat(filepath.Join(source, "files", "content", "a.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if linked := os.SameFile(fi, src); linked != tt.wantLinked {
				t.Errorf("restored file is a link to the source: %v, want %v", linked, tt.wantLinked)
			}
		})
	}
}
