package database

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// LoadFixture is one model's fixture to load.
type LoadFixture struct {
	Model platform.Model
	// Open returns the fixture file's content (Django JSON: indented, compact or lines).
	Open func() (io.ReadCloser, error)
	// Weight orders a parallel load, largest first (rows or bytes; 0 when unknown).
	Weight int64
}

// LoadOptions shape a load.
type LoadOptions struct {
	// Merge upserts by primary key, as loaddata does, instead of replacing the models' rows.
	Merge bool
	// Jobs > 1 loads into empty tables over that many PostgreSQL connections, table by table
	// (see loadParallel); it cannot merge, and a failure leaves the database half-restored.
	Jobs int
	// Verify, when set, is a check the load must pass before it changes anything (the
	// fixtures' checksums). A one-transaction PostgreSQL load runs it alongside its COPYs and
	// commits only once it returned nil; its error rolls the load back and is the load's
	// error, whatever else failed. A parallel load (Jobs > 1) runs it alongside its
	// preparation, whose commit (its first) waits for it; SQLite runs it first.
	Verify func(context.Context) error
	// VerifyAfterRead says Verify hashes what the load reads of its fixtures (a
	// one-transaction PostgreSQL load): the load runs it once it has read them all, before its
	// commit, and after a failure (its error still comes first), instead of alongside.
	VerifyAfterRead bool
}

// LoadedModel is one model's outcome.
type LoadedModel struct {
	Label string
	// Rows loaded from the fixture; Before is the table's row count before the load.
	Rows, Before int64
}

