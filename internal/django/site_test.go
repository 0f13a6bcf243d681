package django_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// modelTables are the platform's model tables; mutate changes a column of each.
var modelTables = []string{
	"books_language", "books_author", "accounts_user", "books_book", "books_chapter",
	"books_chaptermedia", "books_bookfile", "books_changelog", "accounts_bookcollaborator",
	"accounts_translationassignment",
}

// m2mTables are the auto many-to-many tables; a restore reloads them, mutate leaves them.
var m2mTables = []string{"accounts_user_groups", "accounts_user_user_permissions", "books_book_related_books"}

// m2mColumns are the columns of the many-to-many tables that hold data: a restore reloads
// their rows under new ids, as loaddata does.
var m2mColumns = map[string]string{
	"accounts_user_groups":           "user_id, group_id",
	"accounts_user_user_permissions": "user_id, permission_id",
	"books_book_related_books":       "from_book_id, to_book_id",
}

// mutations change every model table and two storage files, so that a restore has
// something to put back in each.
var mutations = []string{
	`UPDATE books_language SET name = name || ' *'`,
	`UPDATE books_author SET name = name || ' *'`,
	`UPDATE accounts_user SET display_name = display_name || ' *'`,
	`UPDATE books_book SET title = title || ' *'`,
	`UPDATE books_chapter SET title = title || ' *'`,
	`UPDATE books_chaptermedia SET caption = caption || ' *'`,
	`UPDATE books_bookfile SET checksum = 'changed'`,
	`UPDATE books_changelog SET action = action || '*'`,
	`UPDATE accounts_bookcollaborator SET role = role || '*'`,
	`UPDATE accounts_translationassignment SET status = status || '*'`,
}

// site is the test project configured for one database and one storage folder.
type site struct {
	t        *testing.T
	bin      string
	python   string
	manage   string // tests/project/manage.py
	work     string // manage.py's working folder: ./backups is here
	media    string // MEDIA_ROOT
	dbURL    string // the same database as a dj-database-url, to run the binary and read state
	database map[string]any
	extraEnv []string // more of manage.py's environment (WNB_TEST_S3)
	dirty    bool     // the state differs from the reference
}

