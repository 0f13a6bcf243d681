package database

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// kind is how a field's stored value becomes its fixture value.
type kind uint8

const (
	kindText kind = iota // CharField, TextField, SlugField, FileField
	kindInt              // integers and foreign keys
	kindBool
	kindDateTime
	kindDate
	kindDecimal
	kindUUID
	kindDuration
	kindJSON
	kindFloat
	kindM2M // comma-separated target pks from an aggregate subquery
)

var kinds = map[string]kind{
	platform.CharField:            kindText,
	platform.TextField:            kindText,
	platform.SlugField:            kindText,
	platform.FileField:            kindText,
	platform.AutoField:            kindInt,
	platform.BigAutoField:         kindInt,
	platform.IntegerField:         kindInt,
	platform.BigIntegerField:      kindInt,
	platform.PositiveIntegerField: kindInt,
	platform.ForeignKey:           kindInt,
	"SmallIntegerField":           kindInt,
	"PositiveSmallIntegerField":   kindInt,
	"PositiveBigIntegerField":     kindInt,
	"SmallAutoField":              kindInt,
	"OneToOneField":               kindInt,
	"EmailField":                  kindText,
	"URLField":                    kindText,
	"ImageField":                  kindText,
	"FilePathField":               kindText,
	"GenericIPAddressField":       kindText,
	platform.BooleanField:         kindBool,
	"NullBooleanField":            kindBool,
	platform.DateTimeField:        kindDateTime,
	platform.DateField:            kindDate,
	platform.DecimalField:         kindDecimal,
	platform.UUIDField:            kindUUID,
	platform.DurationField:        kindDuration,
	platform.JSONField:            kindJSON,
	"FloatField":                  kindFloat,
	platform.ManyToManyField:      kindM2M,
}

// exportField is one value of an object after the pk.
type exportField struct {
	name   string
	kind   kind
	places int    // DecimalField decimal_places
	digits int    // DecimalField max_digits (0: not bounded)
	maxLen int    // CharField max_length, in characters (0: not bounded)
	key    []byte // the field's key as AppendKey writes it, made once per export
}

// exportPlan is how one model is read and written: the query's columns are the pk then the
// fields in serialization order (many-to-many ones as aggregate subqueries).
type exportPlan struct {
	m      platform.Model
	engine string
	fields []exportField
	selec  string // SELECT ... FROM ... (no WHERE)
	pk     string // quoted pk column, qualified
	// head is what BeginObject writes before the pk, made once per export.
	head []byte

	// bin is the format of each PostgreSQL result column (pk first), from setFormats;
	// textOnly keeps every column in text format (the reference the binary decoders are
	// tested against). pkBuf holds a binary pk's digits.
	bin      []binCol
	textOnly bool
	pkBuf    []byte

	// warnings name the values written changed (at most maxRowWarnings); unnamed counts
	// the further ones.
	warnings []string
	unnamed  int
}

// maxRowWarnings bounds the warnings one export names row by row: a table full of bad text
// would otherwise bury the report. The rest are counted in one more warning.
const maxRowWarnings = 100

// checkText warns when a text value is not valid UTF-8: the fixture can only hold Unicode
// text, so each invalid byte is written as U+FFFD, as Django's dumpdata would.
func (p *exportPlan) checkText(pk []byte, f *exportField, v []byte) {
	if f.kind != kindText && f.kind != kindInt || utf8.Valid(v) {
		return
	}
	p.warnInvalid(pk, f)
}

// appendDecimal appends a DecimalField's value v of a SQLite row by appendQ, which quantizes it
// to decimal_places as Django reads it, and warns when that changed the value, or when it has
// more digits before the point than max_digits leaves (dumpdata refuses to write it; a
// PostgreSQL numeric column refuses it).
func (p *exportPlan) appendDecimal(dst, pk []byte, f *exportField, v float64, appendQ func([]byte) []byte) []byte {
	start := len(dst)
	dst = appendQ(dst)
	written := strings.Trim(string(dst[start:]), `"`)
	if q, err := strconv.ParseFloat(written, 64); err == nil && q != v && !math.IsNaN(v) {
		p.warnRow(pk, f, fmt.Sprintf("the stored value %s has more than its %d decimal places; the backup holds it rounded to %s, as Django reads it", strconv.FormatFloat(v, 'g', -1, 64), f.places, written))
	}
	if whole := wholeDigits(written); f.digits > 0 && whole > f.digits-f.places {
		p.warnRow(pk, f, fmt.Sprintf("the value %s has %d digits before the point, more than max_digits %d with %d decimal places allows; dumpdata refuses it and a restore into PostgreSQL refuses it: fix the value", written, whole, f.digits, f.places))
	}
	return dst
}