// Load loads fixtures in one transaction: by default it empties the models' tables (auto M2M
// tables included) and loads the fixtures; with Merge it upserts by pk. Foreign-key checks are
// deferred to commit, so any row order and self references load; sequences are set past the
// loaded ids. Any failure leaves the database exactly as before and names the model, the pk
// and the cause.
func (db *DB) Load(ctx context.Context, fixtures []LoadFixture, o LoadOptions) ([]LoadedModel, error) {
	plans := make([]*loadPlan, len(fixtures))
	seen := map[string]bool{}
	for i, f := range fixtures {
		if f.Open == nil {
			return nil, fmt.Errorf("load %s: no fixture to open", f.Model.Label)
		}
		if seen[f.Model.Table] {
			return nil, fmt.Errorf("load %s: model given twice", f.Model.Label)
		}
		seen[f.Model.Table] = true
		p, err := newLoadPlan(f.Model)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", f.Model.Label, err)
		}
		plans[i] = p
	}
	var (
		out []LoadedModel
		err error
	)
	switch {
	case o.Jobs > 1 && o.Merge:
		return nil, outcome.NewUsage(errors.New("--jobs cannot be combined with --merge: a parallel restore fills empty tables"))
	case o.Jobs > 1 && db.pool == nil:
		return nil, outcome.NewUsage(errors.New("--jobs: a SQLite database is loaded on one connection; leave --jobs out"))
	case o.Jobs > 1:
		vctx, cancel := context.WithCancel(ctx) // the check stops when the load returns
		defer cancel()
		o.VerifyAfterRead = false // its preparation's commit waits for the check; the copies come after
		return db.loadParallel(ctx, fixtures, plans, o.Jobs, startVerify(vctx, o))
	case db.pool != nil:
		if err := db.refuseUnfinishedParallel(ctx); err != nil {
			return nil, err
		}
		out, err = db.loadPostgres(ctx, fixtures, plans, o)
	default:
		if err := verifyFirst(ctx, o); err != nil {
			return nil, err
		}
		out, err = db.loadSQLite(ctx, fixtures, plans, o)
		err = db.lockError(err, "load", 0)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verifyFirst runs o.Verify, if any, before a load that cannot wait for it to commit.
func verifyFirst(ctx context.Context, o LoadOptions) error {
	if o.Verify == nil {
		return nil
	}
	return o.Verify(ctx)
}

// startVerify runs o.Verify, if any, alongside the load (with VerifyAfterRead, at the first
// call of) the function it returns, which waits for its outcome (nil without Verify).
func startVerify(ctx context.Context, o LoadOptions) func() error {
	if o.Verify == nil {
		return func() error { return nil }
	}
	if o.VerifyAfterRead {
		var once sync.Once
		var err error
		return func() error {
			once.Do(func() { err = o.Verify(ctx) })
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- o.Verify(ctx) }()
	return func() error {
		err := <-done
		done <- err // a second wait gets the same outcome
		return err
	}
}

// CountRows returns each model's current row count (for a restore's plan). PostgreSQL counts
// every table in one query: a round trip a table was a tenth of a small restore's checks.
func (db *DB) CountRows(ctx context.Context, models []platform.Model) (map[string]int64, error) {
	counts := make(map[string]int64, len(models))
	if db.pool != nil && len(models) > 0 {
		tables := make([]string, len(models))
		for i, m := range models {
			tables[i] = m.Table
		}
		n, err := countTables(ctx, db.pool, quoteAll(tables))
		if isLockTimeout(err) {
			return nil, db.lockError(err, "count rows", 0, tables...)
		}
		if err != nil {
			return nil, fmt.Errorf("count rows: %w", err)
		}
		for i, m := range models {
			counts[m.Label] = n[i]
		}
		return counts, nil
	}
	for _, m := range models {
		n, err := db.TableRows(ctx, m.Table)
		if isLockTimeout(err) {
			return nil, db.lockError(err, "count rows of "+m.Label, 0, m.Table)
		}
		if err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", m.Label, err)
		}
		counts[m.Label] = n
	}
	return counts, nil
}

// oneRoundTrip runs a query a run makes once or twice in one round trip (parse, bind and
// execute sent together, text results) rather than preparing it first: on a busy machine each
// round trip is one more wait for the client to be scheduled, and a restore's preparation is
// a chain of them before its first COPY.
const oneRoundTrip = pgx.QueryExecModeExec

// countTables counts the rows of each of tables (quoted) with one query, in their order.
func countTables(ctx context.Context, q pgQuerier, tables []string) ([]int64, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	sub := make([]string, len(tables))
	for i, t := range tables {
		sub[i] = "(SELECT count(*) FROM " + t + ")"
	}
	var n []int64
	if err := q.QueryRow(ctx, "SELECT ARRAY["+strings.Join(sub, ", ")+"]::int8[]", oneRoundTrip).Scan(&n); err != nil {
		return nil, err
	}
	if len(n) != len(tables) {
		return nil, fmt.Errorf("counted %d tables, not %d", len(n), len(tables))
	}
	return n, nil
}

// quoteAll quotes each of names as an identifier.
func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}

// TableRows returns the number of rows in a table.
func (db *DB) TableRows(ctx context.Context, table string) (int64, error) {
	q := "SELECT count(*) FROM " + quote(table)
	var n int64
	var err error
	if db.pool != nil {
		err = db.pool.QueryRow(ctx, q).Scan(&n)
	} else {
		err = db.sql.QueryRowContext(ctx, q).Scan(&n)
	}
	return n, err
}

// openFixture opens a fixture for streaming.
func openFixture(f LoadFixture) (*fixture.Reader, io.Closer, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: open fixture: %w", f.Model.Label, err)
	}
	return fixture.NewReader(rc), rc, nil
}

// loadPlan is how one model's fixture objects become rows: the columns are the pk then the
// non-M2M fields in serialization order (Model.Columns).
type loadPlan struct {
	m      platform.Model
	cols   []string
	fields []loadField // fields[i] fills row[i+1]
	m2m    []loadField
	// byName finds a field by name (or FK column, which Django also accepts): i >= 0 is
	// fields[i], i < 0 is m2m[-i-1].
	byName map[string]int
}

type loadField struct {
	platform.Field
	kind kind
}

