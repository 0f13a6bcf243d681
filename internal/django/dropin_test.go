package django_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// backupLines are the documented backup_data lines, with where each writes and what it
// covers (nil tables: none).
var backupLines = []struct {
	line   string
	dir    string
	tables []string
	files  bool
}{
	{"python manage.py backup_data", "backups", modelTables, true},
	{"python manage.py backup_data --backup-dir /path/to/backups", "/path/to/backups", modelTables, true},
	{"python manage.py backup_data --skip-files", "backups", modelTables, false},
	{"python manage.py backup_data --skip-db", "backups", nil, true},
	{"python manage.py backup_data --models books.Book books.Chapter accounts.User", "backups", []string{"books_book", "books_chapter", "accounts_user"}, true},
	{"python manage.py backup_data --compress", "backups", modelTables, true},
	{"python manage.py backup_data --skip-db --include-files", "backups", nil, true},
	{"python manage.py backup_data --backup-dir /backups/daily --compress", "/backups/daily", modelTables, true},
	{"python manage.py backup_data --backup-dir /backups/weekly --compress", "/backups/weekly", modelTables, true},
	{"python manage.py backup_data --backup-dir /backups/pre-deploy", "/backups/pre-deploy", modelTables, true},
}

// restoreLines are the documented restore_data lines; those without --force or --dry-run
// ask for confirmation, which is typed on a terminal.
var restoreLines = []struct {
	line     string
	terminal bool
	tables   []string
	files    bool
}{
	{"python manage.py restore_data /path/to/backup_20241201_143022", true, modelTables, true},
	{"python manage.py restore_data /path/to/backup_20241201_143022.tar.gz", true, modelTables, true},
	{"python manage.py restore_data /path/to/backup --dry-run", false, nil, false},
	{"python manage.py restore_data /path/to/backup --force", false, modelTables, true},
	{"python manage.py restore_data /path/to/backup --skip-files", true, modelTables, false},
	{"python manage.py restore_data /path/to/backup --skip-db", true, nil, true},
}

// args turns a documented line into manage.py's arguments: documented backups become the
// given ones, other absolute paths land in the site's folder.
func (s *site) args(line string, backups map[string]string) []string {
	f := strings.Fields(line)[2:] // python manage.py
	for i, a := range f {
		if p, ok := backups[a]; ok {
			f[i] = p
		} else if strings.HasPrefix(a, "/") {
			f[i] = filepath.Join(s.work, a)
		}
	}
	return f
}

// TestExampleLines runs every documented line of the three commands through the installed
// package and the real binary, on SQLite and PostgreSQL: each backup is restored over a
// changed database and storage and must bring back exactly what it covers and nothing else;
// each restore line must restore exactly its scope (a dry run nothing); test_backup_restore
// passes and changes nothing.
func TestExampleLines(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			s := newSite(t, engine)
			before := listDir(t, filepath.Join(s.work, "ref"))
			s.mustBinary("backup", "--backup-dir", filepath.Join(s.work, "ref"))
			refFolder := newEntry(t, filepath.Join(s.work, "ref"), before)
			s.mustBinary("backup", "--compress", "--backup-dir", filepath.Join(s.work, "ref-archive"))
			refArchive := newEntry(t, filepath.Join(s.work, "ref-archive"), nil)
			ref := s.state()
			if len(ref.files) == 0 || !strings.Contains(ref.tables["books_chapter"], "\n") {
				t.Fatalf("the sample was not loaded: %d files, chapters %q", len(ref.files), ref.tables["books_chapter"])
			}
			backups := map[string]string{
				"/path/to/backup_20241201_143022":        refFolder,
				"/path/to/backup_20241201_143022.tar.gz": refArchive,
				"/path/to/backup":                        refFolder,
			}
			for _, tc := range backupLines {
				t.Run(tc.line, func(t *testing.T) {
					s.t = t
					s.reset(refFolder, ref)
					dir := filepath.Join(s.work, tc.dir)
					before := listDir(t, dir)
					s.mustManage(s.args(tc.line, nil)...)
					backup := newEntry(t, dir, before)
					s.mutate()
					s.mustManage("restore_data", backup, "--force")
					s.expect(ref, tc.tables, tc.files)
				})
			}
			for _, tc := range restoreLines {
				t.Run(tc.line, func(t *testing.T) {
					s.t = t
					s.reset(refFolder, ref)
					s.mutate()
					var stdin *os.File
					if tc.terminal {
						stdin = terminal(t)
					}
					r := s.manageIn(stdin, s.args(tc.line, backups)...)
					if r.code != 0 {
						t.Fatalf("%s: %s", tc.line, r)
					}
					if tc.terminal && !strings.Contains(r.stdout, "Type yes to restore") {
						t.Errorf("%s did not ask for confirmation: %s", tc.line, r)
					}
					s.expect(ref, tc.tables, tc.files)
				})
			}
			t.Run("python manage.py test_backup_restore", func(t *testing.T) {
				s.t = t
				s.reset(refFolder, ref)
				r := s.mustManage("test_backup_restore")
				if !strings.Contains(r.stdout, "PASS") {
					t.Errorf("test_backup_restore did not pass: %s", r)
				}
				s.dirty = true // expect below must find everything as the reference
				s.expect(ref, modelTables, true)
			})
		})
	}
}

// TestMissingBinary: without the binary each command fails with an error that says how to
// install it, and changes nothing.
func TestMissingBinary(t *testing.T) {
	_, python := tools(t)
	s := &site{t: t, python: python, work: t.TempDir()}
	s.manage, _ = filepath.Abs(filepath.Join("tests", "project", "manage.py"))
	s.media = filepath.Join(s.work, "media")
	s.database = map[string]any{"ENGINE": "django.db.backends.sqlite3", "NAME": filepath.Join(s.work, "db.sqlite3")}
	emptyPath := "PATH=" + t.TempDir()
	for _, tc := range []struct {
		name, binEnv, reason string
	}{
		{"not on PATH", "", "webnovel-backup was not found on PATH"},
		{"WEBNOVEL_BACKUP_BIN missing", "/nonexistent/webnovel-backup", "WEBNOVEL_BACKUP_BIN=/nonexistent/webnovel-backup is not an executable file"},
	} {
		for _, args := range [][]string{{"backup_data"}, {"restore_data", "/backups/backup_20241201_143022", "--force"}, {"test_backup_restore"}} {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				s.t, s.bin = t, tc.binEnv
				env := slices.DeleteFunc(s.env(emptyPath), func(kv string) bool {
					return tc.binEnv == "" && strings.HasPrefix(kv, "WEBNOVEL_BACKUP_BIN=")
				})
				r := run(t, s.work, env, nil, s.python, append([]string{s.manage}, args...)...)
				if r.code == 0 {
					t.Fatalf("exit 0 without a binary: %s", r)
				}
				for _, want := range []string{tc.reason, "go install github.com/webnovel/webnovel-backup/cmd/webnovel-backup@latest"} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr does not say %q: %s", want, r)
					}
				}
				if names := listDir(t, s.work); len(names) != 0 {
					t.Errorf("the failed command left %v", names)
				}
			})
		}
	}
}