// wholeDigits counts the digits of a decimal's integer part, leading zeros left out.
func wholeDigits(s string) int {
	s = strings.TrimLeft(s, "-+")
	if i := strings.IndexAny(s, ".eE"); i >= 0 {
		s = s[:i]
	}
	return len(strings.TrimLeft(s, "0"))
}

// checkStoredText warns about a SQLite text value that PostgreSQL, where a restore may load
// it, refuses: a NUL character, or more characters than the field's max_length (SQLite
// enforces neither; a PostgreSQL varchar does).
func (p *exportPlan) checkStoredText(pk []byte, f *exportField, v []byte) {
	if bytes.IndexByte(v, 0) >= 0 {
		p.warnRow(pk, f, "the stored text holds a NUL character, which PostgreSQL text cannot hold: a restore into PostgreSQL refuses it; fix the value")
	}
	if n := utf8.RuneCount(v); f.maxLen > 0 && n > f.maxLen {
		p.warnRow(pk, f, fmt.Sprintf("the stored text has %d characters, more than max_length %d: a restore into PostgreSQL refuses it; fix the value", n, f.maxLen))
	}
}

// warnInvalid records that the value of field f of row pk was not valid UTF-8.
func (p *exportPlan) warnInvalid(pk []byte, f *exportField) {
	p.warnRow(pk, f, "the stored text is not valid UTF-8; the backup holds it with each invalid byte replaced by U+FFFD")
}

// warnRow records that the value of field f of row pk was written changed, and how.
func (p *exportPlan) warnRow(pk []byte, f *exportField, how string) {
	if len(p.warnings) >= maxRowWarnings {
		p.unnamed++
		return
	}
	p.warnings = append(p.warnings, fmt.Sprintf("%s pk %s field %s: %s", p.m.Label, pk, f.name, how))
}

// appendJSON appends a JSONField's stored text v as its fixture value, warning about what
// the fixture cannot hold as it was.
func (p *exportPlan) appendJSON(dst []byte, pk []byte, f *exportField, v []byte) ([]byte, error) {
	if bytes.Contains(v, []byte(`\u0000`)) {
		p.warnRow(pk, f, `the stored JSON holds a NUL character (\u0000), which PostgreSQL's jsonb cannot hold: a restore into PostgreSQL refuses it; fix the value`)
	}
	dst, notes, err := fixture.AppendJSONNoted(dst, v)
	if notes&fixture.NoteReplaced != 0 {
		p.warnRow(pk, f, "the stored JSON holds text that is not Unicode (invalid UTF-8, or an unpaired surrogate escape such as \\ud800); the backup holds it with U+FFFD in its place")
	}
	if notes&fixture.NoteNonFinite != 0 {
		p.warnRow(pk, f, "the stored JSON holds a number JSON has no form for (NaN, Infinity, or one too large for a float such as 1e400); the fixture writes it as dumpdata does (NaN, Infinity), which a restore refuses: fix the value")
	}
	return dst, err
}

// takeWarnings returns the export's warnings, the further ones counted in a last one.
func (p *exportPlan) takeWarnings() []string {
	w := p.warnings
	if p.unnamed > 0 {
		w = append(w, fmt.Sprintf("%s: %d more values were written changed or as a restore refuses them, as the warnings before say", p.m.Label, p.unnamed))
	}
	return w
}

// warnNotBool records that a BooleanField of row pk holds v, neither 0 nor 1: Django's
// dumpdata writes such a value as it is, but a restore (like Django's BooleanField) takes
// only a boolean, 0 or 1, so the row could not come back.
func (p *exportPlan) warnNotBool(pk []byte, f *exportField, v []byte) {
	p.warnRow(pk, f, fmt.Sprintf("the stored value %s is not a boolean (0 or 1); the backup holds it as dumpdata writes it, which a restore refuses: fix the value", v))
}

