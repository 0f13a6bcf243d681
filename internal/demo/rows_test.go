package demo

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

type generated struct {
	columns []string
	rows    [][]any
}

// generate runs every table's row source to the end.
func generate(t *testing.T, opts Options, sqlite bool) map[string]generated {
	t.Helper()
	p, err := newPlan(opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]generated{}
	for _, tb := range p.tables() {
		g := generated{columns: tb.columns}
		next := tb.rows(enc{sqlite: sqlite})
		for {
			row, ok := next()
			if !ok {
				break
			}
			if len(row) != len(tb.columns) {
				t.Fatalf("%s: row has %d values for %d columns: %v", tb.name, len(row), len(tb.columns), row)
			}
			g.rows = append(g.rows, row)
		}
		out[tb.name] = g
	}
	return out
}

// column returns the values of one column.
func (g generated) column(t *testing.T, name string) []any {
	t.Helper()
	i := slices.Index(g.columns, name)
	if i < 0 {
		t.Fatalf("no column %s in %v", name, g.columns)
	}
	out := make([]any, len(g.rows))
	for j, r := range g.rows {
		out[j] = r[i]
	}
	return out
}

func TestColumnsMatchModels(t *testing.T) {
	p, _ := newPlan(DefaultOptions())
	byName := map[string][]string{}
	for _, tb := range p.tables() {
		byName[tb.name] = tb.columns
	}
	for _, m := range platform.Default.Models {
		got, ok := byName[m.Table]
		if !ok {
			t.Errorf("model %s: table %s not generated", m.Label, m.Table)
			continue
		}
		if !slices.Equal(got, m.Columns()) {
			t.Errorf("%s columns = %v, model says %v", m.Table, got, m.Columns())
		}
		for _, f := range m.ManyToMany() {
			if f.ThroughTable == "accounts_user_groups" {
				continue // auth_group is empty, as migrate leaves it
			}
			want := append([]string{"id"}, f.ThroughColumns...)
			if !slices.Equal(byName[f.ThroughTable], want) {
				t.Errorf("%s columns = %v, want %v", f.ThroughTable, byName[f.ThroughTable], want)
			}
		}
	}
}

func TestExpectedRowsMatchesGenerator(t *testing.T) {
	cases := map[string]Options{
		"default":       DefaultOptions(),
		"only chapters": {Seed: 3, Users: 2, Authors: 1, Languages: 1, OnlyChapters: 1003},
		"few chapters":  {Seed: 3, Users: 2, Authors: 1, Languages: 1, Books: 20, OnlyChapters: 7},
		"no users":      {Seed: 4, Authors: 2, Languages: 2, Books: 5, ChaptersPerBook: 3, MediaPerChapter: 2, ChangeLogsPerChapter: 1},
		"empty":         {},
		"wide": {Seed: -9, Users: 40, Authors: 12, Languages: 20, Books: 23, ChaptersPerBook: 7,
			MediaPerChapter: 3, ChangeLogsPerChapter: 4, FileBytes: 10},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			want := ExpectedRows(o)
			got := generate(t, o, false)
			if len(got)+len(seededBySchema) != len(want) {
				t.Errorf("%d tables generated (+%d by the schema), %d expected", len(got), len(seededBySchema), len(want))
			}
			for table, n := range want {
				if seededBySchema[table] {
					continue
				}
				if int64(len(got[table].rows)) != n {
					t.Errorf("%s: %d rows generated, ExpectedRows says %d", table, len(got[table].rows), n)
				}
			}
		})
	}
	if n := ExpectedRows(Options{OnlyChapters: 1003, Authors: 1, Languages: 1})["books_chapter"]; n != 1003 {
		t.Errorf("OnlyChapters 1003 gives %d chapters", n)
	}
	if ExpectedRows(Options{Books: 1}) != nil {
		t.Error("books without authors are accepted")
	}
	if ExpectedRows(Options{Users: -1}) != nil {
		t.Error("negative counts are accepted")
	}
}

func TestDeterministic(t *testing.T) {
	for _, sqlite := range []bool{false, true} {
		a := generate(t, DefaultOptions(), sqlite)
		b := generate(t, DefaultOptions(), sqlite)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("sqlite=%v: two generations with the same seed differ", sqlite)
		}
	}
	o := DefaultOptions()
	o.Seed = 2
	a, b := generate(t, DefaultOptions(), false), generate(t, o, false)
	if reflect.DeepEqual(a["books_chapter"], b["books_chapter"]) || reflect.DeepEqual(a["books_changelog"], b["books_changelog"]) {
		t.Error("seeds 1 and 2 give the same rows")
	}
}