// newSite makes the project's database with Django's migrate and fills it and MEDIA_ROOT
// with the platform's sample through restore_data, from a backup as the Python command wrote
// it.
func newSite(t *testing.T, engine string, extraEnv ...string) *site {
	t.Helper()
	bin, python := tools(t)
	manage, err := filepath.Abs(filepath.Join("tests", "project", "manage.py"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	s := &site{t: t, bin: bin, python: python, manage: manage, work: work, media: filepath.Join(work, "media"), extraEnv: extraEnv}
	if err := os.MkdirAll(s.media, 0o755); err != nil {
		t.Fatal(err)
	}
	switch engine {
	case "sqlite":
		path := filepath.Join(work, "db folder", "db.sqlite3") // a space, to be quoted in the URL
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		s.database = map[string]any{"ENGINE": "django.db.backends.sqlite3", "NAME": path}
		s.dbURL = "sqlite:///" + (&url.URL{Path: path}).EscapedPath()
		s.mustManage("migrate", "-v", "0")
	case "postgres":
		if exec.Command(python, "-c", "import psycopg2").Run() != nil {
			if os.Getenv(pgtest.EnvRequire) == "1" {
				t.Fatalf("a Django project on PostgreSQL needs psycopg2 (Debian: python3-psycopg2); required: %s=1", pgtest.EnvRequire)
			}
			t.Skip("no psycopg2 (Debian: python3-psycopg2) for a Django project on PostgreSQL")
		}
		s.dbURL = pgtest.URL(t)
		s.database = postgresSettings(t, s.dbURL)
		s.mustManage("migrate", "-v", "0")
	}
	seed := pythonBackup(t, s.database["ENGINE"].(string))
	s.mustManage("restore_data", seed, "--force")
	return s
}

// postgresSettings is DATABASES['default'] for a postgres:// URL.
func postgresSettings(t *testing.T, raw string) map[string]any {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return map[string]any{
		"ENGINE": "django.db.backends.postgresql", "NAME": strings.TrimPrefix(u.Path, "/"),
		"USER": u.User.Username(), "PASSWORD": pw, "HOST": u.Hostname(), "PORT": u.Port(),
		"OPTIONS": map[string]any{"sslmode": u.Query().Get("sslmode")},
	}
}

// pythonBackup writes the platform's sample as the Python backup_data wrote it: fixtures,
// files/ and the old metadata, without checksums.
func pythonBackup(t *testing.T, engine string) string {
	t.Helper()
	const sample = "../platform/testdata/sample-fixtures"
	dir := filepath.Join(t.TempDir(), "backup_20241201_143022")
	fixtures, err := filepath.Glob(filepath.Join(sample, "db_*.json"))
	if err != nil || len(fixtures) != 10 {
		t.Fatalf("sample fixtures: %v %v", fixtures, err)
	}
	for _, f := range fixtures {
		if err := copyTree(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(filepath.Join(sample, "files"), filepath.Join(dir, "files")); err != nil {
		t.Fatal(err)
	}
	meta := fmt.Sprintf(`{"backup_timestamp": "2024-12-01T14:30:22.123456", "django_version": "3.2.25", `+
		`"backup_options": {"include_files": true, "skip_db": false, "compress": false, "models": "all"}, `+
		`"storage_backend": "FileSystemStorage", "database_engine": %q}`, engine)
	if err := os.WriteFile(filepath.Join(dir, "backup_metadata.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// env is the environment of manage.py: the project's settings come from it, and nothing
// the binary reads is inherited from the test's own environment.
func (s *site) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains([]string{"DATABASE_URL", "STORAGE_URL", "WEBNOVEL_BACKUP_BIN", "DJANGO_SETTINGS_MODULE", "PGPASSWORD"}, k) &&
			!strings.HasPrefix(k, "WNB_TEST_") {
			env = append(env, kv)
		}
	}
	env = append(env, "WNB_TEST_DATABASE="+mustJSON(s.t, s.database), "WNB_TEST_MEDIA_ROOT="+s.media,
		"WEBNOVEL_BACKUP_BIN="+s.bin, "PYTHONDONTWRITEBYTECODE=1")
	env = append(env, s.extraEnv...)
	return append(env, extra...)
}

// manageIn runs python manage.py args with stdin (nil: /dev/null).
func (s *site) manageIn(stdin *os.File, args ...string) result {
	s.t.Helper()
	return run(s.t, s.work, s.env(), stdin, s.python, append([]string{s.manage}, args...)...)
}

func (s *site) mustManage(args ...string) result {
	s.t.Helper()
	r := s.manageIn(nil, args...)
	if r.code != 0 {
		s.t.Fatalf("manage.py %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// mustBinary runs webnovel-backup itself on the site's database and storage.
func (s *site) mustBinary(args ...string) {
	s.t.Helper()
	env := append(os.Environ(), "DATABASE_URL="+s.dbURL, "STORAGE_URL="+s.media)
	if r := run(s.t, s.work, env, nil, s.bin, args...); r.code != 0 {
		s.t.Fatalf("webnovel-backup %s: %s", strings.Join(args, " "), r)
	}
}

// state is every row of the platform's tables and every stored file, for comparison.
type state struct {
	tables map[string]string // table -> its rows, ordered by id
	files  map[string]string // storage key -> SHA-256
}

func (s *site) state() state {
	s.t.Helper()
	st := state{tables: map[string]string{}, files: map[string]string{}}
	db := openDB(s.t, s.dbURL)
	for _, table := range append(slices.Clone(modelTables), m2mTables...) {
		query := "SELECT * FROM " + table + " ORDER BY id"
		if cols, ok := m2mColumns[table]; ok {
			query = "SELECT " + cols + " FROM " + table + " ORDER BY " + cols
		}
		rows, err := db.Query(query)
		if err != nil {
			s.t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		var b strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				s.t.Fatalf("read %s: %v", table, err)
			}
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v\x1f", v)
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			s.t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
		st.tables[table] = b.String()
	}
	s.readFiles(st.files)
	return st
}

func (s *site) readFiles(into map[string]string) {
	s.t.Helper()
	err := filepath.WalkDir(s.media, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.media, p)
		into[rel] = sha(data)
		return nil
	})
	if err != nil {
		s.t.Fatalf("read the storage: %v", err)
	}
}

// mutate changes every model table and two files (one rewritten, one deleted).
func (s *site) mutate() {
	s.t.Helper()
	s.dirty = true
	db := openDB(s.t, s.dbURL)
	for _, q := range mutations {
		if _, err := db.Exec(q); err != nil {
			s.t.Fatalf("%s: %v", q, err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.media, "content", "1", "1.json"), []byte(`{"changed": true}`), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.media, "images", "covers", "book_1.png")); err != nil {
		s.t.Fatal(err)
	}
}

// reset restores the reference backup with the binary when an earlier step left the site
// changed.
func (s *site) reset(refBackup string, ref state) {
	s.t.Helper()
	if !s.dirty {
		return
	}
	s.mustBinary("restore", refBackup, "--force")
	s.expect(ref, modelTables, true)
	s.dirty = false
}

// expect checks the site against the reference: the tables named and, if files, the
// storage must equal it; the other model tables and the storage must still differ (they
// were mutated and left alone). The many-to-many tables are never mutated.
func (s *site) expect(ref state, restored []string, files bool) {
	s.t.Helper()
	got := s.state()
	for _, table := range modelTables {
		same := got.tables[table] == ref.tables[table]
		switch want := slices.Contains(restored, table); {
		case want && !same:
			s.t.Errorf("%s was not restored:\n got %q\nwant %q", table, got.tables[table], ref.tables[table])
		case !want && same:
			s.t.Errorf("%s was restored, but it is outside the command's scope", table)
		}
	}
	for _, table := range m2mTables {
		if got.tables[table] != ref.tables[table] {
			s.t.Errorf("%s changed:\n got %q\nwant %q", table, got.tables[table], ref.tables[table])
		}
	}
	same := fmt.Sprint(got.files) == fmt.Sprint(ref.files)
	switch {
	case files && !same:
		s.t.Errorf("storage was not restored:\n got %v\nwant %v", got.files, ref.files)
	case !files && same:
		s.t.Errorf("storage was restored, but it is outside the command's scope")
	}
	if len(restored) == len(modelTables) && files {
		s.dirty = false
	}
}
