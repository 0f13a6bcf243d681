package layout

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSumsWriterFormat(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("B", 64)
	sw := NewSumsWriter()
	for _, e := range []struct{ p, sum string }{
		{"files/media/x y.png", a},
		{"db_books_book.json", b},
		{"files/content/a\\b\nc\rd.json", a},
		{"restore.sh", a},
	} {
		if err := sw.Add(e.p, e.sum); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Repeat("b", 64) + "  db_books_book.json\n" +
		`\` + a + `  files/content/a\\b\nc\rd.json` + "\n" +
		a + "  files/media/x y.png\n" +
		a + "  restore.sh\n"
	data, err := sw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("SHA256SUMS:\n%q\nwant\n%q", data, want)
	}
	got, err := ParseSums(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	wantMap := map[string]string{
		"files/media/x y.png":           a,
		"db_books_book.json":            strings.Repeat("b", 64),
		"files/content/a\\b\nc\rd.json": a,
		"restore.sh":                    a,
	}
	if !reflect.DeepEqual(got, wantMap) {
		t.Errorf("ParseSums = %q, want %q", got, wantMap)
	}
}

func TestSumsWriterAddErrors(t *testing.T) {
	a := strings.Repeat("a", 64)
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", ".", "a\x00b"} {
		if err := NewSumsWriter().Add(p, a); err == nil {
			t.Errorf("Add(%q): no error", p)
		}
	}
	sw := NewSumsWriter()
	if err := sw.Add("x", "abc"); err == nil {
		t.Error("short checksum accepted")
	}
	if err := sw.Add("x", a); err != nil {
		t.Fatal(err)
	}
	if err := sw.Add("y", a); err != nil {
		t.Fatal(err)
	}
	if err := sw.Add("x", strings.Repeat("b", 64)); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Bytes(); err == nil || !strings.Contains(err.Error(), "x added twice") {
		t.Errorf("duplicate path: err = %v, want it named", err)
	}
}

func TestParseSumsErrors(t *testing.T) {
	a := strings.Repeat("a", 64)
	tests := []struct{ name, in, want string }{
		{"one space", a + " xy\n", "two spaces"},
		{"short hex", "abc  x\n", "line 1"},
		{"not hex", strings.Repeat("g", 64) + "  x\n", "not 64 hex"},
		{"absolute", a + "  /etc/passwd\n", "absolute"},
		{"dotdot", a + "  ok\n" + a + "  a/../../x\n", "line 2"},
		{"dup", a + "  x\n" + a + "  x\n", "listed twice"},
		{"bad escape", `\` + a + `  a\qb` + "\n", `unknown escape`},
		{"lone backslash", `\` + a + `  ab\` + "\n", "lone backslash"},
		{"bsd format", "SHA256 (x) = " + a + "\n", "line 1"},
		{"too long", a + "  " + strings.Repeat("x", maxSumsLine) + "\n", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSums(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Binary mode, upper-case hex and no final newline are accepted.
	got, err := ParseSums(strings.NewReader(strings.ToUpper(a) + " *x"))
	if err != nil || got["x"] != a {
		t.Errorf("ParseSums binary mode = %v, %v", got, err)
	}
}

// TestSumsCoreutils checks that GNU sha256sum accepts what we write,
// including names with a space, a backslash and a newline, and rejects a
// tampered file.
func TestSumsCoreutils(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum (coreutils) not installed")
	}
	dir := t.TempDir()
	files := map[string]string{
		"db_books_book.json":               "[]",
		"restore.sh":                       "#!/bin/sh\n",
		"files/media/with space.png":       "png",
		"files/content/back\\slash.json":   "{}",
		"files/content/new\nline.json":     "{\"a\": 1}",
		"files/images/all \\ of\nthem.jpg": "jpg",
	}
	for p, c := range files {
		writeTestFile(t, filepath.Join(dir, p), c)
	}
	writeTestFile(t, filepath.Join(dir, FileMetadata), "{}") // not summed
	sw, err := SumTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sw.Len() != len(files) {
		t.Errorf("SumTree summed %d files, want %d", sw.Len(), len(files))
	}
	manifest, err := sw.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileSums))
	if err != nil {
		t.Fatal(err)
	}
	if manifest != sha256Hex(data) {
		t.Errorf("manifest sha256 %s is not the file's", manifest)
	}
	run := func() (string, error) {
		cmd := exec.Command("sha256sum", "-c", "--strict", FileSums)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	} else if strings.Count(out, ": OK") != len(files) {
		t.Errorf("sha256sum -c checked %d files, want %d:\n%s", strings.Count(out, ": OK"), len(files), out)
	}
	writeTestFile(t, filepath.Join(dir, "files/content/new\nline.json"), "tampered")
	if out, err := run(); err == nil {
		t.Errorf("sha256sum -c passes a tampered file:\n%s", out)
	}
	// And our parser reads the same file back.
	sums, err := ParseSums(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != len(files) {
		t.Errorf("ParseSums read %d entries, want %d", len(sums), len(files))
	}
}

func TestSumTreeRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "a"), "a")
	if err := os.Symlink("a", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := SumTree(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("SumTree with a symlink: %v", err)
	}
}

func writeTestFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseSums(f *testing.F) {
	a := strings.Repeat("a", 64)
	f.Add([]byte(a + "  x\n"))
	f.Add([]byte(`\` + a + `  a\\b\nc` + "\n" + a + " *d/e f\n"))
	f.Add([]byte(a + "  ../x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := ParseSums(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parses is safe, and writes back to something that
		// parses to the same map.
		sw := NewSumsWriter()
		for p, s := range sums {
			if err := sw.Add(p, s); err != nil {
				t.Fatalf("parsed entry %q rejected by Add: %v", p, err)
			}
		}
		out, err := sw.Bytes()
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		again, err := ParseSums(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(sums, again) {
			t.Fatalf("round trip: %q != %q", sums, again)
		}
	})
}
