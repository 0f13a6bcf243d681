package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

// shared holds the backups made once for the whole package: a pipeline run costs a second.
var shared struct {
	once          sync.Once
	root          string
	dir, archive  string
	err           error
	backupSummary demo.Summary
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if shared.root != "" {
		os.RemoveAll(shared.root)
	}
	os.Exit(code)
}

// makeBackup fills a SQLite platform with opts in root and backs it up with the pipeline, as a
// folder and, if compress, also as an archive.
func makeBackup(ctx context.Context, root string, opts demo.Options, compress bool) (dir, arch string, sum demo.Summary, err error) {
	dbURL := "sqlite:///" + filepath.Join(root, "db.sqlite3")
	media := filepath.Join(root, "media")
	if sum, err = demo.Fill(ctx, dbURL, media, opts); err != nil {
		return "", "", sum, err
	}
	s, err := pipeline.Start(ctx, pipeline.Config{Workers: 2, DatabaseURL: dbURL, StorageURL: media})
	if err != nil {
		return "", "", sum, err
	}
	defer s.Close()
	o := coordinator.BackupOptions{DatabaseURL: dbURL, StorageURL: media, BackupDir: filepath.Join(root, "backups"), Workers: 2}
	rep, err := s.Coordinator.Backup(ctx, o)
	if err != nil {
		return "", "", sum, err
	}
	dir = rep.Path
	if compress {
		o.Compress = true
		if rep, err = s.Coordinator.Backup(ctx, o); err != nil {
			return "", "", sum, err
		}
		arch = rep.Path
	}
	return dir, arch, sum, nil
}

// sharedBackup returns the package's pipeline-made backup folder and archive (read only: copy
// before changing them).
func sharedBackup(t *testing.T) (dir, arch string) {
	t.Helper()
	shared.once.Do(func() {
		if shared.root, shared.err = os.MkdirTemp("", "verify-test-"); shared.err != nil {
			return
		}
		shared.dir, shared.archive, shared.backupSummary, shared.err = makeBackup(context.Background(), shared.root, demo.DefaultOptions(), true)
	})
	if shared.err != nil {
		t.Fatalf("make backup: %v", shared.err)
	}
	return shared.dir, shared.archive
}

// backupCopy returns a private copy of the shared backup folder.
func backupCopy(t *testing.T) string {
	t.Helper()
	src, _ := sharedBackup(t)
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	copyTree(t, src, dst)
	return dst
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

func verifyOK(t *testing.T, path string) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), path, Options{Workers: 2})
	if err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	if !rep.OK || len(rep.Problems) > 0 {
		t.Fatalf("Verify(%s) not OK: checks %+v\nproblems %q", path, rep.Checks, rep.Problems)
	}
	return rep
}

func checkNames(rep *Report) []string {
	var out []string
	for _, c := range rep.Checks {
		out = append(out, c.Name)
	}
	return out
}

func TestVerifyCleanFolder(t *testing.T) {
	dir, _ := sharedBackup(t)
	rep := verifyOK(t, dir)
	if got, want := strings.Join(checkNames(rep), ","), "metadata,checksums,fixtures,rows,files,references"; got != want {
		t.Errorf("checks %s, want %s", got, want)
	}
	m, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != layout.FormatVersion || rep.RunID != m.RunID || rep.Status != layout.StatusComplete {
		t.Errorf("format %d run %q status %q, want %d %q complete", rep.Format, rep.RunID, rep.Status, layout.FormatVersion, m.RunID)
	}
	if rep.Files != m.Files.Count || rep.Bytes != m.Files.Bytes || rep.Files != int64(shared.backupSummary.Files) {
		t.Errorf("files %d (%d bytes), metadata %d (%d), demo wrote %d", rep.Files, rep.Bytes, m.Files.Count, m.Files.Bytes, shared.backupSummary.Files)
	}
	if len(rep.Models) != len(m.Models) {
		t.Fatalf("%d models checked, metadata has %d", len(rep.Models), len(m.Models))
	}
	for i, mc := range rep.Models {
		e := m.Models[i]
		if mc.Label != e.Label || mc.File != e.File || mc.Rows != e.Rows || mc.MetadataRows != e.Rows || !mc.OK {
			t.Errorf("model %d: %+v, metadata %+v", i, mc, e)
		}
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %q", rep.Warnings)
	}
	if r := rep.References; r == nil || !r.Checked || r.Refs == 0 || r.Missing != 0 {
		t.Errorf("references %+v, want every file a row names found", r)
	}
}

