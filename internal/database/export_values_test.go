package database

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// valueCase is one stored value and what the export must make of it: the text the fixture
// holds for the field (want), a warning saying the restore refuses it (warn), or a backup
// error (fail). A warned value must be one the restore's decoder refuses, an unwarned one
// one it takes, so that the warning and the restore cannot drift apart.
type valueCase struct {
	name  string
	field string // the field (and column) the value is stored in
	value string // its SQL literal
	want  string // `"field": value` in the fixture
	warn  string // a part of the one warning, "" for none
	fail  string // a part of the error, "" for none
}

// oddModel is the model over the table odd: a BooleanField b, a BigIntegerField i, a
// DurationField dur and an IntegerField n, all nullable.
func oddModel() platform.Model {
	f := func(name, typ string) platform.Field {
		return platform.Field{Name: name, Column: name, Type: typ, Null: true}
	}
	return platform.Model{Label: "odd.odd", Table: "odd", PK: platform.PK{Name: "id", Column: "id", Type: platform.BigAutoField},
		Fields: []platform.Field{f("b", platform.BooleanField), f("i", platform.BigIntegerField),
			f("dur", platform.DurationField), f("n", platform.IntegerField)}}
}

// checkValueCase exports m, whose row 7 holds c.value in c.field, and checks the fixture,
// the warnings and the error against c, the fixture's value against the restore's decoder.
func checkValueCase(t *testing.T, db *DB, p *exportPlan, c valueCase) {
	t.Helper()
	var out bytes.Buffer
	_, warnings, err := db.exportPlanned(context.Background(), "", p, All, fixture.Format{Indent: -1}, &out)
	if c.fail != "" {
		if err == nil || !strings.Contains(err.Error(), c.fail) || !strings.Contains(err.Error(), p.m.Label) ||
			!strings.Contains(err.Error(), "pk 7 field "+c.field+":") {
			t.Fatalf("export error %v, want one naming %s, pk 7, field %s and saying %q\n%s", err, p.m.Label, c.field, c.fail, out.String())
		}
		return
	}
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if !strings.Contains(out.String(), c.want) {
		t.Errorf("the export lacks %s:\n%s", c.want, out.String())
	}
	switch {
	case c.warn == "" && len(warnings) != 0:
		t.Errorf("warnings %q, want none", warnings)
	case c.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], p.m.Label+" pk 7 field "+c.field+": ") ||
		!strings.Contains(warnings[0], c.warn) || !strings.Contains(warnings[0], "restore refuses")):
		t.Errorf("warnings %q, want one naming pk 7 field %s and saying %q", warnings, c.field, c.warn)
	}
	var f platform.Field
	for _, mf := range p.m.Fields {
		if mf.Name == c.field {
			f = mf
		}
	}
	raw := strings.TrimPrefix(c.want, `"`+c.field+`": `)
	if _, err := decodeValue(&loadField{Field: f, kind: kinds[f.Type]}, []byte(raw)); (err != nil) != (c.warn != "") {
		t.Errorf("the restore decodes %s with error %v, but the export warned %v", raw, err, c.warn != "")
	}
}

