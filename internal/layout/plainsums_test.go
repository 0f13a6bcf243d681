package layout

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// The manifest of plaintext sums is coreutils lines sorted by path without .age, whatever
// order the entries came in and whether they spilled to disk; it is encrypted (no path or
// sum readable without the key); a path added twice is an error.
func TestPlainSumsWriter(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	entries := [][2]string{{"files/b.age", sum('b')}, {"files/a-b.age", sum('c')}, {"db_x.json.age", sum('d')}, {"files/a.age", sum('a')}}
	want := sum('d') + "  db_x.json\n" + sum('a') + "  files/a\n" + sum('c') + "  files/a-b\n" + sum('b') + "  files/b\n"
	for _, tc := range []struct {
		name   string
		dir    string
		budget int
	}{{"memory", "", 0}, {"spilled", t.TempDir(), 1}} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewPlainSumsWriter(tc.dir, tc.budget)
			defer w.Close()
			for _, e := range entries {
				if err := w.Add(e[0], e[1]); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			n, err := w.WriteTo(&out, rc)
			if err != nil || n != int64(out.Len()) {
				t.Fatalf("write: %d bytes of %d, %v", n, out.Len(), err)
			}
			if bytes.Contains(out.Bytes(), []byte("files/")) || bytes.Contains(out.Bytes(), []byte(sum('a'))) {
				t.Fatal("the manifest is readable without the key")
			}
			r, err := age.Decrypt(&out, id)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if string(got) != want {
				t.Fatalf("manifest:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	w := NewPlainSumsWriter("", 0)
	w.Add("files/a.age", sum('a'))
	w.Add("files/a", sum('b'))
	if _, err := w.WriteTo(io.Discard, rc); err == nil || !strings.Contains(err.Error(), "files/a") {
		t.Fatalf("a path added twice: %v", err)
	}
}
