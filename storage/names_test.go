package storage

import (
	"path"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Item 1: the escaping of names for S3 turns every local name into UTF-8 without control
// characters, and back into the same bytes.
func TestEscapeKeyRoundTrips(t *testing.T) {
	tests := []struct{ key, want string }{
		{"content/a.json", "content/a.json"},
		{"media/caf\xe9.png", "media/caf%E9.png"},
		{"media/100%.txt", "media/100%25.txt"},
		{"media/%41", "media/%2541"},
		{"media/new\nline\r\x01\x7f", "media/new%0Aline%0D%01%7F"},
		{"media/back\\slash é", "media/back\\slash é"},
		{"media/\xc3\x28", "media/%C3("},
	}
	for _, tt := range tests {
		got := EscapeKey(tt.key)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("EscapeKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
		back, err := UnescapeKey(got)
		if err != nil || back != tt.key {
			t.Errorf("UnescapeKey(%q) = %q, %v; want %q", got, back, err, tt.key)
		}
	}
	for _, bad := range []string{"a%", "a%4", "a%zz"} {
		if _, err := UnescapeKey(bad); err == nil {
			t.Errorf("UnescapeKey(%q) succeeded", bad)
		}
	}
}

// Item 1: a local name may hold any byte but NUL; keys that leave the bucket stay refused.
func TestCheckKeyAcceptsAnyLocalName(t *testing.T) {
	for _, ok := range []string{"a\\b", "caf\xe9", "new\nline", "-dash", "100%", "ctl\x01"} {
		if err := CheckKey(ok); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/../b", "..", "a/./b", "a//b", "nul\x00"} {
		if err := CheckKey(bad); err == nil {
			t.Errorf("CheckKey(%q) = nil, want an error", bad)
		}
	}
}

// cleanKey, one pass without allocation, accepts exactly the keys the definition accepts: what
// path.Clean leaves as it is, relative, no NUL byte, no "." or ".." element.
func FuzzCleanKey(f *testing.F) {
	for _, s := range []string{"", "a", "a/b", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a/..", ".a", "a..", "...", "a\x00b", "ä/ö"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := key != "" && !strings.HasPrefix(key, "/") && strings.IndexByte(key, 0) < 0 && path.Clean(key) == key &&
			!slices.ContainsFunc(strings.Split(key, "/"), func(seg string) bool { return seg == "." || seg == ".." })
		if got := cleanKey(key); got != want {
			t.Fatalf("cleanKey(%q) = %v, want %v", key, got, want)
		}
	})
}

// Only the names this tool gives files it writes are temporary: a platform's file that merely
// begins like one is data.
func TestIsTempName(t *testing.T) {
	for name, want := range map[string]bool{
		newTempName():                               true,
		".wnb-tmp-0123456789abcdef":                 true,
		".wnb-tmp-0123456789abcdef0123456789abcdef": true, // a restore's staged copy
		".wnb-tmp-":                                 false,
		".wnb-tmp-draft.txt":                        false,
		".wnb-tmp-0123456789ABCDEF":                 false,
		".wnb-tmp-0123456789abcdef.txt":             false,
		".wnb-tmp-0123456789abcde":                  false,
		".wnb-tmp-0123456789abcdef0":                false,
		"x.wnb-tmp-0123456789abcdef":                false,
		".wnb-tmp-0123456789abcdef0123456789abcdeg": false,
		".wnb-tmp-restore-0123456789abcdef":         false,
	} {
		if got := IsTempName(name); got != want {
			t.Errorf("IsTempName(%q) = %v, want %v", name, got, want)
		}
	}
}