// TestExportOddValuesSQLite: SQLite keeps any value in any column. What Django's dumpdata
// writes for a value a restore refuses is written with a warning naming the model, pk and
// field (a boolean of 2, an integer with a fraction or of text); a value no restore could
// write back as it was (beyond an int64 in an integer or duration column) fails the backup;
// ordinary values are written as dumpdata writes them, without a warning.
func TestExportOddValuesSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.sqlite3")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// No declared types: no affinity, each value keeps the storage class it is given.
	_, err = raw.Exec(`CREATE TABLE odd (id integer PRIMARY KEY, b, i, dur, n)`)
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	db := openT(t, "sqlite:///"+path)
	for _, c := range []valueCase{
		{name: "bool 1", field: "b", value: "1", want: `"b": true`},
		{name: "bool 0.0", field: "b", value: "0.0", want: `"b": false`},
		{name: "bool 1.0", field: "b", value: "1.0", want: `"b": true`},
		{name: "bool 2", field: "b", value: "2", want: `"b": 2`, warn: "the stored value 2 is not a boolean"},
		{name: "bool -1", field: "b", value: "-1", want: `"b": -1`, warn: "the stored value -1 is not a boolean"},
		{name: "bool 0.5", field: "b", value: "0.5", want: `"b": 0.5`, warn: "the stored value 0.5 is not a boolean"},
		{name: "int 3.7", field: "n", value: "3.7", want: `"n": 3.7`, warn: "the stored value 3.7 has a fraction"},
		{name: "int 5.0", field: "n", value: "5.0", want: `"n": 5.0`},
		{name: "int -2**63 real", field: "i", value: "-9223372036854775808.0", want: `"i": -9.223372036854776e+18`},
		{name: "int 1e18 real", field: "i", value: "1e18", want: `"i": 1e+18`},
		{name: "int text", field: "n", value: "' 12 '", want: `"n": " 12 "`},
		{name: "int text abc", field: "n", value: "'abc'", want: `"n": "abc"`, warn: `the stored text "abc" is not an integer`},
		{name: "int 1e19 real", field: "i", value: "1e19", fail: "integer field holds 1e+19"},
		{name: "int -1e19 real", field: "i", value: "-1e19", fail: "integer field holds -1e+19"},
		{name: "int 2**63 real", field: "i", value: "9223372036854775808.0", fail: "integer field holds 9.223372036854776e+18"},
		{name: "int infinity", field: "n", value: "9e999", fail: "integer field holds +Inf"},
		{name: "duration int64", field: "dur", value: "-9223372036854775808", want: `"dur": "-106751992 19:59:05.224192"`},
		{name: "duration real", field: "dur", value: "2.5", want: `"dur": "00:00:00.000002"`},
		{name: "duration real big", field: "dur", value: "-9223372036854775808.0", want: `"dur": "-106751992 19:59:05.224192"`},
		{name: "duration 1e19 real", field: "dur", value: "1e19", fail: "duration of 1e+19 microseconds is beyond"},
		{name: "duration 2**63 real", field: "dur", value: "9223372036854775808.0", fail: "duration of 9.223372036854776e+18 microseconds"},
		{name: "duration infinity", field: "dur", value: "-9e999", fail: "duration of -Inf microseconds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := db.sql.Exec(`DELETE FROM odd; INSERT INTO odd (id) VALUES (6), (8);
				INSERT INTO odd (id, ` + c.field + `) VALUES (7, ` + c.value + `)`); err != nil {
				t.Fatal(err)
			}
			p, err := newExportPlan(oddModel(), SQLite)
			if err != nil {
				t.Fatal(err)
			}
			checkValueCase(t, db, p, c)
		})
	}
}

// TestExportOddValuesPostgres: the same rules for PostgreSQL, on the binary and the text path
// alike. An interval is written exactly as the timedelta psycopg makes of it (a year 365
// days, a month 30) however many days it holds: beyond the int64 of microseconds a restore
// holds (about 106,751,991 days) with a warning, beyond a timedelta (999,999,999 days) as a
// backup error. A BooleanField over an integer column and an IntegerField over a numeric or
// float column follow the SQLite rules.
func TestExportOddValuesPostgres(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, `CREATE TABLE odd (id bigint PRIMARY KEY, b integer, i double precision, dur interval, n numeric)`)
	db := openT(t, url)
	for _, c := range []valueCase{
		{name: "interval ordinary", field: "dur", value: "'14 mons 3 days 04:05:06.000007'", want: `"dur": "428 04:05:06.000007"`},
		{name: "interval negative months", field: "dur", value: "'-13 mons'", want: `"dur": "-395 00:00:00"`},
		{name: "interval int64 limit", field: "dur", value: "'-106751991 days -04:00:54.775808'", want: `"dur": "-106751992 19:59:05.224192"`},
		{name: "interval 200000000 days", field: "dur", value: "'200000000 days'", want: `"dur": "200000000 00:00:00"`,
			warn: "the duration of 200000000 days is beyond"},
		{name: "interval -200000000 days -1 us", field: "dur", value: "'-200000000 days -1 microsecond'", want: `"dur": "-200000001 23:59:59.999999"`,
			warn: "the duration of -200000001 days is beyond"},
		{name: "interval years", field: "dur", value: "'2739725 years 11 mons'", want: `"dur": "999999955 00:00:00"`,
			warn: "the duration of 999999955 days is beyond"},
		{name: "interval timedelta max", field: "dur", value: "'999999999 days 23:59:59.999999'", want: `"dur": "999999999 23:59:59.999999"`,
			warn: "the duration of 999999999 days is beyond"},
		{name: "interval timedelta min", field: "dur", value: "'-999999999 days'", want: `"dur": "-999999999 00:00:00"`,
			warn: "the duration of -999999999 days is beyond"},
		{name: "interval beyond timedelta", field: "dur", value: "'1000000000 days'", fail: "duration of 1000000000 days is beyond what a Python timedelta holds"},
		{name: "interval below timedelta", field: "dur", value: "'-999999999 days -1 microsecond'", fail: "duration of -1000000000 days"},
		{name: "interval years beyond timedelta", field: "dur", value: "'178956970 years 7 mons 2147483647 days 2562047788:00:54.775807'",
			fail: "duration of 67573529898 days"},
		{name: "bool integer 1", field: "b", value: "1", want: `"b": 1`},
		{name: "bool integer 2", field: "b", value: "2", want: `"b": 2`, warn: "the stored value 2 is not a boolean"},
		{name: "int numeric", field: "n", value: "1234567890123456789.000", want: `"n": 1234567890123456789`},
		{name: "int numeric negative", field: "n", value: "-9223372036854775808.0", want: `"n": -9223372036854775808`},
		{name: "int numeric fraction", field: "n", value: "3.7", want: `"n": 3.7`, warn: "the stored value 3.7 has a fraction"},
		{name: "int numeric beyond", field: "n", value: "12345678901234567890", fail: `integer field holds "12345678901234567890", which no 64-bit integer holds`},
		{name: "int numeric NaN", field: "n", value: "'NaN'", fail: `integer field holds "NaN", not a number`},
		{name: "int float 1e19", field: "i", value: "1e19", fail: `integer field holds "1e+19", which no 64-bit integer holds`},
		{name: "int float 1e18", field: "i", value: "1e18", want: `"i": 1000000000000000000`},
		{name: "int float fraction", field: "i", value: "-0.5", want: `"i": -0.5`, warn: "the stored value -0.5 has a fraction"},
	} {
		t.Run(c.name, func(t *testing.T) {
			execScript(t, url, `DELETE FROM odd; INSERT INTO odd (id) VALUES (6), (8);
				INSERT INTO odd (id, `+c.field+`) VALUES (7, `+c.value+`)`)
			for _, textOnly := range []bool{false, true} {
				p, err := newExportPlan(oddModel(), Postgres)
				if err != nil {
					t.Fatal(err)
				}
				p.textOnly = textOnly
				checkValueCase(t, db, p, c)
			}
		})
	}
}

// TestExportWarnsWhatPostgresRefuses: SQLite enforces no length, precision or character set,
// so a SQLite platform can hold values PostgreSQL refuses (a restore may move a platform from
// one to the other). Each is written with a warning naming the model, pk and field: a decimal
// rounded to its decimal_places (a change), one with more digits than max_digits allows, text
// longer than max_length or holding NUL, JSON holding \u0000. Ordinary values warn of nothing.
func TestExportWarnsWhatPostgresRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strict.sqlite3")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = raw.Exec(`CREATE TABLE strict (id integer PRIMARY KEY, rating decimal, code varchar(10), title text, meta text)`)
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	f := func(name, typ string) platform.Field {
		return platform.Field{Name: name, Column: name, Type: typ, Null: true}
	}
	rating := f("rating", platform.DecimalField)
	rating.MaxDigits, rating.DecimalPlaces = 3, 2
	code := f("code", "CharField")
	code.MaxLength = 10
	m := platform.Model{Label: "strict.strict", Table: "strict", PK: platform.PK{Name: "id", Column: "id", Type: platform.BigAutoField},
		Fields: []platform.Field{rating, code, f("title", "TextField"), f("meta", "JSONField")}}
	db := openT(t, "sqlite:///"+path)
	for _, c := range []struct {
		name, field, value, want, warn string
	}{
		{"decimal that fits", "rating", "9.99", `"rating": "9.99"`, ""},
		{"decimal as integer", "rating", "7", `"rating": "7.00"`, ""},
		{"decimal rounded", "rating", "1.234", `"rating": "1.23"`, "rounded to 1.23"},
		{"decimal too wide", "rating", "123.45", `"rating": "123.45"`, "more than max_digits 3"},
		{"decimal text too wide", "rating", "'99.5'", `"rating": "99.50"`, "more than max_digits 3"},
		{"text that fits", "code", "'abcdefghij'", `"code": "abcdefghij"`, ""},
		{"text of 10 characters, more bytes", "code", "'éééééééééé'", `"code": "éééééééééé"`, ""},
		{"text too long", "code", "'abcdefghijk'", `"code": "abcdefghijk"`, "11 characters, more than max_length 10"},
		{"text with NUL", "title", "'a' || char(0) || 'b'", `"title": "a\u0000b"`, "NUL character"},
		{"JSON with NUL", "meta", `'{"k": "a\u0000b"}'`, `"meta": {"k": "a\u0000b"}`, `NUL character (\u0000)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := db.sql.Exec(`DELETE FROM strict; INSERT INTO strict (id, ` + c.field + `) VALUES (7, ` + c.value + `)`); err != nil {
				t.Fatal(err)
			}
			p, err := newExportPlan(m, SQLite)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			_, warnings, err := db.exportPlanned(context.Background(), "", p, All, fixture.Format{Indent: -1}, &out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("the export lacks %s:\n%s", c.want, out.String())
			}
			switch {
			case c.warn == "" && len(warnings) != 0:
				t.Errorf("warnings %q, want none", warnings)
			case c.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], "strict.strict pk 7 field "+c.field+": ") || !strings.Contains(warnings[0], c.warn)):
				t.Errorf("warnings %q, want one naming pk 7 field %s and saying %q", warnings, c.field, c.warn)
			}
		})
	}
}
