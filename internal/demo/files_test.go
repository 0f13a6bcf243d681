package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fileInfo struct {
	sha    string
	size   int64
	mode   fs.FileMode
	mtime  time.Time
	isJSON bool
}

// scan reads every regular file under dir, by slash-separated key.
func scan(t *testing.T, dir string) map[string]fileInfo {
	t.Helper()
	out := map[string]fileInfo{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = fileInfo{hex.EncodeToString(sum[:]), st.Size(), st.Mode().Perm(), st.ModTime(), json.Valid(data)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeTestFiles(t *testing.T, o Options) (string, int, int64) {
	t.Helper()
	p, err := newPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, size, err := p.writeStorage(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, n, size
}

// checkFiles asserts that the files under dir are exactly those the rows reference, with the
// checksums and sizes the rows record.
func checkFiles(t *testing.T, rows map[string]generated, files map[string]fileInfo) {
	t.Helper()
	referenced := map[string]bool{}
	for _, fc := range []struct{ table, col string }{
		{"accounts_user", "avatar"},
		{"books_book", "cover_image"},
		{"books_chapter", "content_file"},
		{"books_chaptermedia", "file"},
		{"books_bookfile", "file"},
	} {
		for _, v := range rows[fc.table].column(t, fc.col) {
			key := v.(string)
			if key == "" {
				continue
			}
			referenced[key] = true
			if _, ok := files[key]; !ok {
				t.Errorf("%s.%s = %q: no such file", fc.table, fc.col, key)
			}
		}
	}
	for key := range files {
		if !referenced[key] {
			t.Errorf("file %s is not referenced by any row", key)
		}
	}
	bf := rows["books_bookfile"]
	for _, r := range bf.rows {
		key, sum := r[2].(string), r[4].(string)
		if files[key].sha != sum {
			t.Errorf("BookFile %s: checksum %s, file's SHA-256 %s", key, sum, files[key].sha)
		}
	}
	media := rows["books_chaptermedia"]
	for _, r := range media.rows {
		key, typ, size := r[3].(string), r[2].(string), r[5].(int64)
		if typ == "video" {
			if size <= 1<<31 {
				t.Errorf("video %s: size_bytes %d, want the full video's size over 2^31", key, size)
			}
			continue
		}
		if files[key].size != size {
			t.Errorf("ChapterMedia %s: size_bytes %d, file has %d bytes", key, size, files[key].size)
		}
	}
	for key, f := range files {
		if strings.HasPrefix(key, "content/") && !f.isJSON {
			t.Errorf("%s is not JSON", key)
		}
	}
}

func TestFiles(t *testing.T) {
	o := DefaultOptions()
	dir, n, size := writeTestFiles(t, o)
	files := scan(t, dir)
	if n != len(files) {
		t.Errorf("%d files reported, %d on disk", n, len(files))
	}
	var total int64
	modes := map[fs.FileMode]int{}
	for key, f := range files {
		total += f.size
		modes[f.mode]++
		if f.mode != fileMode(key) {
			t.Errorf("%s: mode %v, want %v", key, f.mode, fileMode(key))
		}
		p, _ := newPlan(o)
		if !f.mtime.Equal(p.modTime(key)) {
			t.Errorf("%s: mtime %v, want %v", key, f.mtime, p.modTime(key))
		}
	}
	if total != size {
		t.Errorf("%d bytes reported, %d on disk", size, total)
	}
	if modes[0o644] == 0 || modes[0o600] == 0 {
		t.Errorf("file modes %v: want both 0644 and 0600", modes)
	}
	for _, prefix := range []string{"content/1/", "images/covers/", "images/avatars/", "media/", "media/books/"} {
		found := false
		for key := range files {
			found = found || strings.HasPrefix(key, prefix)
		}
		if !found {
			t.Errorf("no file under %s", prefix)
		}
	}
	checkFiles(t, generate(t, o, false), files)

	// A content document carries its chapter's title, as the platform writes it.
	var doc struct {
		Book, Chapter int
		Title         string
		Paragraphs    []string
	}
	data, err := os.ReadFile(filepath.Join(dir, "content", "1", "2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Book != 1 || doc.Chapter != 2 || doc.Title != "Chapter 2: Ch. with\nnewline" || len(doc.Paragraphs) == 0 {
		t.Errorf("content/1/2.json = %+v", doc)
	}
	if len(data) < o.FileBytes || len(data) > 3*o.FileBytes {
		t.Errorf("content/1/2.json has %d bytes, FileBytes is %d", len(data), o.FileBytes)
	}
}

func TestFilesDeterministic(t *testing.T) {
	o := DefaultOptions()
	a, _, _ := writeTestFiles(t, o)
	b, _, _ := writeTestFiles(t, o)
	fa, fb := scan(t, a), scan(t, b)
	if !reflect.DeepEqual(fa, fb) {
		t.Error("two writes with the same seed differ")
	}
	o.Seed = 7
	c, _, _ := writeTestFiles(t, o)
	fc := scan(t, c)
	same := 0
	for k, f := range fa {
		if fc[k].sha == f.sha && f.size > 0 {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d files are identical with seeds 1 and 7", same)
	}
}

func TestNoFiles(t *testing.T) {
	with := DefaultOptions()
	without := with
	without.NoFiles = true
	p, _ := newPlan(without)
	if p.writeFiles {
		t.Fatal("NoFiles still writes files")
	}
	// The rows are the same either way: they describe the files a real site would hold.
	if !reflect.DeepEqual(generate(t, with, false), generate(t, without, false)) {
		t.Error("NoFiles changes the rows")
	}
	zero := with
	zero.FileBytes = 0
	if p, _ := newPlan(zero); p.writeFiles {
		t.Error("FileBytes 0 still writes files")
	}
	only := Options{OnlyChapters: 50, Authors: 1, Languages: 1, FileBytes: 100}
	if p, _ := newPlan(only); p.writeFiles {
		t.Error("OnlyChapters writes files")
	}
}

func TestContextCancel(t *testing.T) {
	p, _ := newPlan(DefaultOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.writeStorage(ctx, t.TempDir()); err == nil {
		t.Error("a cancelled context still writes every file")
	}
}