func TestVerifyCleanArchive(t *testing.T) {
	_, arch := sharedBackup(t)
	tmp := t.TempDir()
	rep, err := Verify(context.Background(), arch, Options{Workers: 2, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Path != arch {
		t.Fatalf("archive: ok %v path %s\nchecks %+v\nproblems %q", rep.OK, rep.Path, rep.Checks, rep.Problems)
	}
	if got, want := strings.Join(checkNames(rep), ","), "archive,metadata,checksums,fixtures,rows,files,references"; got != want {
		t.Errorf("checks %s, want %s", got, want)
	}
	if rep.Files == 0 || len(rep.Models) == 0 || len(rep.Warnings) != 0 {
		t.Errorf("archive report: files %d models %d warnings %q", rep.Files, len(rep.Models), rep.Warnings)
	}
	if r := rep.References; r == nil || !r.Checked || r.Refs == 0 || r.Missing != 0 {
		t.Errorf("archive: references %+v, want every file a row names found", r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary folder not removed: %v", left)
	}
}

// editFile applies edit to the content of dir/rel.
func editFile(t *testing.T, dir, rel string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(bytes.Clone(data))
	if bytes.Equal(out, data) {
		t.Fatalf("edit of %s changed nothing", rel)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editMetadata(t *testing.T, dir string, edit func(*layout.Metadata)) {
	t.Helper()
	m, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	if err := layout.WriteMetadata(dir, m); err != nil {
		t.Fatal(err)
	}
}

// firstStorageFile returns the first file under files/, slash-separated.
func firstStorageFile(t *testing.T, dir string) string {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Join(dir, layout.FilesDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && found == "" && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			found = filepath.ToSlash(rel)
		}
		return err
	})
	if found == "" {
		t.Fatal("no file under files/")
	}
	return found
}

func replaceOnce(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

func TestVerifyCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string) (want []string)
		failed  []string // checks that must fail
	}{
		{"flipped byte in fixture", func(t *testing.T, dir string) []string {
			// Flip the case of a title letter: still valid JSON, so only the checksums notice.
			editFile(t, dir, "db_books_book.json", func(b []byte) []byte {
				i := bytes.Index(b, []byte(`"title": "`)) + len(`"title": "`) + 1
				b[i] ^= 0x20
				return b
			})
			return []string{
				"db_books_book.json: checksum mismatch: SHA256SUMS has",
				"db_books_book.json (books.book): checksum mismatch: backup_metadata.json has sha256",
			}
		}, []string{CheckChecksums}},
		{"flipped byte in storage file", func(t *testing.T, dir string) []string {
			rel := firstStorageFile(t, dir)
			editFile(t, dir, rel, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
			return []string{rel + ": checksum mismatch"}
		}, []string{CheckChecksums}},
		{"deleted storage file", func(t *testing.T, dir string) []string {
			rel := firstStorageFile(t, dir)
			if err := os.Remove(filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
			return []string{rel + ": listed in SHA256SUMS but missing", "files/: 95 files, backup_metadata.json says 96"}
		}, []string{CheckChecksums, CheckFiles}},
		{"deleted fixture", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, "db_books_chapter.json"))
			return []string{"db_books_chapter.json: listed in SHA256SUMS but missing", "db_books_chapter.json (books.chapter): missing"}
		}, []string{CheckChecksums, CheckFixtures, CheckRows}},
		{"extra file", func(t *testing.T, dir string) []string {
			if err := os.WriteFile(filepath.Join(dir, "files", "content", "extra.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"files/content/extra.txt: not listed in SHA256SUMS", "files/: 97 files"}
		}, []string{CheckChecksums, CheckFiles}},
		{"extra fixture", func(t *testing.T, dir string) []string {
			os.WriteFile(filepath.Join(dir, "db_books_tag.json"), []byte("[]"), 0o644)
			return []string{"db_books_tag.json: not listed in SHA256SUMS", "db_books_tag.json: fixture not listed in backup_metadata.json models"}
		}, []string{CheckChecksums, CheckFixtures}},
		{"symlink", func(t *testing.T, dir string) []string {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "files", "link")); err != nil {
				t.Skip(err)
			}
			return []string{"files/link: not a regular file"}
		}, []string{CheckChecksums}},
		{"fixture replaced by a symlink", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "db_books_author.json")
			os.Rename(p, p+".moved")
			if err := os.Symlink("db_books_author.json.moved", p); err != nil {
				t.Skip(err)
			}
			return []string{"db_books_author.json: not a regular file", "db_books_author.json (books.author): not a regular file"}
		}, []string{CheckChecksums, CheckFixtures, CheckRows}},
		{"object of the wrong model", func(t *testing.T, dir string) []string {
			editFile(t, dir, "db_books_book.json", replaceOnce(`{"model": "books.book", "pk": 2,`, `{"model": "books.chapter", "pk": 2,`))
			return []string{`db_books_book.json: object 1 (pk 2) has model "books.chapter", want "books.book"`}
		}, []string{CheckChecksums, CheckFixtures}},
		{"duplicated pk", func(t *testing.T, dir string) []string {
			editFile(t, dir, "db_books_book.json", replaceOnce(`{"model": "books.book", "pk": 3,`, `{"model": "books.book", "pk": 1,`))
			return []string{"db_books_book.json (books.book): pk 1 appears 2 times"}
		}, []string{CheckChecksums, CheckFixtures}},
		{"unparsable fixture", func(t *testing.T, dir string) []string {
			editFile(t, dir, "db_books_author.json", func(b []byte) []byte { return b[:len(b)/2] })
			return []string{"db_books_author.json (books.author): read fixture"}
		}, []string{CheckChecksums, CheckFixtures, CheckRows}},
		{"rows changed in metadata", func(t *testing.T, dir string) []string {
			editMetadata(t, dir, func(m *layout.Metadata) {
				for i := range m.Models {
					if m.Models[i].Label == "books.book" {
						m.Models[i].Rows++
					}
				}
			})
			return []string{"db_books_book.json (books.book): 4 objects, backup_metadata.json says 5 rows"}
		}, []string{CheckRows}},
		{"files count changed in metadata", func(t *testing.T, dir string) []string {
			editMetadata(t, dir, func(m *layout.Metadata) { m.Files.Bytes += 10 })
			return []string{"files/: 297891 bytes, backup_metadata.json says 297901"}
		}, []string{CheckFiles}},
		{"manifest changed in metadata", func(t *testing.T, dir string) []string {
			editMetadata(t, dir, func(m *layout.Metadata) { m.ManifestSHA256 = strings.Repeat("0", 64) })
			return []string{"backup_metadata.json: manifest_sha256 " + strings.Repeat("0", 64) + " does not match SHA256SUMS"}
		}, []string{CheckChecksums}},
		{"SHA256SUMS line changed", func(t *testing.T, dir string) []string {
			editFile(t, dir, layout.FileSums, func(b []byte) []byte {
				if b[0] == '0' { // another hex digit either way
					b[0] = '1'
				} else {
					b[0] = '0'
				}
				return b
			})
			return []string{"does not match SHA256SUMS", ": checksum mismatch: SHA256SUMS has"}
		}, []string{CheckChecksums}},
		{"missing SHA256SUMS", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, layout.FileSums))
			return []string{"SHA256SUMS: missing"}
		}, []string{CheckChecksums}},
		// Item 7: metadata that says this tool wrote the backup ties SHA256SUMS to it.
		{"manifest_sha256 removed", func(t *testing.T, dir string) []string {
			editMetadata(t, dir, func(m *layout.Metadata) { m.ManifestSHA256 = "" })
			return []string{"backup_metadata.json: no manifest_sha256"}
		}, []string{CheckChecksums}},
		{"SHA256SUMS deleted and format_version removed", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, layout.FileSums))
			editFile(t, dir, layout.FileMetadata, func(b []byte) []byte {
				return regexp.MustCompile(`"format_version": \d+,\s*`).ReplaceAll(b, nil)
			})
			return []string{"SHA256SUMS: missing, but backup_metadata.json says webnovel-backup wrote this backup"}
		}, []string{CheckChecksums}},
		{"missing metadata", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, layout.FileMetadata))
			return []string{"backup_metadata.json: missing"}
		}, []string{CheckMetadata, CheckRows, CheckFiles}},
		{"unreadable metadata", func(t *testing.T, dir string) []string {
			editFile(t, dir, layout.FileMetadata, func(b []byte) []byte { return b[:len(b)-10] })
			return []string{"backup_metadata.json: parse metadata"}
		}, []string{CheckMetadata}},
		{"metadata replaced by a symlink", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, layout.FileMetadata)
			os.Rename(p, p+".moved")
			if err := os.Symlink(layout.FileMetadata+".moved", p); err != nil {
				t.Skip(err)
			}
			return []string{"backup_metadata.json: not a regular file"}
		}, []string{CheckMetadata}},
		{"status not complete", func(t *testing.T, dir string) []string {
			editMetadata(t, dir, func(m *layout.Metadata) { m.Status = "running" })
			return []string{`backup_metadata.json: status "running", want "complete"`}
		}, []string{CheckMetadata}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := backupCopy(t)
			want := tt.corrupt(t, dir)
			rep, err := VerifyDir(context.Background(), dir, Options{Workers: 2})
			if err != nil {
				t.Fatalf("VerifyDir: %v", err)
			}
			if rep.OK {
				t.Fatalf("corrupt backup verified OK: %+v", rep.Checks)
			}
			all := strings.Join(rep.Problems, "\n")
			for _, w := range want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem contains %q; problems:\n%s", w, all)
				}
			}
			failed := map[string]bool{}
			for _, c := range rep.Checks {
				failed[c.Name] = !c.OK
			}
			for _, name := range tt.failed {
				if !failed[name] {
					t.Errorf("check %s passed; checks %+v", name, rep.Checks)
				}
			}
			if len(rep.Checks) != 6 {
				t.Errorf("%d checks, want 6", len(rep.Checks))
			}
		})
	}
}

