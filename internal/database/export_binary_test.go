package database

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// edgeSchema holds a column of every field kind PostgreSQL can hand back in binary format and
// of those that stay text, with a many-to-many through table.
const edgeSchema = `
CREATE TABLE edge_tag (id integer PRIMARY KEY);
INSERT INTO edge_tag SELECT generate_series(1, 40);
CREATE TABLE edge (
	id bigint PRIMARY KEY, s varchar(200), i2 smallint, i4 integer, i8 bigint, b boolean,
	ts timestamptz, tsn timestamp, d date, dec numeric(40, 10), u uuid, dur interval,
	j jsonb, jt json, fl double precision, sint integer);
CREATE TABLE edge_tags (id serial PRIMARY KEY, edge_id bigint, tag_id integer);
`

// edgeRows are the values each path must write alike: NULLs, unicode and escapes, integer
// limits, datetimes at the ends of Django's range, before 2000 (negative binary values), with
// microseconds below a millisecond and from other time zones, dates, big and negative
// decimals, intervals of every sign mix, UUIDs, JSON, and m2m lists empty and long.
const edgeRows = `
INSERT INTO edge VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 'plain', 0, 0, 0, false, '2000-01-01 00:00:00+00', '2000-01-01 00:00:00', '2000-01-01', 0, '00000000-0000-0000-0000-000000000000', '0', 'null', 'null', 0, 0),
 (3, E'tab\there "q" \\ back\nnl \u0001 é 漢字 😀 \u2028', -32768, -2147483648, -9223372036854775808, true,
  '0001-01-01 00:00:00+00', '0001-01-01 00:00:00', '0001-01-01', -123456789012345678901234567890.0123456789,
  'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '-1 microsecond', '{"b": 1.50, "a": [1e400, -0, "x\u00e9"]}', '{"a":1, "a":2, "n": "x\u0000"}', -1.5e-300, -7),
 (4, '', 32767, 2147483647, 9223372036854775807, true,
  '9999-12-31 23:59:59.999999+00', '9999-12-31 23:59:59.999999', '9999-12-31', 99999999999999999999999999999.9999999999,
  '123e4567-e89b-12d3-a456-426614174000', '14 mons 3 days 04:05:06.000007', '[]', '[1, 2.0]', 1e300, 2147483647),
 (5, 'x', 1, 1, 1, false, '1999-12-31 23:59:59.000001+00', '1969-07-20 20:17:40.5', '1999-12-31', -0.0000000001,
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '-14 mons -3 days -04:05:06', '{"z": {"y": [true, false, null]}}', '"s"', 0.1, -1),
 (6, 'y', -1, -1, -1, true, '2024-03-10 02:30:00.0009-05:30', '2024-02-29 12:00:00.001', '2024-02-29', 1.5,
  '00000000-0000-0000-0000-000000000001', '1 day -01:00:00', '123', '1e5', 123456789.0, 0),
 (7, 'z', 2, 2, 2, false, '1900-06-15 12:34:56.789+14', '2100-01-01 00:00:00.999', '1900-03-01', 1,
  'ffffffff-0000-ffff-0000-ffffffffffff', '-1 days +01:00:00', '{}', '{}', -0.0, 5),
 (8, 'w', 3, 3, 3, true, '1970-01-01 00:00:00+00', '1970-01-01 00:00:00', '1970-01-01', 10,
  'deadbeef-dead-beef-dead-beefdeadbeef', '100 years 11 mons 29 days 2562047:00:00.999999', '-0', '{"k": "\u00e9"}', 5e-324, 9),
 (9, 'v', 4, 4, 4, false, '2038-01-19 03:14:08+00', '1600-02-29 23:59:59', '1600-02-29', 0.1,
  'cafebabe-cafe-babe-cafe-babecafebabe', '00:00:00.5', '[{"a": "b"}]', '[]', 1e16, 1),
 (10, 'u', 5, 5, 5, true, '2024-12-01 14:30:22.123456+00', '2024-12-01 14:30:22.123456', '2024-12-01', 3.14,
  '11111111-2222-3333-4444-555555555555', '-00:00:00.000001', 'true', 'false', 1e-5, 2);
INSERT INTO edge (id, j) VALUES
 (11, '{"k\n": "\u0001 é \\ \" / \t \b \f \r \u001f \u007f \u2028 \ud83d\ude00", "": ""}'),
 (12, '1e400'), (13, '[0.0, 1.5, -0.5e-3, 1.50, 1e-7, 1e17]'), (14, '{"a": {"b": [1, -2, 3e2, 1E2]}}'), (15, '"tab\tq"'),
 (16, '[true, false, null, "e", 1, "1.5", "a\"b"]'), (17, '{"b": 1, "a": 2, "b": 3, "aa": [], "c": {}}'),
 (18, '12345678901234567890123456789'), (19, '-0'), (20, '{"x": -1.0}');
INSERT INTO edge_tags (edge_id, tag_id) SELECT 4, g FROM generate_series(40, 1, -1) g;
INSERT INTO edge_tags (edge_id, tag_id) VALUES (5, 7), (6, 3), (6, 2), (6, 3);
`

