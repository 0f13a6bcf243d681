package database

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

func TestOpenMissingSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sqlite3")
	db, err := Open(context.Background(), "sqlite:///"+path)
	if err == nil {
		db.Close()
		t.Fatal("Open of a missing SQLite file succeeded")
	}
	if !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not say the file does not exist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created %s", path)
	}
}

func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.sqlite3")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(context.Background(), "sqlite:///"+path); err == nil {
		db.Close()
		t.Fatal("Open of a junk file succeeded")
	}
}

func TestOpenMissingPostgres(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database_wnb"
	db, err := Open(context.Background(), u.String())
	if err == nil {
		db.Close()
		t.Fatal("Open of a missing PostgreSQL database succeeded")
	}
	if !strings.Contains(err.Error(), `database "no_such_database_wnb" does not exist`) {
		t.Errorf("error %q does not say the database does not exist", err)
	}
}

func TestCreateSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new.sqlite3")
	db, err := Create(ctx, "sqlite:///"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Create did not create the file: %v", err)
	}
	if got := db.Source(); got.Engine != SQLite || got.DSN != path {
		t.Errorf("Source() = %+v", got)
	}
}

// roundTripRows are values as the demo generator passes them, and the fixture objects Django
// writes for them (compact).
var roundTripTables = []struct {
	table   string
	label   string
	columns []string
	rows    [][]any
	want    string
}{
	{"books_language", "books.language", []string{"id", "code", "name"},
		[][]any{{int64(1), "en", "English"}, {int64(7), "zh", "中文 \"Chinese\""}},
		`{"model": "books.language", "pk": 1, "fields": {"code": "en", "name": "English"}}, ` +
			`{"model": "books.language", "pk": 7, "fields": {"code": "zh", "name": "中文 \"Chinese\""}}`},
	{"books_author", "books.author", []string{"id", "name", "bio", "created_at"},
		[][]any{{int64(3), "Ann", "line\nline", time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)}},
		`{"model": "books.author", "pk": 3, "fields": {"name": "Ann", "bio": "line\nline", "created_at": "2024-02-29T13:14:15.123Z"}}`},
	{"accounts_user", "accounts.user", []string{"id", "password", "last_login", "is_superuser", "username", "first_name",
		"last_name", "email", "is_staff", "is_active", "date_joined", "display_name", "bio", "avatar", "preferred_language_id"},
		[][]any{{int64(2), "!x", nil, true, "u2", "F", "L", "u2@example.com", false, true,
			time.Date(2023, 1, 2, 4, 5, 6, 0, time.FixedZone("CET", 3600)), "U", "", "images/avatars/u2.png", int64(7)}},
		`{"model": "accounts.user", "pk": 2, "fields": {"password": "!x", "last_login": null, "is_superuser": true, ` +
			`"username": "u2", "first_name": "F", "last_name": "L", "email": "u2@example.com", "is_staff": false, ` +
			`"is_active": true, "date_joined": "2023-01-02T03:05:06Z", "display_name": "U", "bio": "", ` +
			`"preferred_language": 7, "avatar": "images/avatars/u2.png", "groups": [], "user_permissions": []}}`},
	{"books_book", "books.book", []string{"id", "title", "slug", "description", "status", "cover_image", "rating",
		"word_count", "is_published", "published_at", "metadata", "created_at", "updated_at", "author_id", "language_id", "owner_id"},
		[][]any{
			{int64(1), "T", "t-1", "d", "ongoing", "", "4.25", int64(10), true, nil, `{"a": 1, "bb": [1, 2.5, "x"]}`,
				time.Date(2023, 1, 1, 0, 0, 0, 500000, time.UTC), time.Date(2023, 1, 1, 0, 0, 0, 999999000, time.UTC), int64(3), int64(1), int64(2)},
			{int64(2), "U", "u-2", "", "completed", "c.png", nil, int64(0), false, nil, `[]`,
				time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(3), int64(7), nil},
		},
		`{"model": "books.book", "pk": 1, "fields": {"title": "T", "slug": "t-1", "description": "d", "author": 3, ` +
			`"language": 1, "owner": 2, "status": "ongoing", "cover_image": "", "rating": "4.25", "word_count": 10, ` +
			`"is_published": true, "published_at": null, "metadata": {"a": 1, "bb": [1, 2.5, "x"]}, ` +
			`"created_at": "2023-01-01T00:00:00.000Z", "updated_at": "2023-01-01T00:00:00.999Z", "related_books": [2]}}, ` +
			`{"model": "books.book", "pk": 2, "fields": {"title": "U", "slug": "u-2", "description": "", "author": 3, ` +
			`"language": 7, "owner": null, "status": "completed", "cover_image": "c.png", "rating": null, "word_count": 0, ` +
			`"is_published": false, "published_at": null, "metadata": [], "created_at": "2023-01-01T00:00:00Z", ` +
			`"updated_at": "2023-01-01T00:00:00Z", "related_books": []}}`},
	{"books_book_related_books", "", []string{"id", "from_book_id", "to_book_id"},
		[][]any{{int64(1), int64(1), int64(2)}}, ""},
	{"books_chapter", "books.chapter", []string{"id", "number", "title", "content_file", "word_count", "status",
		"published_at", "created_at", "updated_at", "book_id", "translated_from_id"},
		[][]any{
			{int64(5), int64(1), "C1", "content/1/1.json", int64(3), "draft", nil,
				time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(1), int64(6)},
			{int64(6), int64(2), "C2", "", int64(0), "draft", nil,
				time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(1), nil},
		},
		`{"model": "books.chapter", "pk": 5, "fields": {"book": 1, "number": 1, "title": "C1", "content_file": "content/1/1.json", ` +
			`"word_count": 3, "status": "draft", "translated_from": 6, "published_at": null, "created_at": "2023-01-01T00:00:00Z", ` +
			`"updated_at": "2023-01-01T00:00:00Z"}}, ` +
			`{"model": "books.chapter", "pk": 6, "fields": {"book": 1, "number": 2, "title": "C2", "content_file": "", ` +
			`"word_count": 0, "status": "draft", "translated_from": null, "published_at": null, "created_at": "2023-01-01T00:00:00Z", ` +
			`"updated_at": "2023-01-01T00:00:00Z"}}`},
	{"books_changelog", "books.changelog", []string{"id", "change_id", "action", "diff", "created_at", "chapter_id", "user_id"},
		[][]any{
			{int64(1), "0492C4F5-39B2-4C95-8554-55E8F9BDDEA5", "create", nil, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(5), nil},
			{int64(2), "6d39eb43ad9c4dde819d7ca7b46108cc", "edit", `"typo ✏️"`, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(5), int64(2)},
		},
		`{"model": "books.changelog", "pk": 1, "fields": {"chapter": 5, "user": null, "change_id": "0492c4f5-39b2-4c95-8554-55e8f9bddea5", ` +
			`"action": "create", "diff": null, "created_at": "2023-01-01T00:00:00Z"}}, ` +
			`{"model": "books.changelog", "pk": 2, "fields": {"chapter": 5, "user": 2, "change_id": "6d39eb43-ad9c-4dde-819d-7ca7b46108cc", ` +
			`"action": "edit", "diff": "typo ✏️", "created_at": "2023-01-01T00:00:00Z"}}`},
	{"accounts_translationassignment", "accounts.translationassignment", []string{"id", "status", "due_date", "time_spent",
		"completed_at", "created_at", "assigned_by_id", "chapter_id", "target_language_id", "translator_id"},
		[][]any{
			{int64(1), "done", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), int64(93784000500), nil,
				time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), nil, int64(5), int64(7), int64(2)},
			{int64(2), "pending", "2024-03-01", 5 * time.Hour, nil, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), int64(2), int64(6), int64(1), int64(2)},
			{int64(3), "pending", nil, int64(-1), nil, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), nil, int64(6), int64(1), int64(2)},
		},
		`{"model": "accounts.translationassignment", "pk": 1, "fields": {"chapter": 5, "translator": 2, "assigned_by": null, ` +
			`"target_language": 7, "status": "done", "due_date": "2024-02-29", "time_spent": "1 02:03:04.000500", ` +
			`"completed_at": null, "created_at": "2023-01-01T00:00:00Z"}}, ` +
			`{"model": "accounts.translationassignment", "pk": 2, "fields": {"chapter": 6, "translator": 2, "assigned_by": 2, ` +
			`"target_language": 1, "status": "pending", "due_date": "2024-03-01", "time_spent": "05:00:00", ` +
			`"completed_at": null, "created_at": "2023-01-01T00:00:00Z"}}, ` +
			`{"model": "accounts.translationassignment", "pk": 3, "fields": {"chapter": 6, "translator": 2, "assigned_by": null, ` +
			`"target_language": 1, "status": "pending", "due_date": null, "time_spent": "-1 23:59:59.999999", ` +
			`"completed_at": null, "created_at": "2023-01-01T00:00:00Z"}}`},
}