func newLoadPlan(m platform.Model) (*loadPlan, error) {
	if kinds[m.PK.Type] != kindInt {
		return nil, fmt.Errorf("primary key %s of type %s: only integer primary keys are supported", m.PK.Name, m.PK.Type)
	}
	p := &loadPlan{m: m, cols: m.Columns(), byName: map[string]int{}}
	for _, f := range m.Fields {
		k, ok := kinds[f.Type]
		if !ok {
			return nil, fmt.Errorf("field %s: unsupported type %s", f.Name, f.Type)
		}
		lf := loadField{Field: f, kind: k}
		if k == kindM2M {
			if f.ThroughTable == "" || len(f.ThroughColumns) != 2 {
				return nil, fmt.Errorf("field %s: many-to-many field without through table and columns", f.Name)
			}
			p.m2m = append(p.m2m, lf)
			p.byName[f.Name] = -len(p.m2m)
			continue
		}
		p.fields = append(p.fields, lf)
		p.byName[f.Name] = len(p.fields) - 1
		if f.Type == platform.ForeignKey && f.Column != f.Name {
			p.byName[f.Column] = len(p.fields) - 1
		}
	}
	return p, nil
}

// loadRow is one decoded object: vals[0] is the pk, vals[i+1] field i in the engine-neutral
// form decodeValue returns; m2m[j] the pks of m2m field j, nil when the fixture leaves it out.
type loadRow struct {
	pk   int64
	vals []any
	set  []bool
	m2m  [][]int64
	seen []bool // m2m field present
	// order[k] is where the previous object's k-th field went: objects of a fixture list
	// their fields in one order, so a string comparison usually replaces the map lookup.
	order []orderHint
}

type orderHint struct {
	name string
	i    int
}

// lookup finds field name, the k-th of its object, as p.byName does.
func (r *loadRow) lookup(p *loadPlan, k int, name string) (int, bool) {
	if k < len(r.order) && r.order[k].name == name {
		return r.order[k].i, true
	}
	i, ok := p.byName[name]
	if ok {
		for len(r.order) <= k {
			r.order = append(r.order, orderHint{})
		}
		r.order[k] = orderHint{name, i}
	}
	return i, ok
}

// tables are the tables a load of p writes, quoted: the model's and its through tables.
func (p *loadPlan) tables() []string {
	out := []string{quote(p.m.Table)}
	for _, f := range p.m2m {
		out = append(out, quote(f.ThroughTable))
	}
	return out
}

func (p *loadPlan) newRow() *loadRow {
	return &loadRow{
		vals: make([]any, len(p.cols)),
		set:  make([]bool, len(p.fields)),
		m2m:  make([][]int64, len(p.m2m)),
		seen: make([]bool, len(p.m2m)),
	}
}

