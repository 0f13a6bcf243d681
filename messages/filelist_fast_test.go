package messages

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fastEntries are entries the hand-written codec must write and read exactly as
// encoding/json: plain ones it handles itself and odd ones it hands over.
var fastEntries = []FileEntry{
	{},
	{Key: "content/a.txt", Size: 12},
	{Key: "a", Path: "files/a", Stored: "files/a%0A", Size: -1, SHA256: strings.Repeat("ab", 32), Mode: 0o644, Changed: true, ModTime: -5, ETag: `"x"`, Reuse: "backup_1/files/a", Plain: "ff"},
	{Key: "x<y>&z", Size: 1 << 62, ModTime: 1796191616639701408, Mode: 1<<32 - 1},
	{Key: "line\nbreak", Path: "tab\there"},
	{Key: "caf\xe9", Path: "ü/\u2028"},
	{Key: "back\\slash", Reuse: "q\"uote"},
}

func TestFileEntryFastEncodingIsJSON(t *testing.T) {
	for _, e := range fastEntries {
		want, err := json.Marshal(e.wire())
		if err != nil {
			t.Fatal(err)
		}
		got, err := MarshalFileEntry(e)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("MarshalFileEntry(%+v) = %s, %v; encoding/json writes %s", e, got, err, want)
		}
		var back FileEntry
		if err := back.UnmarshalJSON(got); err != nil || !reflect.DeepEqual(back, e) {
			t.Errorf("read back %s = %+v, %v; want %+v", got, back, err, e)
		}
	}
}

// TestFileListReaderLines: a list is one object a line; blank lines, spaces and a CRLF end
// are allowed as encoding/json allows them, and a bad line is named by its entry number.
func TestFileListReaderLines(t *testing.T) {
	tests := []struct {
		name, in string
		keys     []string
		err      string
	}{
		{"plain", "{\"k\":\"a\",\"n\":1}\n{\"k\":\"b\",\"n\":2}\n", []string{"a", "b"}, ""},
		{"no final newline", "{\"k\":\"a\",\"n\":1}", []string{"a"}, ""},
		{"blank lines and CRLF", "\n{\"k\":\"a\",\"n\":1}\r\n  \n { \"k\" : \"b\" , \"n\" : 2 } \n", []string{"a", "b"}, ""},
		{"escaped", "{\"k\":\"a\\nb\",\"n\":1}\n", []string{"a\nb"}, ""},
		{"long line", "{\"k\":\"" + strings.Repeat("x", 200<<10) + "\",\"n\":1}\n", []string{strings.Repeat("x", 200<<10)}, ""},
		{"bad second", "{\"k\":\"a\",\"n\":1}\n{\"k\":\"b\",\"n\":1.5}\n", nil, "entry 2"},
		{"truncated", "{\"k\":\"a\",\"n\":1}\n{\"k\":\"b\"", nil, "entry 2"},
		// a line no entry needs (a gzip bomb of one line): refused, not held
		{"too long", "{\"k\":\"a\",\"n\":1}\n" + strings.Repeat(" ", MaxEntryLine+1), nil, "entry 2: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			err := ReadFileList(strings.NewReader(tt.in), func(e FileEntry) error {
				keys = append(keys, e.Key)
				return nil
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(keys, tt.keys) {
				t.Fatalf("keys = %q, %v; want %q", keys, err, tt.keys)
			}
		})
	}
}

// FuzzParseEntry: whatever a line holds, the hand-written parser means what encoding/json
// means, and fails where it fails.
func FuzzParseEntry(f *testing.F) {
	for _, e := range fastEntries {
		b, _ := json.Marshal(e.wire())
		f.Add(b)
	}
	for _, s := range []string{`{"n":01}`, `{"n":-0}`, `{"m":-1}`, `{"m":4294967296}`, `{"k":"a","k":"b"}`, `{"K":"a"}`, `{"changed":false}`, `{"n":1,}`, `{,}`, `{"kb":"YQ=="}`, `{"n":9223372036854775808}`, `{"t":1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var got FileEntry
		gotErr := parseEntry(line, &got)
		var j fileEntryJSON
		wantErr := json.Unmarshal(line, &j)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: parseEntry error %v, encoding/json error %v", line, gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, j.entry()) {
			t.Fatalf("%q: parseEntry read %+v, encoding/json %+v", line, got, j.entry())
		}
	})
}

// FuzzAppendEntry: the hand-written encoder writes what encoding/json writes.
func FuzzAppendEntry(f *testing.F) {
	f.Add("content/a", "files/content/a", "", int64(3), "ab", uint32(0o644), false, int64(7), "", "", "")
	f.Add("a<b", "\xff", "s", int64(-1), "", uint32(0), true, int64(0), `"e"`, "r", "p")
	f.Fuzz(func(t *testing.T, k, p, s string, n int64, h string, m uint32, changed bool, mt int64, etag, r, ph string) {
		e := FileEntry{Key: k, Path: p, Stored: s, Size: n, SHA256: h, Mode: m, Changed: changed, ModTime: mt, ETag: etag, Reuse: r, Plain: ph}
		want, err := json.Marshal(e.wire())
		if err != nil {
			t.Skip()
		}
		got, err := appendEntry(nil, e)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("appendEntry = %s, %v; encoding/json writes %s", got, err, want)
		}
	})
}