func TestBulkInsertRoundTrip(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		db := openT(t, pgtest.URL(t))
		testBulkInsertRoundTrip(t, db)
	})
	t.Run("sqlite", func(t *testing.T) {
		db, err := Create(context.Background(), "sqlite:///"+filepath.Join(t.TempDir(), "db.sqlite3"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testBulkInsertRoundTrip(t, db)
	})
}

func testBulkInsertRoundTrip(t *testing.T, db *DB) {
	ctx := context.Background()
	for range 2 { // the second call is a no-op
		if err := db.ApplySchema(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if w, err := db.CheckSchema(ctx, platform.Default.Models); err != nil || len(w) > 0 {
		t.Fatalf("schema after ApplySchema: %q, %v", w, err)
	}
	for _, tt := range roundTripTables {
		i := 0
		n, err := db.BulkInsert(ctx, tt.table, tt.columns, func() ([]any, bool) {
			if i == len(tt.rows) {
				return nil, false
			}
			i++
			return append([]any(nil), tt.rows[i-1]...), true
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.table, err)
		}
		if n != int64(len(tt.rows)) {
			t.Errorf("%s: inserted %d rows, want %d", tt.table, n, len(tt.rows))
		}
	}
	for _, tt := range roundTripTables {
		if tt.label == "" {
			continue
		}
		got := exportFile(t, db, "", model(t, tt.label), fixture.Format{Indent: -1})
		if want := "[" + tt.want + "]"; string(got) != want {
			t.Errorf("%s:\n%s", tt.label, firstDiff(got, []byte(want)))
		}
	}
	// The id sequence continues after the largest inserted id.
	var id int64
	var err error
	const insert = `INSERT INTO books_language (code, name) VALUES ('new', 'New') RETURNING id`
	if db.pool != nil {
		err = db.pool.QueryRow(ctx, insert).Scan(&id)
	} else {
		err = db.sql.QueryRowContext(ctx, insert).Scan(&id)
	}
	if err != nil || id != 8 {
		t.Errorf("next language id = %d (%v), want 8", id, err)
	}
	// A bad value fails the whole call and inserts nothing.
	_, err = db.BulkInsert(ctx, "books_language", []string{"id", "code", "name"}, func() ([]any, bool) {
		return []any{int64(1), "en", "duplicate"}, true
	})
	if err == nil || !strings.Contains(err.Error(), "books_language") {
		t.Errorf("duplicate insert: %v", err)
	}
	if _, err := db.BulkInsert(ctx, "books_language", []string{"nope"}, func() ([]any, bool) { return nil, false }); err == nil {
		t.Error("insert into an unknown column succeeded")
	}
}