func TestVerifyManyWrongObjects(t *testing.T) {
	dir := t.TempDir()
	writePythonMetadata(t, dir)
	var b strings.Builder
	b.WriteString("[")
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		// pks 0..9 twice, all of the wrong model
		b.WriteString(`{"model": "books.chapter", "pk": ` + string(rune('0'+i%10)) + `, "fields": {}}`)
	}
	b.WriteString("]")
	os.WriteFile(filepath.Join(dir, "db_books_book.json"), []byte(b.String()), 0o644)
	rep, err := VerifyDir(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// maxListed of each kind, and one line for the rest of each.
	if got, want := len(rep.Problems), 2*(maxListed+1); got != want {
		t.Errorf("%d problems, want %d:\n%s", got, want, strings.Join(rep.Problems, "\n"))
	}
	all := strings.Join(rep.Problems, "\n")
	for _, w := range []string{`15 more objects of another model than "books.book"`, "5 more duplicated pks", "pk 0 appears 2 times"} {
		if !strings.Contains(all, w) {
			t.Errorf("no problem contains %q:\n%s", w, all)
		}
	}
}

func TestPKSet(t *testing.T) {
	tests := []struct {
		pks  []string
		want string
	}{
		{[]string{"1", "2", "3"}, ""},
		{[]string{"3", "1", "2"}, ""}, // any order is fine
		{[]string{"1", "2", "1"}, "1×2"},
		{[]string{"5", "5", "5", "2", "2"}, "2×2 5×3"},
		{[]string{`"a"`, `"b"`, ` "a" `}, `"a"×2`},
		{[]string{`"1"`, "1"}, ""}, // a string is not a number
		{[]string{"null", "null", ""}, ""},
		{[]string{"1.0", "1.00"}, "1.0×2"}, // not integers: compared canonically
		{[]string{`"\u00e9"`, `"é"`}, `"é"×2`},
	}
	for _, tt := range tests {
		var s pkSet
		for _, p := range tt.pks {
			s.add([]byte(p))
		}
		var got []string
		for _, d := range s.duplicates() {
			got = append(got, d.pk+"×"+string(rune('0'+d.n)))
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("duplicates of %q = %q, want %q", tt.pks, g, tt.want)
		}
	}
}

