package coordinator

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A listed file's packed record comes back whole, names that are not UTF-8 included; a
// damaged record is an error naming the path, never a wrong entry.
func TestListedRecordRoundTrip(t *testing.T) {
	tests := []messages.FileEntry{
		{Path: "files/a", Key: "a", Size: 0, ModTime: 0},
		{Path: "files/x\xffy", Key: "x\xffy", Size: 1 << 40, ModTime: 1_700_000_000_123_456_789, Mode: 0o640},
		{Path: "files/e%FF", Key: "e\xff", Stored: "files/e%FF", ETag: "d41d8cd98f00b204e9800998ecf8427e-3", Size: 5, ModTime: -1},
	}
	for _, want := range tests {
		rec := encodeListed(want)
		got, err := decodeListed(want.Path, rec)
		if err != nil || got != want {
			t.Errorf("round trip of %q: %+v, %v", want.Path, got, err)
		}
		for _, damaged := range [][]byte{rec[:len(rec)-1], append(rec, 0), {0xff}} {
			if _, err := decodeListed(want.Path, damaged); err == nil {
				t.Errorf("damaged record of %q %x decoded", want.Path, damaged)
			}
		}
	}
}

// unchanged compares key and size, then ETag (S3 source) or modification time, or nothing
// more with checksum (the worker compares content).
func TestUnchanged(t *testing.T) {
	base := messages.FileEntry{Key: "k", Size: 3, ModTime: 10, SHA256: "s"}
	s3base := messages.FileEntry{Key: "k", Size: 3, ETag: "e", SHA256: "s"}
	tests := []struct {
		name     string
		s, b     messages.FileEntry
		checksum bool
		want     bool
	}{
		{"same", messages.FileEntry{Key: "k", Size: 3, ModTime: 10}, base, false, true},
		{"newer", messages.FileEntry{Key: "k", Size: 3, ModTime: 11}, base, false, false},
		{"resized", messages.FileEntry{Key: "k", Size: 4, ModTime: 10}, base, false, false},
		{"no time", messages.FileEntry{Key: "k", Size: 3}, messages.FileEntry{Key: "k", Size: 3, SHA256: "s"}, false, false},
		{"no sum in base", messages.FileEntry{Key: "k", Size: 3, ModTime: 10}, messages.FileEntry{Key: "k", Size: 3, ModTime: 10}, false, false},
		{"checksum, newer", messages.FileEntry{Key: "k", Size: 3, ModTime: 11}, base, true, true},
		{"checksum, resized", messages.FileEntry{Key: "k", Size: 4}, base, true, false},
		{"etag same", messages.FileEntry{Key: "k", Size: 3, ETag: "e"}, s3base, false, true},
		{"etag other", messages.FileEntry{Key: "k", Size: 3, ETag: "f"}, s3base, false, false},
		{"other key", messages.FileEntry{Key: "j", Size: 3, ModTime: 10}, base, false, false},
	}
	for _, tc := range tests {
		if got := unchanged(tc.s, tc.b, tc.checksum); got != tc.want {
			t.Errorf("%s: unchanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A local file whose mode the backup cannot keep as it is gets a warning naming it and what a
// restore gives it; past maxModeWarnings the rest are one count, kept up to date; a file whose
// mode is kept, and any S3 object (no modes at all), get none.
func TestNoteModeBound(t *testing.T) {
	p := &copyPlanner{o: BackupOptions{StorageURL: "/srv/media"}}
	p.noteMode(storage.Object{Key: "plain.txt", Mode: 0o640})
	p.noteMode(storage.Object{Key: "suid", Mode: 0o755, Unkept: fs.ModeSetuid | fs.ModeSticky})
	if len(p.info.Modes) != 1 || !strings.Contains(p.info.Modes[0], "suid") || !strings.Contains(p.info.Modes[0], "setuid, sticky") || !strings.Contains(p.info.Modes[0], "0755") {
		t.Fatalf("modes %q: want one warning naming suid, its bits and 0755", p.info.Modes)
	}
	for i := range maxModeWarnings + 5 {
		p.noteMode(storage.Object{Key: fmt.Sprintf("none/%d", i)})
	}
	if n := len(p.info.Modes); n != maxModeWarnings+1 {
		t.Fatalf("%d warnings, want %d named and one count", n, maxModeWarnings)
	}
	if last := p.info.Modes[maxModeWarnings]; !strings.HasPrefix(last, "6 more files") {
		t.Fatalf("last warning %q, want the count of the 6 not named", last)
	}
	s3 := &copyPlanner{o: BackupOptions{StorageURL: "s3://bucket/media"}}
	s3.noteMode(storage.Object{Key: "object", ETag: "x"})
	if len(s3.info.Modes) != 0 {
		t.Fatalf("an S3 object (no modes) warned: %q", s3.info.Modes)
	}
}