// appendDuration appends a duration of days whole days and 0 <= us < one day more as Django
// writes the timedelta. One beyond what a timedelta holds is refused: Django could not read
// it. One whose microseconds do not fit in an int64 is written exactly, with a warning: a
// restore holds durations as int64 microseconds (SQLite's bigint, what Django stores there)
// and refuses it.
func (p *exportPlan) appendDuration(dst, pk []byte, f *exportField, days, us int64) ([]byte, error) {
	if days > maxDurationDays || days < -maxDurationDays {
		return dst, fmt.Errorf("duration of %d days is beyond what a Python timedelta holds (±%d days)", days, maxDurationDays)
	}
	if _, ok := addDays(us, days); !ok {
		p.warnRow(pk, f, fmt.Sprintf("the duration of %d days is beyond the ±106751991 days a restore holds (int64 microseconds); the backup holds it exactly, but a restore refuses it", days))
	}
	return fixture.AppendDurationDays(dst, days, us), nil
}

// inInt64 reports whether x is in the range of an int64 (NaN is not).
func inInt64(x float64) bool { return x >= -(1<<63) && x < 1<<63 }

// appendIntReal appends a real number x stored in an integer field f of row pk, as Django
// writes the float it reads. One beyond an int64 is refused: no restore can write it back
// into the column. One with a fraction is written with a warning: a restore refuses it.
func (p *exportPlan) appendIntReal(dst, pk []byte, f *exportField, x float64) ([]byte, error) {
	if !inInt64(x) {
		return dst, fmt.Errorf("integer field holds %v, which no 64-bit integer holds; fix the value", x)
	}
	if x != math.Trunc(x) {
		p.warnRow(pk, f, fmt.Sprintf("the stored value %s has a fraction; the backup holds it as dumpdata writes it, which a restore refuses in an integer field: fix the value", fixture.AppendFloat(nil, x)))
	}
	return fixture.AppendFloat(dst, x), nil
}

// appendPGInt appends an IntegerField's text. An integer column's is its digits; a numeric or
// float column's is read exactly, not through a float: a whole number is written as its
// digits when it fits an int64 (what a restore can write back) and refused when not, one
// with a fraction written as it is with a warning, as a restore refuses it.
func (p *exportPlan) appendPGInt(dst, pk []byte, f *exportField, v []byte) ([]byte, error) {
	if _, ok := plainInt(v); ok {
		return append(dst, v...), nil
	}
	if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return append(dst, v...), nil
	}
	r, ok := new(big.Rat).SetString(string(v))
	if !ok || !numberText(v) {
		return dst, fmt.Errorf("integer field holds %q, not a number", v)
	}
	if r.IsInt() {
		if !r.Num().IsInt64() {
			return dst, fmt.Errorf("integer field holds %q, which no 64-bit integer holds; fix the value", v)
		}
		return fixture.AppendInt(dst, r.Num().Int64()), nil
	}
	p.warnRow(pk, f, fmt.Sprintf("the stored value %s has a fraction; the backup holds it as it is, which a restore refuses in an integer field: fix the value", v))
	return append(dst, v...), nil
}

// numberText reports whether v holds only what a JSON number holds: digits, signs, a point
// and an exponent (PostgreSQL writes numeric and float values so; big.Rat takes more).
func numberText(v []byte) bool {
	for _, c := range v {
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			return false
		}
	}
	return true
}

// appendPGBool appends a BooleanField's text: a boolean column's t or f, or an integer
// column's digits, which Django writes as the integer (a restore takes 0 and 1 as booleans
// and refuses the rest).
func (p *exportPlan) appendPGBool(dst, pk []byte, f *exportField, v []byte) ([]byte, error) {
	switch string(v) {
	case "t", "f":
		return fixture.AppendBool(dst, v[0] == 't'), nil
	case "0", "1":
		return append(dst, v...), nil
	}
	if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
		return dst, fmt.Errorf("boolean field holds %q, neither a boolean nor an integer", v)
	}
	p.warnNotBool(pk, f, v)
	return append(dst, v...), nil
}

// objectAfterPK is what BeginObject writes after the pk.
const objectAfterPK = `, "fields": {`