// RowError is a fixture object that cannot be loaded: it names the model and the pk.
type RowError struct {
	Model string
	PK    string
	Err   error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("load %s pk %s: %v", e.Model, e.PK, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// decode fills r from obj, checking the model, every field name and value.
func (p *loadPlan) decode(obj *fixture.Object, r *loadRow) error {
	fail := func(err error) error { return &RowError{Model: p.m.Label, PK: shorten(string(obj.PK)), Err: err} }
	if obj.Model != p.m.Label && !strings.EqualFold(obj.Model, p.m.Label) {
		return fail(fmt.Errorf("object of model %q in the fixture of %s", obj.Model, p.m.Label))
	}
	pk, err := decodeInt(obj.PK)
	if err != nil {
		return fail(fmt.Errorf("primary key: %w", err))
	}
	r.pk, r.vals[0] = pk, pk
	clear(r.set)
	clear(r.seen)
	for k, fv := range obj.Fields {
		i, ok := r.lookup(p, k, fv.Name)
		if !ok {
			if fv.Name == p.m.PK.Name || fv.Name == "pk" {
				if v, err := decodeInt(fv.Value); err != nil || v != pk {
					return fail(fmt.Errorf("field %q: %s differs from the object's pk", fv.Name, shorten(string(fv.Value))))
				}
				continue
			}
			return fail(fmt.Errorf("unknown field %q", fv.Name))
		}
		if i < 0 {
			j := -i - 1
			if r.m2m[j], err = decodePKList(fv.Value, r.m2m[j][:0]); err != nil {
				return fail(fmt.Errorf("field %q: %w", fv.Name, err))
			}
			r.seen[j] = true
			continue
		}
		f := &p.fields[i]
		v, err := decodeValue(f, fv.Value)
		if err != nil {
			return fail(fmt.Errorf("field %q: %w", f.Name, err))
		}
		r.vals[i+1], r.set[i] = v, true
	}
	for i := range p.fields {
		if r.set[i] {
			continue
		}
		if !p.fields[i].Null {
			return fail(fmt.Errorf("field %q is missing", p.fields[i].Name))
		}
		r.vals[i+1] = nil
	}
	return nil
}

// shorten keeps error messages readable when a value is huge.
func shorten(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// jsonString returns the string a JSON string literal holds, and false for other values.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	return fixture.Unquote(raw)
}

func isJSONNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// decodeInt reads an integer as Django's IntegerField.to_python does: a JSON integer, a float
// with no fraction, or a string holding an integer.
func decodeInt(raw []byte) (int64, error) {
	if n, ok := plainInt(raw); ok {
		return n, nil
	}
	bad := func() (int64, error) { return 0, fmt.Errorf("not an integer: %s", shorten(string(raw))) }
	text := string(raw)
	if s, ok := jsonString(raw); ok {
		text = strings.TrimSpace(s)
	} else if !isJSONNumber(raw) {
		return bad()
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, nil
	}
	if !isJSONNumber(raw) {
		return bad()
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != float64(int64(f)) || f >= 1<<63 || f < -(1<<63) {
		return bad()
	}
	return int64(f), nil
}

// plainInt reads a JSON integer of up to 18 digits without allocating: nearly every integer
// of a fixture. Anything else is left to decodeInt's general rules.
func plainInt(raw []byte) (int64, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 || digits[0] == '0' && len(digits) > 1 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(raw) {
		n = -n
	}
	return n, true
}

// plainString returns the bytes between the quotes of a JSON string without escapes, which
// need no unquoting (and no allocation).
func plainString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw[1:len(raw)-1], '\\') >= 0 {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

// decodePKList reads a many-to-many value: a list of target pks.
func decodePKList(raw []byte, dst []int64) ([]int64, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("not a list of primary keys: %s", shorten(string(raw)))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("not a list of primary keys: %w", err)
	}
	if dst == nil {
		dst = make([]int64, 0, len(items))
	}
	for _, it := range items {
		if len(it) > 0 && it[0] == '[' {
			return nil, errors.New("natural keys are not supported")
		}
		n, err := decodeInt(it)
		if err != nil {
			return nil, err
		}
		dst = append(dst, n)
	}
	return dst, nil
}

// decodeValue converts one fixture value to the engine-neutral form the engines convert
// further: nil (SQL NULL), int64 (integers, FKs; durations in microseconds), string (text,
// decimals in plain notation, UUIDs in 36-character lowercase form), bool, time.Time
// (datetimes in UTC, dates at midnight UTC), float64, []byte (JSON re-encoded as Django
// writes it).
func decodeValue(f *loadField, raw []byte) (any, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		switch {
		case f.Null:
			return nil, nil
		case f.kind == kindJSON:
			// A JSONField that cannot be NULL held JSON's null, which dumpdata writes as null
			// too: the only value it can stand for.
			return []byte("null"), nil
		}
		return nil, errors.New("null, but the field is not nullable")
	}
	show := func() string { return shorten(string(raw)) }
	switch f.kind {
	case kindText:
		if s, ok := jsonString(raw); ok {
			return s, nil
		}
		if isJSONNumber(raw) { // Django: str(value)
			return string(raw), nil
		}
		return nil, fmt.Errorf("not a string: %s", show())
	case kindInt:
		if len(raw) > 0 && raw[0] == '[' {
			return nil, fmt.Errorf("natural keys are not supported: %s", show())
		}
		n, err := decodeInt(raw)
		if err == nil && n < 0 && strings.HasPrefix(f.Type, "Positive") {
			return nil, fmt.Errorf("%d is negative, but the field is a %s", n, f.Type)
		}
		return n, err
	case kindBool:
		switch string(raw) {
		case "true", "1", `"t"`, `"True"`, `"true"`, `"1"`:
			return true, nil
		case "false", "0", `"f"`, `"False"`, `"false"`, `"0"`:
			return false, nil
		}
		return nil, fmt.Errorf("not a boolean: %s", show())
	case kindFloat:
		text := string(raw)
		if s, ok := jsonString(raw); ok {
			text = strings.TrimSpace(s)
		}
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %s", show())
		}
		return x, nil
	case kindDateTime:
		return decodeDateTime(raw)
	case kindDate:
		s, ok := jsonString(raw)
		if !ok {
			return nil, fmt.Errorf("not a date: %s", show())
		}
		d, err := parseDate(s)
		if err != nil {
			return nil, fmt.Errorf("not a date: %s", show())
		}
		return d, nil
	case kindDecimal:
		text := string(raw)
		if s, ok := jsonString(raw); ok {
			text = s
		} else if !isJSONNumber(raw) {
			return nil, fmt.Errorf("not a decimal: %s", show())
		}
		d, ok := plainDecimal(text)
		if !ok {
			return nil, fmt.Errorf("not a decimal: %s", show())
		}
		return d, nil
	case kindUUID:
		s, ok := jsonString(raw)
		if !ok {
			return nil, fmt.Errorf("not a UUID: %s", show())
		}
		u, ok := canonicalUUID(s)
		if !ok {
			return nil, fmt.Errorf("not a UUID: %s", show())
		}
		return u, nil
	case kindDuration:
		s, ok := jsonString(raw)
		if !ok {
			return nil, fmt.Errorf("not a duration: %s", show())
		}
		us, err := parseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("not a duration: %s", show())
		}
		return us, nil
	case kindJSON:
		out, err := fixture.AppendJSON(nil, raw)
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported field kind %s", kindName(f.kind))
}

