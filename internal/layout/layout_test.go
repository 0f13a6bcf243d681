package layout

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestName(t *testing.T) {
	ts := time.Date(2024, 12, 1, 14, 30, 22, 123456789, time.UTC)
	if got, want := Name(ts), "backup_20241201_143022"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if !IsBackupName(Name(ts)) {
		t.Errorf("IsBackupName(Name(t)) = false")
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in         string
		ok         bool
		seq        int
		compressed bool
	}{
		{"backup_20241201_143022", true, 1, false},
		{"backup_20241201_143022.tar.gz", true, 1, true},
		{"backup_20241201_143022-2", true, 2, false},
		{"backup_20241201_143022-17.tar.gz", true, 17, true},
		{"backup_20241201_143022-1", false, 0, false}, // no suffix means 1
		{"backup_20241201_143022-0", false, 0, false},
		{"backup_20241201_143022-02", false, 0, false},
		{"backup_20241301_143022", false, 0, false}, // month 13
		{"backup_20241201_246022", false, 0, false}, // hour 24
		{"backup_20241201_14302", false, 0, false},
		{"backup_20241201_143022.tar", true, 1, true},
		{"backup_20241201_143022-3.tar.zst", true, 3, true},
		{"backup_20241201_143022.zst", false, 0, false},
		{"backup_20241201_143022.tgz", false, 0, false},
		{"backup_20241201_143022/", false, 0, false},
		{"xbackup_20241201_143022", false, 0, false},
		{".wnb-staging-run1", false, 0, false},
		{"", false, 0, false},
	}
	for _, tt := range tests {
		p, ok := ParseName(tt.in, time.UTC)
		if ok != tt.ok || IsBackupName(tt.in) != tt.ok {
			t.Errorf("ParseName(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if p.Seq != tt.seq || p.Compressed != tt.compressed {
			t.Errorf("ParseName(%q) = %+v, want seq %d compressed %v", tt.in, p, tt.seq, tt.compressed)
		}
		if want := time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC); !p.Time.Equal(want) {
			t.Errorf("ParseName(%q).Time = %v, want %v", tt.in, p.Time, want)
		}
	}
}

func TestNextSeq(t *testing.T) {
	at := time.Date(2024, 12, 1, 14, 30, 22, 0, time.Local)
	for _, tc := range []struct {
		names []string
		want  int
	}{
		{nil, 1},
		{[]string{"backup_20241201_143021", "backup_20241201_143023-4"}, 1}, // other seconds
		{[]string{"backup_20241201_143022"}, 2},
		{[]string{"backup_20241201_143022-3.tar.zst", "backup_20241201_143022"}, 4},
		// The first of the second was deleted: its name is not taken again, or the next
		// backup would sort before the ones taken before it.
		{[]string{"backup_20241201_143022-2", "backup_20241201_143022-5", ".wnb-staging-x", "notes"}, 6},
	} {
		if got := NextSeq(tc.names, at); got != tc.want {
			t.Errorf("NextSeq(%q) = %d, want %d", tc.names, got, tc.want)
		}
	}
}

// Backup names come from listings of a destination anyone may have written to: whatever the
// name, ParseName never panics, and a name it accepts is exactly the name this tool would give
// the backup it describes (time, collision suffix, archive and encryption extensions).
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"backup_20240131_235959", "backup_20240131_235959-2.tar.gz.age", "backup_20241301_000000",
		"backup_20240131_235959-1", "backup_20240131_235959.tar.zst", "backup_20240229_120000-999999999.tar", "backup_2024"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParseName(s, time.UTC)
		if !ok {
			return
		}
		if p.Seq < 1 || p.Seq == 1 && strings.Contains(s, "-") {
			t.Fatalf("%q: collision suffix %d", s, p.Seq)
		}
		base, archived := TrimArchiveExt(s)
		if archived != p.Compressed {
			t.Fatalf("%q: compressed %v, but its extension says %v", s, p.Compressed, archived)
		}
		if p.Encrypted != strings.HasSuffix(s, EncryptedExt) {
			t.Fatalf("%q: encrypted %v", s, p.Encrypted)
		}
		if again := nameWithSeq(p.Time, p.Seq); again != base {
			t.Fatalf("%q: the name of its time and suffix is %q", s, again)
		}
		if !IsBackupName(s) {
			t.Fatalf("%q parses but is not a backup name", s)
		}
	})
}