// beginObject is fixture.BeginObject for the plan's model, from the head made once.
func (p *exportPlan) beginObject(dst []byte, pk []byte) []byte {
	dst = append(dst, p.head...)
	dst = append(dst, pk...)
	return append(dst, objectAfterPK...)
}

func newExportPlan(m platform.Model, engine string) (*exportPlan, error) {
	if kinds[m.PK.Type] != kindInt {
		return nil, fmt.Errorf("primary key %s of type %s: only integer primary keys are supported", m.PK.Name, m.PK.Type)
	}
	p := &exportPlan{m: m, engine: engine}
	// BeginObject with an empty pk, its tail cut: the object's head up to the pk.
	p.head = fixture.BeginObject(nil, m.Label, nil)
	p.head = p.head[:len(p.head)-len(objectAfterPK)]
	p.pk = "t." + quote(m.PK.Column)
	cols := []string{p.pk}
	for _, f := range m.Fields {
		k, ok := kinds[f.Type]
		if !ok {
			return nil, fmt.Errorf("field %s: unsupported type %s", f.Name, f.Type)
		}
		key := fixture.AppendKey(nil, f.Name, len(p.fields) == 0)
		p.fields = append(p.fields, exportField{name: f.Name, kind: k, places: f.DecimalPlaces, digits: f.MaxDigits, maxLen: f.MaxLength, key: key})
		switch {
		case k == kindM2M:
			q, err := m2mSubquery(m, f, engine)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name, err)
			}
			cols = append(cols, q)
		case engine == SQLite && (k == kindDateTime || k == kindDate):
			// modernc.org/sqlite turns text in DATETIME/DATE columns into time.Time; the
			// stored text is what Django parses, so read that.
			cols = append(cols, "CAST(t."+quote(f.Column)+" AS TEXT)")
		default:
			cols = append(cols, "t."+quote(f.Column))
		}
	}
	p.selec = "SELECT " + strings.Join(cols, ", ") + " FROM " + quote(m.Table) + " t"
	return p, nil
}

// query returns the SQL for range r with placeholders ph(1), ph(2), and the bound values.
func (p *exportPlan) query(r Range, ph func(int) string) (string, []int64) {
	var (
		where []string
		args  []int64
	)
	if r.HasLo {
		args = append(args, r.Lo)
		where = append(where, p.pk+" >= "+ph(len(args)))
	}
	if r.HasHi {
		args = append(args, r.Hi)
		where = append(where, p.pk+" <= "+ph(len(args)))
	}
	q := p.selec
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY " + p.pk, args
}

// m2mSubquery selects a row's many-to-many target pks, comma-separated, in the order Django's
// related manager returns them: auth.permission by Permission.Meta.ordering (content type app
// label, model, codename), other targets by the through table's id.
func m2mSubquery(m platform.Model, f platform.Field, engine string) (string, error) {
	if f.ThroughTable == "" || len(f.ThroughColumns) != 2 {
		return "", errors.New("many-to-many field without through table and columns")
	}
	owner, target := "x."+quote(f.ThroughColumns[0]), "x."+quote(f.ThroughColumns[1])
	agg := func(order string) string {
		if engine == Postgres {
			return "string_agg(" + target + "::text, ',' ORDER BY " + order + ")"
		}
		return "group_concat(" + target + ", ',' ORDER BY " + order + ")"
	}
	from := quote(f.ThroughTable) + " x"
	order := "x.id"
	if f.To == "auth.permission" {
		from += " JOIN auth_permission p ON p.id = " + target + " JOIN django_content_type ct ON ct.id = p.content_type_id"
		order = "ct.app_label, ct.model, p.codename"
	}
	return "(SELECT " + agg(order) + " FROM " + from + " WHERE " + owner + " = t." + quote(m.PK.Column) + ")", nil
}

func quote(ident string) string { return pgx.Identifier{ident}.Sanitize() }

// rowError says which row and field a value could not be written for.
func rowError(pk []byte, f *exportField, err error) error {
	return &ValueError{PK: string(pk), Field: f.name, Err: err}
}

// ValueError is a stored value the export cannot write as a fixture value (a date of
// 'infinity', a text where a number belongs): every attempt meets it again, so a worker
// fails the task at once instead of retrying it.
type ValueError struct {
	PK, Field string
	Err       error
}