// decodeDateTime reads a DateTimeField value as Django does: a datetime (UTC when it has no
// offset) or a date, which becomes midnight.
func decodeDateTime(raw []byte) (any, error) {
	show := func() string { return shorten(string(raw)) }
	if b, ok := plainString(raw); ok && len(b) > 0 && b[0] != ' ' && b[len(b)-1] != ' ' {
		if t, err := parseDateTime(b); err == nil {
			if zeroMillis(string(b)) { // no allocation: the conversion does not escape
				t = t.Add(time.Microsecond)
			}
			return t, nil
		}
	}
	s, ok := jsonString(raw)
	if !ok {
		return nil, fmt.Errorf("not a datetime: %s", show())
	}
	s = strings.TrimSpace(s)
	t, err := parseDateTime([]byte(s))
	if err != nil {
		// Django turns a date into midnight of that day.
		if d, derr := parseDate(s); derr == nil {
			return d, nil
		}
		return nil, fmt.Errorf("not a datetime: %s", show())
	}
	if zeroMillis(s) {
		// Django writes ".000" only for 1-999 microseconds (none at all for 0). Loading
		// 0 would make the next backup write no fraction; 1 µs is inside the fixture's
		// interval and exports as the same text, so backup → restore → backup is stable.
		t = t.Add(time.Microsecond)
	}
	return t, nil
}

// zeroMillis reports whether a datetime's fraction is exactly ".000", which is how Django's
// encoder truncates 1-999 microseconds.
func zeroMillis(s string) bool {
	return len(s) >= 23 && (s[19] == '.' || s[19] == ',') && s[20:23] == "000" && (len(s) == 23 || s[23] < '0' || s[23] > '9')
}

// parseDate parses a DateField value as Django's parse_date does: YYYY-M[M]-D[D].
func parseDate(s string) (time.Time, error) {
	bad := func() (time.Time, error) { return time.Time{}, fmt.Errorf("bad date %q", s) }
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) != 4 || len(parts[1]) < 1 || len(parts[1]) > 2 || len(parts[2]) < 1 || len(parts[2]) > 2 {
		return bad()
	}
	y, ok1 := atoi([]byte(parts[0]))
	m, ok2 := atoi([]byte(parts[1]))
	d, ok3 := atoi([]byte(parts[2]))
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return bad()
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d {
		return bad()
	}
	return t, nil
}