// edgeModel is the model over the edge table: sint is a CharField over an integer column,
// which stays in text format and is written as a string.
func edgeModel() platform.Model {
	f := func(name, typ string) platform.Field {
		return platform.Field{Name: name, Column: name, Type: typ, Null: true}
	}
	dec := f("dec", platform.DecimalField)
	dec.MaxDigits, dec.DecimalPlaces = 40, 10
	tags := f("tags", platform.ManyToManyField)
	tags.To, tags.ThroughTable, tags.ThroughColumns = "edge.tag", "edge_tags", []string{"edge_id", "tag_id"}
	return platform.Model{Label: "edge.edge", Table: "edge", PK: platform.PK{Name: "id", Column: "id", Type: platform.BigAutoField},
		Fields: []platform.Field{
			f("s", platform.CharField), f("i2", "SmallIntegerField"), f("i4", platform.IntegerField),
			f("i8", platform.BigIntegerField), f("b", platform.BooleanField), f("ts", platform.DateTimeField),
			f("tsn", platform.DateTimeField), f("d", platform.DateField), dec, f("u", platform.UUIDField),
			f("dur", platform.DurationField), f("j", platform.JSONField), f("jt", platform.JSONField),
			f("fl", "FloatField"), f("sint", platform.CharField), tags,
		}}
}

// exportBoth exports m over r once with the binary formats and once all in text format, and
// returns both chunks and errors. It fails the test if the binary path did not use binary
// format for every decoder in want.
func exportBoth(t *testing.T, db *DB, m platform.Model, r Range, want ...binCol) (bin, text []byte, binErr, textErr error) {
	t.Helper()
	var out [2]bytes.Buffer
	var errs [2]error
	for i, textOnly := range []bool{false, true} {
		p, err := newExportPlan(m, db.src.Engine)
		if err != nil {
			t.Fatal(err)
		}
		p.textOnly = textOnly
		_, _, errs[i] = db.exportPlanned(context.Background(), "", p, r, fixture.Format{Indent: -1}, &out[i])
		if textOnly {
			continue
		}
		for _, b := range want {
			if !bytes.Contains([]byte(string(p.bin)), []byte{byte(b)}) {
				t.Fatalf("the binary path read no column with decoder %d (formats %v)", b, p.bin)
			}
		}
	}
	return out[0].Bytes(), out[1].Bytes(), errs[0], errs[1]
}

// TestExportBinaryMatchesText: the export reading columns in binary format writes byte for
// byte what reading them all as text writes (the path the golden dumpdata fixtures check),
// for every field kind and its edge values.
func TestExportBinaryMatchesText(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, edgeSchema+edgeRows)
	db := openT(t, url)
	bin, text, binErr, textErr := exportBoth(t, db, edgeModel(), All,
		binInt, binBool, binTimestamp, binDate, binUUID, binInterval)
	if binErr != nil || textErr != nil {
		t.Fatalf("export: binary %v, text %v", binErr, textErr)
	}
	if !bytes.Equal(bin, text) {
		t.Fatalf("binary and text paths differ:\n%s", firstDiff(bin, text))
	}
	// The values Django writes for a few of them, so that both paths cannot agree on a wrong
	// value: the first and last representable datetimes, a sub-millisecond one, intervals.
	for _, want := range []string{
		`"pk": 3, "fields": {"s": "tab\there \"q\" \\ back\nnl \u0001 é 漢字 😀 ` + "\u2028" + `"`,
		`"ts": "0001-01-01T00:00:00Z"`, `"ts": "9999-12-31T23:59:59.999Z"`,
		`"ts": "2024-03-10T08:00:00.000Z"`, `"tsn": "1969-07-20T20:17:40.500Z"`,
		`"dur": "-1 23:59:59.999999"`, `"dur": "428 04:05:06.000007"`, `"dur": "-1 01:00:00"`,
		`"i8": -9223372036854775808`, `"u": "ffffffff-ffff-ffff-ffff-ffffffffffff"`,
		`"sint": "-7"`, `"tags": [40, 39, 38`, `"tags": [3, 2, 3]`, `"tags": []`,
		`"pk": 1, "fields": {"s": null, "i2": null`,
	} {
		if !bytes.Contains(bin, []byte(want)) {
			t.Errorf("the export lacks %s", want)
		}
	}
}