// Error names the row and the field.
func (e *ValueError) Error() string { return fmt.Sprintf("pk %s field %s: %v", e.PK, e.Field, e.Err) }

// Unwrap returns the cause.
func (e *ValueError) Unwrap() error { return e.Err }

// appendPGRow appends one object from a PostgreSQL row: vals[0] is the pk, then one value
// per field, each in the format setFormats chose for its column; nil is NULL.
func (p *exportPlan) appendPGRow(dst []byte, vals [][]byte) ([]byte, error) {
	if len(vals) != len(p.fields)+1 {
		return dst, fmt.Errorf("row has %d values, want %d", len(vals), len(p.fields)+1)
	}
	pk, err := p.pkText(vals[0])
	if err != nil {
		return dst, err
	}
	dst = p.beginObject(dst, pk)
	for i := range p.fields {
		f := &p.fields[i]
		dst = append(dst, f.key...)
		v := vals[i+1]
		switch {
		case v == nil && f.kind == kindM2M:
			dst = append(dst, "[]"...)
		case v == nil:
			dst = append(dst, "null"...)
		case len(p.bin) > i+1 && p.bin[i+1] == textJSONB:
			dst, err = p.appendJSONB(dst, pk, f, v)
		case len(p.bin) > i+1 && p.bin[i+1] != binNone:
			dst, err = p.appendBinary(dst, pk, f, p.bin[i+1], v)
		default:
			dst, err = p.appendPGText(dst, pk, f, v)
		}
		if err != nil {
			return dst, rowError(pk, f, err)
		}
	}
	return fixture.EndObject(dst), nil
}

// appendPGText appends a value PostgreSQL wrote in text format.
func (p *exportPlan) appendPGText(dst []byte, pk []byte, f *exportField, v []byte) ([]byte, error) {
	var err error
	switch f.kind {
	case kindText:
		var valid bool
		if dst, valid = fixture.AppendStringValid(dst, v); !valid {
			p.warnInvalid(pk, f)
		}
	case kindInt:
		dst, err = p.appendPGInt(dst, pk, f, v)
	case kindBool:
		dst, err = p.appendPGBool(dst, pk, f, v)
	case kindFloat:
		var x float64
		if x, err = strconv.ParseFloat(string(v), 64); err == nil {
			dst = fixture.AppendFloat(dst, x)
		}
	case kindDateTime:
		var t time.Time
		if t, err = parseDateTime(v); err == nil {
			dst = fixture.AppendDateTime(dst, t)
		}
	case kindDate:
		dst, err = appendDateText(dst, v)
	case kindDecimal:
		dst, err = fixture.AppendDecimal(dst, v)
	case kindUUID:
		dst, err = fixture.AppendUUID(dst, v)
	case kindDuration:
		var days, us int64
		if days, us, err = parseIntervalDays(v); err == nil {
			dst, err = p.appendDuration(dst, pk, f, days, us)
		}
	case kindJSON:
		dst, err = p.appendJSON(dst, pk, f, v)
	case kindM2M:
		dst, err = appendPKList(dst, v)
	}
	return dst, err
}

// appendSQLiteRow appends one object from a SQLite row: vals as modernc.org/sqlite returns
// them (int64, float64, string, []byte or nil), converted as Django's SQLite backend does.
func (p *exportPlan) appendSQLiteRow(dst []byte, vals []any) ([]byte, error) {
	if len(vals) != len(p.fields)+1 {
		return dst, fmt.Errorf("row has %d values, want %d", len(vals), len(p.fields)+1)
	}
	pk, ok := vals[0].(int64)
	if !ok {
		return dst, fmt.Errorf("primary key %v is not an integer", vals[0])
	}
	var pkBuf [20]byte
	pkText := strconv.AppendInt(pkBuf[:0], pk, 10)
	dst = p.beginObject(dst, pkText)
	for i := range p.fields {
		f := &p.fields[i]
		dst = append(dst, f.key...)
		var err error
		switch v := vals[i+1].(type) {
		case nil:
			if f.kind == kindM2M {
				dst = append(dst, "[]"...)
			} else {
				dst = append(dst, "null"...)
			}
		case int64:
			dst, err = p.appendSQLiteInt(dst, pkText, f, v)
		case float64:
			dst, err = p.appendSQLiteFloat(dst, pkText, f, v)
		case string:
			// Read only: a view of the string's bytes spares a copy per value.
			dst, err = p.appendSQLiteText(dst, pkText, f, unsafe.Slice(unsafe.StringData(v), len(v)))
		case []byte:
			dst, err = p.appendSQLiteText(dst, pkText, f, v)
		default:
			err = fmt.Errorf("unexpected value of type %T", v)
		}
		if err != nil {
			return dst, rowError(pkText, f, err)
		}
	}
	return fixture.EndObject(dst), nil
}