// TestConstraints checks what the schema would refuse and what Django would never write:
// unique values, foreign keys to existing rows, choices, max lengths, JSON validity.
func TestConstraints(t *testing.T) {
	o := DefaultOptions()
	o.Users, o.Books, o.MediaPerChapter, o.ChangeLogsPerChapter = 23, 17, 3, 4
	for _, sqlite := range []bool{false, true} {
		g := generate(t, o, sqlite)
		ids := map[string]map[any]bool{}
		for name, tb := range g {
			ids[name] = map[any]bool{}
			for _, id := range tb.column(t, "id") {
				if ids[name][id] {
					t.Errorf("%s: duplicate id %v", name, id)
				}
				ids[name][id] = true
			}
		}
		unique := func(table string, cols ...string) {
			seen := map[string]bool{}
			tb := g[table]
			for _, r := range tb.rows {
				var key []string
				for _, c := range cols {
					key = append(key, fmt.Sprint(r[slices.Index(tb.columns, c)]))
				}
				k := strings.Join(key, "\x00")
				if seen[k] {
					t.Errorf("%s: duplicate %v = %q", table, cols, key)
				}
				seen[k] = true
			}
		}
		unique("books_language", "code")
		unique("accounts_user", "username")
		unique("books_book", "slug")
		unique("books_chapter", "book_id", "number")
		unique("books_changelog", "change_id")
		unique("accounts_bookcollaborator", "book_id", "user_id")
		unique("books_book_related_books", "from_book_id", "to_book_id")
		unique("accounts_user_user_permissions", "user_id", "permission_id")

		fks := map[string]string{}
		for _, m := range platform.Default.Models {
			for _, f := range m.Fields {
				if f.Type == platform.ForeignKey {
					target, _ := platform.Default.Model(f.To)
					fks[m.Table+"."+f.Column] = target.Table
				}
			}
		}
		fks["books_book_related_books.from_book_id"] = "books_book"
		fks["books_book_related_books.to_book_id"] = "books_book"
		fks["accounts_user_user_permissions.user_id"] = "accounts_user"
		fks["accounts_user_user_permissions.permission_id"] = "auth_permission"
		// auth_permission is written by the schema (database.ApplySchema), as migrate does.
		ids["auth_permission"] = map[any]bool{}
		for _, p := range platform.Permissions() {
			ids["auth_permission"][p.ID] = true
		}
		for col, target := range fks {
			table, c, _ := strings.Cut(col, ".")
			for _, v := range g[table].column(t, c) {
				if v != nil && !ids[target][v] {
					t.Errorf("%s = %v: no such %s row", col, v, target)
				}
			}
		}

		for _, m := range platform.Default.Models {
			tb := g[m.Table]
			for _, f := range m.Fields {
				if f.IsManyToMany() {
					continue
				}
				for _, v := range tb.column(t, f.Column) {
					if v == nil {
						if !f.Null {
							t.Errorf("%s.%s: NULL in a NOT NULL column", m.Table, f.Column)
						}
						continue
					}
					s, isString := v.(string)
					if f.MaxLength > 0 && isString && f.Type != platform.UUIDField && utf8.RuneCountInString(s) > f.MaxLength {
						t.Errorf("%s.%s: %q is longer than %d", m.Table, f.Column, s, f.MaxLength)
					}
					if len(f.Choices) > 0 && !slices.Contains(f.Choices, s) {
						t.Errorf("%s.%s: %q is not one of %v", m.Table, f.Column, s, f.Choices)
					}
					if f.Type == platform.JSONField && !json.Valid([]byte(s)) {
						t.Errorf("%s.%s: invalid JSON %s", m.Table, f.Column, s)
					}
					if isString && strings.ContainsRune(s, 0) {
						t.Errorf("%s.%s: NUL byte, which PostgreSQL refuses", m.Table, f.Column)
					}
				}
			}
		}
	}
}