// pythonMetadata is an example of the metadata the Python command writes.
const pythonMetadata = `{
  "backup_timestamp": "2024-12-01T14:30:22.123456",
  "django_version": "4.2.0",
  "backup_options": {
    "include_files": true,
    "skip_db": false,
    "compress": false,
    "models": "all"
  },
  "storage_backend": "FileSystemStorage",
  "database_engine": "django.db.backends.sqlite3"
}
`

func writePythonMetadata(t testing.TB, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, layout.FileMetadata), []byte(pythonMetadata), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pythonBackup lays the reference fixtures and files out as the Python command does: no
// SHA256SUMS, metadata without counts.
func pythonBackup(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "platform", "testdata", "sample-fixtures")
	dir := filepath.Join(t.TempDir(), "backup_20241201_143022")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fixtures, err := filepath.Glob(filepath.Join(src, "db_*.json"))
	if err != nil || len(fixtures) != 10 {
		t.Fatalf("reference fixtures: %v %v", fixtures, err)
	}
	for _, f := range fixtures {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644)
	}
	copyTree(t, filepath.Join(src, "files"), filepath.Join(dir, "files"))
	os.WriteFile(filepath.Join(dir, layout.FileRestore), []byte("#!/bin/sh\n"), 0o755)
	writePythonMetadata(t, dir)
	return dir
}