// appendSQLiteInt appends an INTEGER value of field f of row pk.
func (p *exportPlan) appendSQLiteInt(dst, pk []byte, f *exportField, v int64) ([]byte, error) {
	switch f.kind {
	case kindBool:
		// Django: bool(value) if value in (1, 0) else value.
		if v == 0 || v == 1 {
			return fixture.AppendBool(dst, v == 1), nil
		}
		p.warnNotBool(pk, f, fixture.AppendInt(nil, v))
		return fixture.AppendInt(dst, v), nil
	case kindDuration:
		return fixture.AppendDuration(dst, v), nil
	case kindDecimal:
		return p.appendDecimal(dst, pk, f, float64(v), func(b []byte) []byte { return fixture.AppendDecimalInt(b, v, f.places) }), nil
	case kindFloat:
		return fixture.AppendFloat(dst, float64(v)), nil
	case kindInt, kindText:
		return fixture.AppendInt(dst, v), nil
	case kindM2M:
		return append(fixture.AppendInt(append(dst, '['), v), ']'), nil
	}
	return dst, fmt.Errorf("integer %d where a %s is expected", v, kindName(f.kind))
}

// appendSQLiteFloat appends a REAL value of field f of row pk.
func (p *exportPlan) appendSQLiteFloat(dst, pk []byte, f *exportField, v float64) ([]byte, error) {
	switch f.kind {
	case kindDecimal:
		return p.appendDecimal(dst, pk, f, v, func(b []byte) []byte { return fixture.AppendDecimalFloat(b, v, f.places) }), nil
	case kindText, kindFloat:
		return fixture.AppendFloat(dst, v), nil
	case kindInt:
		return p.appendIntReal(dst, pk, f, v)
	case kindBool:
		// Django: bool(value) if value in (1, 0) else value; 1.0 == 1 in Python.
		if v == 0 || v == 1 {
			return fixture.AppendBool(dst, v == 1), nil
		}
		p.warnNotBool(pk, f, fixture.AppendFloat(nil, v))
		return fixture.AppendFloat(dst, v), nil
	case kindDuration:
		// A restore holds a duration as an int64 of microseconds: one beyond it would come
		// back as another value or not at all.
		if !inInt64(v) {
			return dst, fmt.Errorf("duration of %v microseconds is beyond the 64-bit integer a DurationField is stored in; fix the value", v)
		}
		// Django: timedelta(0, 0, value) rounds a float to whole microseconds.
		return fixture.AppendDuration(dst, int64(math.RoundToEven(v))), nil
	}
	return dst, fmt.Errorf("real %v where a %s is expected", v, kindName(f.kind))
}

// appendSQLiteText appends a SQLite text value of field f of row pk, warning about what the
// fixture cannot hold as it was.
func (p *exportPlan) appendSQLiteText(dst, pk []byte, f *exportField, v []byte) ([]byte, error) {
	if f.kind == kindJSON {
		return p.appendJSON(dst, pk, f, v)
	}
	p.checkText(pk, f, v)
	if f.kind == kindText {
		p.checkStoredText(pk, f, v)
	}
	return p.appendSQLiteTextAs(dst, pk, f, v)
}