// TestJSONBPlain: the jsonb texts written as they are, and those left to AppendJSON.
func TestJSONBPlain(t *testing.T) {
	for _, tc := range []struct {
		in    string
		plain bool
	}{
		{`{"a": 1, "b": [true, false, null], "c": {}}`, true}, {`-12`, true}, {`"é \" \\ \n \u0001 \u001f"`, true},
		{`[1.5]`, false}, {`[1e5]`, false}, {`[1E5]`, false}, {`NaN`, false}, {`"\u0008"`, false}, {`"\u00e9"`, false},
		{`"\/"`, false}, {"\"a\x01\"", false}, {"\"\xff\"", false}, {"[1,\n2]", false}, {`"open`, false}, {`"a\`, false},
	} {
		if got := jsonbPlain([]byte(tc.in)); got != tc.plain {
			t.Errorf("jsonbPlain(%s) = %v, want %v", tc.in, got, tc.plain)
		}
		if tc.plain {
			if out, err := fixture.AppendJSON(nil, []byte(tc.in)); err != nil || string(out) != tc.in {
				t.Errorf("AppendJSON(%s) = %s, %v: a plain text must be its own fixture value", tc.in, out, err)
			}
		}
	}
}

// TestExportBinaryRefusesWhatTextRefuses: values Django cannot hold (infinite or BC
// datetimes and dates, five-digit years) fail the export on the binary path as on the text
// path, naming the pk and field.
func TestExportBinaryRefusesWhatTextRefuses(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, edgeSchema)
	db := openT(t, url)
	for _, tc := range []struct{ column, value string }{
		{"ts", "'infinity'"}, {"ts", "'-infinity'"}, {"ts", "'0044-03-15 12:00:00+00 BC'"},
		{"ts", "'10000-01-01 00:00:00+00'"}, {"tsn", "'infinity'"}, {"tsn", "'0001-12-31 23:00:00 BC'"},
		{"d", "'infinity'"}, {"d", "'-infinity'"}, {"d", "'0001-12-31 BC'"}, {"d", "'10000-01-01'"},
	} {
		t.Run(tc.column+"="+tc.value, func(t *testing.T) {
			execScript(t, url, "DELETE FROM edge; INSERT INTO edge (id, "+tc.column+") VALUES (42, "+tc.value+")")
			_, _, binErr, textErr := exportBoth(t, db, edgeModel(), All)
			if textErr == nil {
				t.Fatalf("the text path accepted %s", tc.value)
			}
			want := "pk 42 field " + tc.column + ":"
			if binErr == nil || !strings.Contains(binErr.Error(), want) {
				t.Errorf("binary path: error %v, want one naming %q", binErr, want)
			}
		})
	}
}

// TestExportBinaryRanges: pk bounds are bound the same way whatever the formats.
func TestExportBinaryRanges(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, edgeSchema+edgeRows)
	db := openT(t, url)
	bin, text, binErr, textErr := exportBoth(t, db, edgeModel(), Range{Lo: 3, HasLo: true, Hi: 6, HasHi: true}, binInt)
	if binErr != nil || textErr != nil || !bytes.Equal(bin, text) {
		t.Fatalf("range 3-6: binary %v, text %v, equal %v", binErr, textErr, bytes.Equal(bin, text))
	}
	if n := bytes.Count(bin, []byte(`"model": "edge.edge"`)); n != 4 {
		t.Errorf("range 3-6 holds %d objects, want 4", n)
	}
}

// pgTimestampText is PostgreSQL's text output of a timestamp of us microseconds after
// 2000-01-01 in UTC, DateStyle ISO ("2024-12-01 14:30:22.5+00", "... BC" before year 1).
func pgTimestampText(us int64, tz bool) string {
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	t := epoch.AddDate(0, 0, int(us/86400e6)).Add(time.Duration(us%86400e6) * time.Microsecond)
	y := t.Year()
	bc := ""
	if y <= 0 {
		y, bc = 1-y, " BC"
	}
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second())
	if f := t.Nanosecond() / 1000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	if tz {
		s += "+00"
	}
	return s + bc
}

// pgIntervalText is PostgreSQL's text output of an interval in IntervalStyle postgres.
func pgIntervalText(us int64, days, months int32) string {
	var b strings.Builder
	zero, before := true, false
	part := func(v int64, unit string) {
		if v == 0 {
			return
		}
		if !zero {
			b.WriteByte(' ')
		}
		if before && v > 0 {
			b.WriteByte('+')
		}
		plural := "s"
		if v == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "%d %s%s", v, unit, plural)
		before, zero = v < 0, false
	}
	part(int64(months)/12, "year")
	part(int64(months)%12, "mon")
	part(int64(days), "day")
	if zero || us != 0 {
		if !zero {
			b.WriteByte(' ')
		}
		abs := us
		switch {
		case us < 0:
			b.WriteByte('-')
			abs = -us
		case before:
			b.WriteByte('+')
		}
		fmt.Fprintf(&b, "%02d:%02d:%02d", abs/3600e6, abs/60e6%60, abs/1e6%60)
		if f := abs % 1e6; f != 0 {
			b.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", f), "0"))
		}
	}
	return b.String()
}

// FuzzBinaryDecoders: the binary decoders never panic on the server's bytes, refuse a wrong
// length, and write what the text path writes for PostgreSQL's text of the same value.
func FuzzBinaryDecoders(f *testing.F) {
	for _, seed := range [][]byte{
		{}, {1}, {0, 0, 0, 0, 0, 0, 0, 0}, {0x80, 0, 0, 0, 0, 0, 0, 0}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf2},
		bytes.Repeat([]byte{0xab}, 16), {0, 0, 0, 0}, {0xff, 0xfd, 0x2b, 0x7f},
	} {
		for c := binInt; c <= binInterval; c++ {
			f.Add(byte(c), seed)
		}
	}
	f.Fuzz(func(t *testing.T, col byte, v []byte) {
		c := binCol(col%byte(binInterval)) + 1
		p := &exportPlan{m: platform.Model{Label: "fuzz.fuzz"}}
		got, err := p.appendBinary(nil, []byte("1"), &exportField{name: "v"}, c, v)
		want, ok := textReference(t, c, v)
		if !ok {
			if err == nil {
				t.Fatalf("decoder %d accepted %x of a wrong length", c, v)
			}
			return
		}
		if (err != nil) != (want == nil) || err == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoder %d on %x: binary %q (%v), text path %q", c, v, got, err, want)
		}
	})
}

// textReference writes v, decoded independently of the decoders, through the text path: nil
// when the text path refuses it. ok is false when v has no text reference (a wrong length).
func textReference(t *testing.T, c binCol, v []byte) (want []byte, ok bool) {
	t.Helper()
	var err error
	switch {
	case c == binTimestamp && len(v) == 8:
		us := int64(binary.BigEndian.Uint64(v))
		if us == 1<<63-1 || us == -1<<63 || us/86400e6 > 3e6 || us/86400e6 < -3e6 {
			return nil, true // infinity, or beyond any year time.Time formats here; refused
		}
		var tt time.Time
		if tt, err = parseDateTime([]byte(pgTimestampText(us, true))); err == nil {
			want = fixture.AppendDateTime(nil, tt)
		}
	case c == binDate && len(v) == 4:
		days := int64(int32(binary.BigEndian.Uint32(v)))
		if days == 1<<31-1 || days == -1<<31 {
			return nil, true
		}
		d := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(days))
		text := fmt.Sprintf("%04d-%02d-%02d", d.Year(), d.Month(), d.Day())
		if d.Year() <= 0 {
			text = fmt.Sprintf("%04d-%02d-%02d BC", 1-d.Year(), d.Month(), d.Day())
		}
		want, err = appendDateText(nil, []byte(text))
	case c == binInterval && len(v) == 16:
		us := int64(binary.BigEndian.Uint64(v))
		if us == -1<<63 {
			t.Skip("no text form: its absolute value overflows")
		}
		var days, rest int64
		text := pgIntervalText(us, int32(binary.BigEndian.Uint32(v[8:])), int32(binary.BigEndian.Uint32(v[12:])))
		if days, rest, err = parseIntervalDays([]byte(text)); err == nil {
			p := &exportPlan{m: platform.Model{Label: "fuzz.fuzz"}}
			want, err = p.appendDuration(nil, []byte("1"), &exportField{name: "v"}, days, rest)
		}
	case c == binUUID && len(v) == 16:
		want, err = fixture.AppendUUID(nil, []byte(fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])))
	case c == binInt && (len(v) == 2 || len(v) == 4 || len(v) == 8):
		var n int64
		for i, b := range v {
			n = n<<8 | int64(b)
			if i == 0 && b >= 0x80 {
				n -= 256
			}
		}
		want = fixture.AppendInt(nil, n)
	case c == binBool && len(v) == 1:
		want = fixture.AppendBool(nil, v[0] != 0)
	default:
		return nil, false
	}
	if err != nil {
		return nil, true
	}
	return want, true
}

// TestExportInvalidUTF8Postgres: a SQL_ASCII database can hold text that is not UTF-8; the
// export writes each invalid byte as U+FFFD and warns naming the model, pk and field, on the
// binary and the text path alike.
func TestExportInvalidUTF8Postgres(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, "CREATE DATABASE edge_ascii ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
	asciiURL := url[:strings.LastIndex(url, "/")+1] + "edge_ascii"
	if i := strings.Index(url, "?"); i >= 0 {
		asciiURL = url[:strings.LastIndex(url[:i], "/")+1] + "edge_ascii" + url[i:]
	}
	t.Cleanup(func() { execScript(t, url, "DROP DATABASE IF EXISTS edge_ascii WITH (FORCE)") })
	execScript(t, asciiURL, edgeSchema+`INSERT INTO edge (id, s, sint) VALUES (1, 'ok', 1), (2, E'A\xffB', 2), (3, E'\xe9t\xe9 caf\xc3\xa9', 3)`)
	db := openT(t, asciiURL)
	exportEdgeBothWays(t, db, []string{"\"s\": \"A\uFFFDB\"", "\"s\": \"\uFFFDt\uFFFD café\"", `"s": "ok"`},
		"edge.edge pk 2 field s: the stored text is not valid UTF-8", "edge.edge pk 3 field s:")
}

// exportEdgeBothWays exports the edge table on the binary path and on the text path alike, and
// checks that each output holds every one of want and that the warnings are warns, in order,
// each containing its text.
func exportEdgeBothWays(t *testing.T, db *DB, want []string, warns ...string) {
	t.Helper()
	for _, textOnly := range []bool{false, true} {
		p, err := newExportPlan(edgeModel(), Postgres)
		if err != nil {
			t.Fatal(err)
		}
		p.textOnly = textOnly
		var out bytes.Buffer
		_, warnings, err := db.exportPlanned(context.Background(), "", p, All, fixture.Format{Indent: -1}, &out)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("text only %v: the export lacks %s:\n%s", textOnly, w, out.String())
			}
		}
		ok := len(warnings) == len(warns)
		for i := 0; ok && i < len(warns); i++ {
			ok = strings.Contains(warnings[i], warns[i])
		}
		if !ok {
			t.Errorf("text only %v: warnings %q, want %q", textOnly, warnings, warns)
		}
	}
}

// TestExportJSONNotes: a JSONField value the fixture cannot hold as it was is written as
// dumpdata writes it, and a warning names the model, pk and field and says what changed: an
// unpaired surrogate escape becomes U+FFFD; a number too large for a float becomes Infinity,
// which a restore refuses (a json column keeps its text as given; jsonb refuses the one and
// turns the other into an integer).
func TestExportJSONNotes(t *testing.T) {
	url := pgtest.URL(t)
	execScript(t, url, edgeSchema+`INSERT INTO edge (id, j, jt) VALUES (1, '{"ok": 1}', '{"s": "\ud800x"}'), (2, '[]', '{"n": 1e400}'), (3, '{"fine": 2.5}', '{"t": "\ud83d\ude00"}')`)
	db := openT(t, url)
	exportEdgeBothWays(t, db, []string{`"jt": {"s": "` + "\uFFFD" + `x"}`, `"jt": {"n": Infinity}`, `"jt": {"t": "😀"}`},
		"edge.edge pk 1 field jt: the stored JSON holds text that is not Unicode",
		"edge.edge pk 2 field jt: the stored JSON holds a number JSON has no form for")
}