func TestVerifyPythonBackup(t *testing.T) {
	dir := pythonBackup(t)
	rep := verifyOK(t, dir)
	if rep.Format != 0 || rep.Status != "" {
		t.Errorf("format %d status %q, want 0 and none", rep.Format, rep.Status)
	}
	if !contains(rep.Warnings, WarnNoSums) {
		t.Errorf("warnings %q lack %q", rep.Warnings, WarnNoSums)
	}
	if len(rep.Models) != 10 || rep.Files == 0 {
		t.Errorf("%d models, %d files", len(rep.Models), rep.Files)
	}
	for _, m := range rep.Models {
		if m.MetadataRows != -1 || m.Rows == 0 || !m.OK {
			t.Errorf("model %+v", m)
		}
	}
	// The report's JSON is a format: pin it (without the temporary path and the time).
	rep.Path, rep.Duration = "PATH", 0
	got, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "python_report.json", append(got, '\n'))

	// Problems are still found without SHA256SUMS.
	editFile(t, dir, "db_books_language.json", replaceOnce(`"pk": 2,`, `"pk": 1,`))
	rep, err = VerifyDir(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !strings.Contains(strings.Join(rep.Problems, "\n"), "db_books_language.json (books.language): pk 1 appears 2 times") {
		t.Errorf("duplicate pk in a Python backup: ok %v problems %q", rep.OK, rep.Problems)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestReportJSONKeys(t *testing.T) {
	data, err := json.Marshal(&Report{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"path", "ok", "format", "run_id", "status", "checks", "problems", "warnings", "models", "files", "bytes", "duration_seconds"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %s", k, data)
		}
	}
	for _, k := range []string{"checks", "problems", "warnings", "models"} {
		if string(m[k]) != "[]" {
			t.Errorf("%s = %s, want []", k, m[k])
		}
	}
	if len(m) != 12 {
		t.Errorf("%d keys: %s", len(m), data)
	}
}

func TestVerifyTruncatedArchive(t *testing.T) {
	_, arch := sharedBackup(t)
	data, err := os.ReadFile(arch)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(arch))
	os.WriteFile(p, data[:len(data)/2], 0o644)
	tmp := t.TempDir()
	rep, err := Verify(context.Background(), p, Options{TempDir: tmp})
	if err != nil {
		t.Fatalf("truncated archive: error %v, want a report", err)
	}
	if rep.OK || len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0], filepath.Base(arch)+": extract") {
		t.Errorf("truncated archive: ok %v problems %q", rep.OK, rep.Problems)
	}
	if len(rep.Checks) == 0 || rep.Checks[0].Name != CheckArchive || rep.Checks[0].OK {
		t.Errorf("checks %+v", rep.Checks)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary folder not removed: %v", left)
	}
}