// appendSQLiteTextAs appends a TEXT value of field f of row pk as the field's kind.
func (p *exportPlan) appendSQLiteTextAs(dst, pk []byte, f *exportField, v []byte) ([]byte, error) {
	switch f.kind {
	case kindText:
		return fixture.AppendString(dst, v), nil
	case kindInt:
		// Django writes the text as it is; a restore takes only text holding an integer.
		start := len(dst)
		dst = fixture.AppendString(dst, v)
		if _, err := decodeInt(dst[start:]); err != nil {
			p.warnRow(pk, f, fmt.Sprintf("the stored text %s is not an integer; the backup holds it as dumpdata writes it, which a restore refuses: fix the value", shorten(string(dst[start:]))))
		}
		return dst, nil
	case kindDateTime:
		t, err := parseDateTime(v)
		if err != nil {
			return dst, err
		}
		return fixture.AppendDateTime(dst, t), nil
	case kindDate:
		return appendDateText(dst, v)
	case kindUUID:
		return fixture.AppendUUID(dst, v)
	case kindJSON:
		return fixture.AppendJSON(dst, v)
	case kindM2M:
		return appendPKList(dst, v)
	case kindDecimal:
		x, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
		if err != nil {
			return dst, fmt.Errorf("decimal stored as text %q", v)
		}
		return p.appendDecimal(dst, pk, f, x, func(b []byte) []byte { return fixture.AppendDecimalFloat(b, x, f.places) }), nil
	}
	return dst, fmt.Errorf("text %q where a %s is expected", v, kindName(f.kind))
}

func kindName(k kind) string {
	return [...]string{"text", "integer", "boolean", "datetime", "date", "decimal", "UUID", "duration", "JSON", "float", "many-to-many list"}[k]
}

// appendPKList appends "1,2,3" as the JSON list [1, 2, 3].
func appendPKList(dst []byte, v []byte) ([]byte, error) {
	dst = append(dst, '[')
	start := 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ',' {
			if c := v[i]; (c < '0' || c > '9') && c != '-' {
				return dst, fmt.Errorf("bad primary key list %q", v)
			}
			continue
		}
		if i == start {
			return dst, fmt.Errorf("bad primary key list %q", v)
		}
		if start > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, v[start:i]...)
		start = i + 1
	}
	return append(dst, ']'), nil
}

// appendDateText appends a stored date "YYYY-MM-DD" as a DateField value.
func appendDateText(dst []byte, v []byte) ([]byte, error) {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' || !digits(v[0:4]) || !digits(v[5:7]) || !digits(v[8:10]) {
		return dst, fmt.Errorf("bad date %q", v)
	}
	if _, err := parseDate(string(v)); err != nil { // a day the month does not have
		return dst, err
	}
	dst = append(dst, '"')
	dst = append(dst, v...)
	return append(dst, '"'), nil
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// atoi parses unsigned decimal digits; ok is false for anything else or overflow.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseDateTime parses a stored datetime as Django's parse_datetime does:
// YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH[[:]MM]] (PostgreSQL also writes ±HH:MM:SS offsets). A
// datetime without offset is UTC (Django stores UTC on SQLite). The result is in UTC.
func parseDateTime(v []byte) (time.Time, error) {
	bad := func() (time.Time, error) { return time.Time{}, fmt.Errorf("bad datetime %q", v) }
	if len(v) < 16 || v[4] != '-' || v[7] != '-' || (v[10] != ' ' && v[10] != 'T') || v[13] != ':' {
		return bad()
	}
	year, ok1 := atoi(v[0:4])
	month, ok2 := atoi(v[5:7])
	day, ok3 := atoi(v[8:10])
	hour, ok4 := atoi(v[11:13])
	min, ok5 := atoi(v[14:16])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 {
		return bad()
	}
	rest := v[16:]
	sec, nsec := 0, 0
	if len(rest) >= 3 && rest[0] == ':' {
		s, ok := atoi(rest[1:3])
		if !ok || s > 59 {
			return bad()
		}
		sec = s
		rest = rest[3:]
		if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
			i := 1
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				i++
			}
			frac := rest[1:i]
			if len(frac) == 0 || len(frac) > 12 {
				return bad()
			}
			if len(frac) > 6 { // Django keeps microseconds, ignores the rest
				frac = frac[:6]
			}
			us, _ := atoi(frac)
			for n := len(frac); n < 6; n++ {
				us *= 10
			}
			nsec = us * 1000
			rest = rest[i:]
		}
	}
	offset := 0
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0] == 'Z':
	case rest[0] == '+' || rest[0] == '-':
		// ±HH, ±HHMM, ±HH:MM or ±HH:MM:SS; no allocation: this runs for every PostgreSQL value.
		o := rest[1:]
		if len(o) == 4 && digits(o) {
			o = []byte{o[0], o[1], ':', o[2], o[3]}
		}
		mult := 3600
		for len(o) > 0 {
			if len(o) < 2 || mult == 0 {
				return bad()
			}
			n, ok := atoi(o[:2])
			if !ok {
				return bad()
			}
			offset += n * mult
			mult /= 60
			o = o[2:]
			if len(o) > 0 {
				if o[0] != ':' || len(o) == 1 {
					return bad()
				}
				o = o[1:]
			}
		}
		if mult == 3600 {
			return bad()
		}
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad()
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC)
	if t.Day() != day { // Feb 30 and the like
		return bad()
	}
	return t.Add(-time.Duration(offset) * time.Second), nil
}