// maxDecimalExponent bounds the plain notation of a decimal with an exponent.
const maxDecimalExponent = 1000

// plainDecimal checks decimal text as Python's Decimal reads it (surrounding spaces, sign,
// digits, point, exponent; NaN and Infinity) and returns it in plain notation, which both
// PostgreSQL's numeric input and SQLite's NUMERIC affinity take.
func plainDecimal(s string) (string, bool) {
	s = strings.TrimSpace(s)
	neg := false
	body := s
	if len(body) > 0 && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	switch strings.ToLower(body) {
	case "nan":
		return "NaN", true
	case "inf", "infinity":
		if neg {
			return "-Infinity", true
		}
		return "Infinity", true
	}
	mant, expText, hasExp := strings.Cut(body, "e")
	if !hasExp {
		mant, expText, hasExp = strings.Cut(body, "E")
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart+frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return "", false
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil || e > maxDecimalExponent || e < -maxDecimalExponent || strings.HasPrefix(expText, "+") && len(expText) == 1 {
			return "", false
		}
		exp = e
	}
	digits := intPart + frac
	point := len(intPart) + exp // position of the decimal point in digits
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case point <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -point))
		b.WriteString(digits)
	case point >= len(digits):
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", point-len(digits)))
	default:
		b.WriteString(digits[:point])
		b.WriteByte('.')
		b.WriteString(digits[point:])
	}
	out := b.String()
	if strings.HasPrefix(strings.TrimPrefix(out, "-"), ".") {
		out = strings.Replace(out, ".", "0.", 1)
	}
	return out, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalUUID reads a UUID as Python's uuid.UUID(hex) does (braces, "urn:uuid:" and hyphens
// ignored, 32 hex digits) and returns its lowercase hyphenated form.
func canonicalUUID(s string) (string, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "urn:"), "uuid:")
	s = strings.Trim(s, "{}")
	var hex [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			continue
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", false
		}
		if n == len(hex) {
			return "", false
		}
		hex[n] = c
		n++
	}
	if n != len(hex) {
		return "", false
	}
	var out [36]byte
	copy(out[0:8], hex[0:8])
	copy(out[9:13], hex[8:12])
	copy(out[14:18], hex[12:16])
	copy(out[19:23], hex[16:20])
	copy(out[24:], hex[20:])
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	return string(out[:]), true
}

// parseDuration parses a DurationField value into microseconds, as Django's parse_duration
// does: its own "[D[ days,] ][-]HH:MM:SS[.ffffff]" form (what fixtures hold), ISO 8601
// "[-]P[nD][T[nH][nM][nS]]" (what DjangoJSONEncoder writes), and PostgreSQL's interval form.
func parseDuration(s string) (int64, error) {
	if us, ok := parseStandardDuration(s); ok {
		return us, nil
	}
	if us, ok := parseISODuration(s); ok {
		return us, nil
	}
	return parseInterval([]byte(s))
}

const (
	usSecond = int64(1_000_000)
	usMinute = 60 * usSecond
	usHour   = 60 * usMinute
	usDay    = 24 * usHour
)

// maxDurationDays is Python's timedelta.max.days.
const maxDurationDays = 999_999_999

func parseStandardDuration(s string) (int64, bool) {
	var days int64
	rest := s
	if d, r, ok := strings.Cut(s, " "); ok {
		r = strings.TrimPrefix(strings.TrimPrefix(r, "days, "), "day, ")
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || d[0] == '+' || n > maxDurationDays || n < -maxDurationDays {
			return 0, false
		}
		days, rest = n, r
	}
	neg, ok := strings.HasPrefix(rest, "-"), false
	rest = strings.TrimPrefix(rest, "-")
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return 0, false
	}
	last := parts[len(parts)-1]
	secText, fracText, hasFrac := strings.Cut(last, ".")
	if !hasFrac {
		secText, fracText, hasFrac = strings.Cut(last, ",")
	}
	parts[len(parts)-1] = secText
	var us int64
	if hasFrac {
		if len(fracText) < 1 || len(fracText) > 12 || !allDigits(fracText) {
			return 0, false
		}
		if len(fracText) > 6 {
			fracText = fracText[:6]
		}
		us, _ = strconv.ParseInt((fracText + "00000")[:6], 10, 64)
	}
	units := []int64{usSecond, usMinute, usHour}
	t := us
	for i := range parts {
		p := parts[len(parts)-1-i]
		if p == "" || len(p) > 12 || !allDigits(p) {
			return 0, false
		}
		n, _ := strconv.ParseInt(p, 10, 64)
		if t, ok = addMul(t, n, units[i]); !ok {
			return 0, false
		}
	}
	if neg {
		t = -t
	}
	return addDays(t, days)
}