// gzipTar writes a tar.gz holding the named files (folders end in "/").
func gzipTar(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Size: 2}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("[]"))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestVerifyUnsafeArchive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "backup_20241201_143022.tar.gz")
	data := gzipTar(t, "backup_20241201_143022/", "backup_20241201_143022/db_books_book.json", "backup_20241201_143022/../../evil.sh")
	os.WriteFile(p, data, 0o644)
	tmp := t.TempDir()
	rep, err := Verify(context.Background(), p, Options{TempDir: tmp})
	if err == nil {
		t.Fatalf("unsafe archive: no error, report %+v", rep)
	}
	if !errors.Is(err, archive.ErrUnsafe) || !strings.Contains(err.Error(), "../../evil.sh") {
		t.Errorf("error %q: want ErrUnsafe naming the entry", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "evil.sh")); err == nil {
		t.Error("entry written outside")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary folder not removed: %v", left)
	}
}

func TestVerifyCannotRun(t *testing.T) {
	if _, err := Verify(context.Background(), filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Error("missing path: no error")
	}
	if _, err := VerifyDir(context.Background(), filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Error("VerifyDir of a missing folder: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir, _ := sharedBackup(t)
	if _, err := Verify(ctx, dir, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v", err)
	}
}

// FuzzVerifyFixture verifies a backup whose one fixture is arbitrary bytes: never an error
// (the backup is bad, not the run) and OK only for a well-formed fixture.
func FuzzVerifyFixture(f *testing.F) {
	f.Add([]byte(`[{"model": "books.book", "pk": 1, "fields": {}}]`))
	f.Add([]byte(`[{"model": "books.book", "pk": 1, "fields": {}}, {"model": "books.book", "pk": 1, "fields": {}}]`))
	f.Add([]byte(`[{"model": "books.Book", "pk": "x", "fields": {"a": [1, {"b": null}]}}]`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{}`))
	dir := f.TempDir()
	writePythonMetadata(f, dir)
	name := filepath.Join(dir, "db_books_book.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyDir(context.Background(), dir, Options{Workers: 1})
		if err != nil {
			t.Fatalf("VerifyDir: %v", err)
		}
		if len(rep.Models) != 1 {
			t.Fatalf("models %+v", rep.Models)
		}
		if rep.OK != (len(rep.Problems) == 0) || rep.OK != rep.Models[0].OK {
			t.Fatalf("ok %v, model ok %v, problems %q", rep.OK, rep.Models[0].OK, rep.Problems)
		}
		if rep.OK {
			// A good fixture reads back to its end with the same count.
			r := fixtureCount(t, data)
			if r != rep.Models[0].Rows {
				t.Fatalf("rows %d, reader counts %d", rep.Models[0].Rows, r)
			}
		}
	})
}

func fixtureCount(t *testing.T, data []byte) int64 {
	t.Helper()
	res := readFixture(context.Background(), "", fixtureTarget{file: writeTemp(t, data)})
	if !res.readable {
		t.Fatalf("fixture reported OK does not read: %q", res.problems)
	}
	return res.rows
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkVerify verifies a pipeline-made backup of about 50 MB of files.
func BenchmarkVerify(b *testing.B) {
	opts := demo.DefaultOptions()
	opts.FileBytes = 520_000 // × 96 files
	root := b.TempDir()
	dir, _, _, err := makeBackup(context.Background(), root, opts, false)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			info, _ := d.Info()
			size += info.Size()
		}
		return err
	})
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		rep, err := VerifyDir(context.Background(), dir, Options{})
		if err != nil || !rep.OK {
			b.Fatalf("verify: %v %+v", err, rep)
		}
	}
}