// TestEdgeCases checks that the default platform holds every case the reference fixtures show.
func TestEdgeCases(t *testing.T) {
	g := generate(t, DefaultOptions(), false)
	has := func(what, table, col string, ok func(v any) bool) {
		t.Helper()
		for _, v := range g[table].column(t, col) {
			if ok(v) {
				return
			}
		}
		t.Errorf("no %s in %s.%s", what, table, col)
	}
	isNil := func(v any) bool { return v == nil }
	str := func(f func(string) bool) func(any) bool {
		return func(v any) bool { s, ok := v.(string); return ok && f(s) }
	}
	eq := func(want any) func(any) bool { return func(v any) bool { return v == want } }
	contains := func(sub string) func(any) bool { return str(func(s string) bool { return strings.Contains(s, sub) }) }

	has("NULL rating", "books_book", "rating", isNil)
	has("rating 4.25", "books_book", "rating", eq("4.25"))
	has("rating 5.00", "books_book", "rating", eq("5.00"))
	has("NULL owner", "books_book", "owner_id", isNil)
	has("NULL published_at", "books_book", "published_at", isNil)
	has("empty cover", "books_book", "cover_image", eq(""))
	has("big int in JSON", "books_book", "metadata", contains("9007199254740993"))
	has("tiny float in JSON", "books_book", "metadata", contains("1.5e-07"))
	has("empty JSON object", "books_book", "metadata", contains("{}"))
	has("escaped astral char in JSON", "books_book", "metadata", contains(`\ud83d\udc09`))
	has("max positive integer", "books_book", "word_count", eq(int64(2147483647)))
	has("emoji title", "books_book", "title", contains("🐉"))
	has("backslash title", "books_book", "title", contains(`\`))
	has("CRLF description", "books_book", "description", contains("\r\n"))
	has("video size over 2^31", "books_chaptermedia", "size_bytes", func(v any) bool { return v.(int64) > 1<<31 })
	has("empty file", "books_chaptermedia", "size_bytes", eq(int64(0)))
	has("non-ASCII key", "books_chaptermedia", "file", contains("地图"))
	has("empty caption", "books_chaptermedia", "caption", eq(""))
	has("NULL diff", "books_changelog", "diff", isNil)
	has("JSON string diff", "books_changelog", "diff", str(func(s string) bool { return strings.HasPrefix(s, `"`) }))
	has("JSON list diff", "books_changelog", "diff", str(func(s string) bool { return strings.HasPrefix(s, `[{`) }))
	has("empty JSON list diff", "books_changelog", "diff", eq("[]"))
	has("JSON number diff", "books_changelog", "diff", eq("-12.5"))
	has("NULL user", "books_changelog", "user_id", isNil)
	has("empty permissions", "accounts_bookcollaborator", "permissions", eq("[]"))
	has("NULL last_login", "accounts_user", "last_login", isNil)
	has("NULL preferred_language", "accounts_user", "preferred_language_id", isNil)
	has("empty avatar", "accounts_user", "avatar", eq(""))
	has("unusable password", "accounts_user", "password", str(func(s string) bool { return strings.HasPrefix(s, "!") }))
	has("Hangul username", "accounts_user", "username", contains("유저"))
	has("control characters", "accounts_user", "bio", contains("\x01"))
	has("tab", "accounts_user", "display_name", contains("\t"))
	has("empty first name", "accounts_user", "first_name", eq(""))
	has("leap day due date", "accounts_translationassignment", "due_date", eq("2024-02-29"))
	has("NULL due date", "accounts_translationassignment", "due_date", isNil)
	has("NULL time spent", "accounts_translationassignment", "time_spent", isNil)
	has("duration with days and microseconds", "accounts_translationassignment", "time_spent", eq(int64(93784000500)))
	has("duration without days", "accounts_translationassignment", "time_spent", eq(int64(18000000000)))
	has("zero duration", "accounts_translationassignment", "time_spent", eq(int64(0)))
	has("NULL assigned_by", "accounts_translationassignment", "assigned_by_id", isNil)
	has("NULL completed_at", "accounts_translationassignment", "completed_at", isNil)
	has("leap-day timestamp with 999999 µs", "books_book", "published_at", eq(any(leapEdge)))

	// Microsecond classes: 0, 1-999, >999.
	classes := map[int]bool{}
	for _, tb := range g {
		for _, r := range tb.rows {
			for _, v := range r {
				if tm, ok := v.(time.Time); ok {
					us := tm.Nanosecond() / 1000
					switch {
					case us == 0:
						classes[0] = true
					case us < 1000:
						classes[1] = true
					default:
						classes[2] = true
					}
				}
			}
		}
	}
	if len(classes) != 3 {
		t.Errorf("microsecond classes present: %v, want 0, 1-999 and >999", classes)
	}

	// Self references: some translated_from point to a higher id, some to a lower one.
	ch := g["books_chapter"]
	var higher, lower bool
	prev, gap := int64(0), false
	for _, r := range ch.rows {
		id := r[0].(int64)
		if tf, ok := r[slices.Index(ch.columns, "translated_from_id")].(int64); ok {
			higher = higher || tf > id
			lower = lower || tf < id
		}
		gap = gap || id != prev+1
		prev = id
	}
	if !higher || !lower || !gap {
		t.Errorf("translated_from higher %v, lower %v; id gap %v", higher, lower, gap)
	}

	// Related books in both directions.
	pairs := map[[2]int64]bool{}
	for _, r := range g["books_book_related_books"].rows {
		pairs[[2]int64{r[1].(int64), r[2].(int64)}] = true
	}
	both := false
	for k := range pairs {
		both = both || pairs[[2]int64{k[1], k[0]}]
	}
	if !both {
		t.Error("no related books pointing at each other")
	}
	if n := len(g["accounts_user_user_permissions"].rows); n == 0 {
		t.Error("no user permissions")
	}
}

func TestSQLiteEncoding(t *testing.T) {
	g := generate(t, DefaultOptions(), true)
	u := g["books_changelog"].column(t, "change_id")[0].(string)
	if len(u) != 32 || strings.Contains(u, "-") {
		t.Errorf("SQLite change_id %q, want 32 hex digits as Django stores it", u)
	}
	for _, v := range g["books_book"].column(t, "is_published") {
		if v != int64(0) && v != int64(1) {
			t.Errorf("SQLite boolean %v", v)
		}
	}
	if v := g["books_book"].column(t, "published_at")[2]; v != "2024-02-29 23:59:59.999999" {
		t.Errorf("SQLite datetime %v", v)
	}
}

func TestEncoders(t *testing.T) {
	pg, lite := enc{}, enc{sqlite: true}
	tests := []struct {
		name      string
		got, want any
	}{
		{"sqlite time no fraction", lite.time(time.Date(2022, 2, 22, 4, 21, 55, 0, time.UTC)), "2022-02-22 04:21:55"},
		{"sqlite time µs", lite.time(time.Date(2023, 1, 12, 13, 22, 21, 456000, time.UTC)), "2023-01-12 13:22:21.000456"},
		{"sqlite time other zone", lite.time(time.Date(2023, 1, 12, 15, 0, 0, 0, time.FixedZone("x", 7200))), "2023-01-12 13:00:00"},
		{"pg uuid", pg.uuid([16]byte{0x04, 0x92, 0xc4, 0xf5, 0x39, 0xb2, 0x4c, 0x95, 0x85, 0x54, 0x55, 0xe8, 0xf9, 0xbd, 0xde, 0xa5}), "0492c4f5-39b2-4c95-8554-55e8f9bddea5"},
		{"sqlite uuid", lite.uuid([16]byte{0x04, 0x92, 0xc4, 0xf5, 0x39, 0xb2, 0x4c, 0x95, 0x85, 0x54, 0x55, 0xe8, 0xf9, 0xbd, 0xde, 0xa5}), "0492c4f539b24c95855455e8f9bddea5"},
		{"sqlite bool", lite.bool(true), int64(1)},
		{"pg bool", pg.bool(false), false},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

// TestPyJSON compares with what Python's json.dumps writes (values from the reference
// sample.sqlite3, where Django stored them).
func TestPyJSON(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"minor typo fix ✏️ \"quoted\"", `"minor typo fix \u270f\ufe0f \"quoted\""`},
		{obj{{"tags", []any{"修仙", "romance", "système"}}}, `{"tags": ["\u4fee\u4ed9", "romance", "syst\u00e8me"]}`},
		{"line1\nline2\t\"quoted\" \\ back 🐉", `"line1\nline2\t\"quoted\" \\ back \ud83d\udc09"`},
		{obj{{"big", num("9007199254740993")}, {"tiny", num("1.5e-07")}, {"neg", -42}, {"n", nil}, {"e", obj{}}, {"l", []any{}}}, `{"big": 9007199254740993, "tiny": 1.5e-07, "neg": -42, "n": null, "e": {}, "l": []}`},
		{"\x01\x1f\x7f\u2028\b\f\r", `"\u0001\u001f\u007f\u2028\b\f\r"`},
		{[]any{true, false, int64(7)}, `[true, false, 7]`},
	}
	for _, tc := range tests {
		got := pyJSON(tc.in)
		if got != tc.want {
			t.Errorf("pyJSON(%#v) = %s, want %s", tc.in, got, tc.want)
		}
		var v any
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Errorf("pyJSON(%#v) is not JSON: %v", tc.in, err)
		}
	}
}

func TestSlugify(t *testing.T) {
	tests := map[string]string{
		"The \"Dragon\" King's Return 龙王归来 🐉": "the-dragon-kings-return-龙王归来",
		"회귀한 마법사의 \\귀환\\":                     "회귀한-마법사의-귀환",
		"  a -- b  ":                          "a-b",
	}
	for in, want := range tests {
		if got := slugify(in); got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
	}
}