// parseInterval parses a PostgreSQL interval in IntervalStyle postgres ("1 year 2 mons -3 days
// +04:05:06.5") into microseconds the way psycopg2 makes a timedelta of it: a year is 365 days
// and a month 30. An interval whose microseconds do not fit in an int64 is refused.
func parseInterval(v []byte) (int64, error) {
	days, us, err := parseIntervalDays(v)
	if err != nil {
		return 0, err
	}
	t, ok := addDays(us, days)
	if !ok {
		return 0, fmt.Errorf("interval %q does not fit in an int64 of microseconds", v)
	}
	return t, nil
}

// parseIntervalDays is parseInterval giving whole days and 0 <= us < one day more, as a
// timedelta holds them: apart, they hold every interval PostgreSQL writes exactly (its
// months and days alone reach some 65 billion days), and what overflows even so is refused.
func parseIntervalDays(v []byte) (days, us int64, err error) {
	bad := func() (int64, int64, error) { return 0, 0, fmt.Errorf("bad interval %q", v) }
	fields := strings.Fields(string(v))
	if len(fields) == 0 {
		return bad()
	}
	ok := true
	for i := 0; i < len(fields) && ok; i++ {
		f := fields[i]
		if strings.Contains(f, ":") {
			var d, t int64
			if d, t, ok = parseIntervalTime(f); ok {
				days, us, ok = carryDays(days, d, us+t)
			}
			continue
		}
		if i+1 >= len(fields) {
			return bad()
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return bad()
		}
		i++
		var unit int64
		switch strings.TrimSuffix(fields[i], "s") {
		case "year":
			unit = 365
		case "mon":
			unit = 30
		case "day":
			unit = 1
		default:
			return bad()
		}
		days, ok = addMul(days, n, unit)
	}
	if !ok {
		return bad()
	}
	return days, us, nil
}

// parseIntervalTime parses an interval's "[±]H:MM:SS[.ffffff]" into whole days and the
// microseconds of less than a day left, both of its sign.
func parseIntervalTime(f string) (days, us int64, ok bool) {
	neg := false
	switch f[0] {
	case '-':
		neg, f = true, f[1:]
	case '+':
		f = f[1:]
	}
	hms := strings.Split(f, ":")
	if len(hms) != 3 {
		return 0, 0, false
	}
	h, err1 := strconv.ParseInt(hms[0], 10, 64)
	m, err2 := strconv.ParseInt(hms[1], 10, 64)
	secText, fracText, _ := strings.Cut(hms[2], ".")
	s, err3 := strconv.ParseInt(secText, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || s < 0 {
		return 0, 0, false
	}
	if fracText != "" {
		if len(fracText) > 6 || !digits([]byte(fracText)) {
			return 0, 0, false
		}
		us, _ = strconv.ParseInt((fracText + "000000")[:6], 10, 64)
	}
	// The hours as days and hours, so that no sum PostgreSQL writes overflows.
	days = h / 24
	var ok1, ok2, ok3 bool
	us, ok1 = addMul(us, s, usSecond)
	us, ok2 = addMul(us, m, usMinute)
	us, ok3 = addMul(us, h%24, usHour)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, false
	}
	days += us / usDay
	us %= usDay
	if neg {
		days, us = -days, -us
	}
	return days, us, true
}

// carryDays returns days + more whole days and us as whole days and 0 <= us < one day more,
// false when the days overflow. us is more than -2 and less than 2 days.
func carryDays(days, more, us int64) (int64, int64, bool) {
	more += us / usDay
	us %= usDay
	if us < 0 {
		more--
		us += usDay
	}
	days, ok := addMul(days, more, 1)
	return days, us, ok
}
