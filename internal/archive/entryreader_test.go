package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// sealedPrefix marks a test entry stored "sealed": its content follows the prefix.
const sealedPrefix = "sealed:"

// unseal is a test EntryReader: db_*.json entries are stored sealed; it returns their content
// with the size size gives (the true one unless a case lies).
func unseal(size func(n int64) int64, fail error) EntryReader {
	return func(name string, stored io.Reader) (io.Reader, int64, bool, error) {
		if !strings.HasPrefix(name, "db_") {
			return nil, 0, false, nil
		}
		if fail != nil {
			return nil, 0, false, fail
		}
		data, err := io.ReadAll(stored)
		if err != nil {
			return nil, 0, false, err
		}
		plain := bytes.TrimPrefix(data, []byte(sealedPrefix))
		return bytes.NewReader(plain), size(int64(len(plain))), true, nil
	}
}

// headEntries writes a head (WriteHead from a folder, or WriteObjectsHead) and the end, with
// opts, and returns the archive's files (name → content).
func headEntries(t *testing.T, objects bool, files map[string]string, opts ...Option) (map[string]string, error) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var objs []Object
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, Object{Key: name, Size: int64(len(data)), Mode: 0o600, ModTime: time.Now()})
	}
	var out bytes.Buffer
	var err error
	if objects {
		_, err = WriteObjectsHead(ctx, &out, None, "top", objs, func(key string) (io.ReadCloser, error) {
			return os.Open(filepath.Join(dir, key))
		}, opts...)
	} else {
		_, err = WriteHead(ctx, &out, None, dir, "top", nil, opts...)
	}
	if err != nil {
		return nil, err
	}
	if err := WriteEnd(&out, None); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&out)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			got[strings.TrimPrefix(hdr.Name, "top/")] = string(data)
		}
	}
}

// WithEntryReader: the entries it takes are archived as it returns them, with the size it
// says in their header (from a folder and from objects); the others as stored. A size that
// differs from the content, either way, or an error of the reader fails the write, naming the
// entry.
func TestWithEntryReader(t *testing.T) {
	files := map[string]string{
		layout.FileMetadata: `{}`,
		"db_app_model.json": sealedPrefix + `[{"model": "app.model", "pk": 1}]`,
		"restore.sh":        "#!/bin/sh\n",
	}
	same := func(n int64) int64 { return n }
	for _, objects := range []bool{false, true} {
		got, err := headEntries(t, objects, files, WithEntryReader(unseal(same, nil)))
		if err != nil {
			t.Fatalf("objects=%v: %v", objects, err)
		}
		want := map[string]string{layout.FileMetadata: `{}`, "db_app_model.json": `[{"model": "app.model", "pk": 1}]`, "restore.sh": "#!/bin/sh\n"}
		for name, w := range want {
			if got[name] != w {
				t.Fatalf("objects=%v: entry %s holds %q, want %q", objects, name, got[name], w)
			}
		}
		for _, tc := range []struct {
			name string
			opt  Option
			want string
		}{
			{"size too big", WithEntryReader(unseal(func(n int64) int64 { return n + 1 }, nil)), "shrank"},
			{"size too small", WithEntryReader(unseal(func(n int64) int64 { return n - 1 }, nil)), "holds more than"},
			{"reader error", WithEntryReader(unseal(same, errors.New("wrong key"))), "wrong key"},
		} {
			_, err := headEntries(t, objects, files, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "db_app_model.json") {
				t.Fatalf("objects=%v, %s: %v, want an error naming the entry and saying %q", objects, tc.name, err, tc.want)
			}
		}
	}
}