// addDays returns t + days whole days in microseconds, false when the sum does not fit in an
// int64. The product alone may not fit where the sum does: timedelta(microseconds=-2**63) is
// "-106751992 19:59:05.224192".
func addDays(t, days int64) (int64, bool) {
	if r, ok := addMul(t, days, usDay); ok {
		return r, true
	}
	z := new(big.Int).Mul(big.NewInt(days), big.NewInt(usDay))
	z.Add(z, big.NewInt(t))
	if !z.IsInt64() {
		return 0, false
	}
	return z.Int64(), true
}

// addMul returns a + n*unit for n >= 0 or < 0 and unit > 0, and false on int64 overflow.
func addMul(a, n, unit int64) (int64, bool) {
	if n > math.MaxInt64/unit || n < math.MinInt64/unit {
		return 0, false
	}
	p := n * unit
	if (p > 0 && a > math.MaxInt64-p) || (p < 0 && a < math.MinInt64-p) {
		return 0, false
	}
	return a + p, true
}

func parseISODuration(s string) (int64, bool) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if !strings.HasPrefix(s, "P") {
		return 0, false
	}
	s = s[1:]
	var total int64
	valid := true
	// component reads "<n>[.,<frac>]<unit>" if s starts with it.
	component := func(unit byte, us int64) {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
			i++
		}
		if i == 0 || i >= len(s) || s[i] != unit {
			return
		}
		num := strings.Replace(s[:i], ",", ".", 1)
		s = s[i+1:]
		whole, frac, _ := strings.Cut(num, ".")
		if whole == "" || len(whole) > 12 || !allDigits(whole) || !allDigits(frac) {
			valid = false
			return
		}
		n, _ := strconv.ParseInt(whole, 10, 64)
		if total, valid = addMul(total, n, us); !valid {
			return
		}
		if frac != "" {
			if len(frac) > 9 {
				frac = frac[:9]
			}
			f, _ := strconv.ParseInt(frac, 10, 64)
			scale := int64(1)
			for range len(frac) {
				scale *= 10
			}
			total += f * us / scale
		}
	}
	component('D', usDay)
	if strings.HasPrefix(s, "T") {
		s = s[1:]
		component('H', usHour)
		component('M', usMinute)
		component('S', usSecond)
	}
	if s != "" || !valid || total < 0 {
		return 0, false
	}
	if neg {
		total = -total
	}
	return total, true
}

// pyDateTime formats t as Django's SQLite backend stores datetimes: str() of the naive UTC
// datetime, "YYYY-MM-DD HH:MM:SS" with ".ffffff" when the microseconds are not 0.
func pyDateTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// asciiJSON rewrites JSON that AppendJSON produced the way json.dumps writes it with its
// default ensure_ascii=True, which is how Django's SQLite backend stores a JSONField: every
// character outside printable ASCII as \uXXXX (surrogate pairs above U+FFFF), lowercase hex.
func asciiJSON(src []byte) []byte {
	i := 0
	for i < len(src) && src[i] < 0x7f {
		i++
	}
	if i == len(src) {
		return src
	}
	const hexDigits = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	dst := make([]byte, 0, len(src)+16)
	dst = append(dst, src[:i]...)
	for i < len(src) {
		c := src[i]
		if c < 0x7f {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			dst = u(dst, 0xd800+(r>>10))
			dst = u(dst, 0xdc00+(r&0x3ff))
			continue
		}
		dst = u(dst, r)
	}
	return dst
}
