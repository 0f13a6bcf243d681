package demo

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// rng is a small splitmix64 generator. Every row gets its own, seeded from (seed, table, row),
// so a row is the same whatever was generated before it and rows can be produced one at a time.
type rng struct{ s uint64 }

// Stream identifiers: one per table or file kind, so two tables never share a random stream.
const (
	sLanguage uint64 = iota + 1
	sAuthor
	sUser
	sPerm
	sBook
	sChapter
	sMedia
	sBookFile
	sChangeLog
	sCollab
	sAssign
	sFile
	sMtime
)

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func newRNG(seed int64, stream uint64, row int64) rng {
	return rng{s: mix64(mix64(uint64(seed)^stream*0x9e3779b97f4a7c15) + uint64(row)*0xd1b54a32d192ed03)}
}

func (r *rng) u64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a number in [0, n); n <= 0 gives 0.
func (r *rng) intn(n int) int {
	if n <= 0 {
		return 0
	}
	return int(r.u64() % uint64(n))
}

// between returns a number in [lo, hi].
func (r *rng) between(lo, hi int64) int64 {
	return lo + int64(r.u64()%uint64(hi-lo+1))
}

func pick[T any](r *rng, xs []T) T { return xs[r.intn(len(xs))] }

// fill writes pseudo-random bytes into b.
func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		v := r.u64()
		for i := 0; i < 8; i++ {
			b[i] = byte(v >> (8 * i))
		}
		b = b[8:]
	}
	if len(b) > 0 {
		v := r.u64()
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
	}
}

// Timestamps fall in 2021-2024, with every microsecond class the fixture format treats
// differently: 0 (no fraction), 1-999 (".000"), and larger values (truncated, not rounded).
var (
	tsStart = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	tsSpan  = int64(4 * 365 * 24 * time.Hour / time.Second)
	// leapEdge is given to a few rows: a leap day, and 999999 microseconds that must become
	// ".999" (truncated), never a rounded-up next day.
	leapEdge = time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC)
)

func (r *rng) micros() int {
	switch r.intn(8) {
	case 0:
		return 0
	case 1:
		return 1 + r.intn(999)
	default:
		return r.intn(1000000)
	}
}

// ts returns a timestamp with microsecond precision.
func (r *rng) ts() time.Time {
	sec := r.between(0, tsSpan)
	return tsStart.Add(time.Duration(sec)*time.Second + time.Duration(r.micros())*time.Microsecond)
}

// after returns a timestamp up to maxDays after t.
func (r *rng) after(t time.Time, maxDays int) time.Time {
	sec := r.between(1, int64(maxDays)*86400)
	return t.Truncate(time.Second).Add(time.Duration(sec)*time.Second + time.Duration(r.micros())*time.Microsecond)
}

// uuid4 returns a random (version 4) UUID.
func (r *rng) uuid4() [16]byte {
	var u [16]byte
	r.fill(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// enc turns logical values into what Django stores for the engine, so the database holds
// exactly what `manage.py` would have written: SQLite keeps datetimes as text (no fraction
// when the microseconds are 0), UUIDs as 32 hex digits and booleans as integers; PostgreSQL
// gets native values. Durations are microseconds (int64) and decimals strings on both: that
// is what BulkInsert converts.
type enc struct{ sqlite bool }

func (e enc) time(t time.Time) any {
	if !e.sqlite {
		return t
	}
	t = t.UTC()
	s := t.Format("2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s
}

func (e enc) timeOrNil(t time.Time, ok bool) any {
	if !ok {
		return nil
	}
	return e.time(t)
}

func (e enc) bool(b bool) any {
	if !e.sqlite {
		return b
	}
	if b {
		return int64(1)
	}
	return int64(0)
}

func (e enc) uuid(u [16]byte) any {
	h := hex.EncodeToString(u[:])
	if e.sqlite {
		return h
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// JSON values are built from nil, bool, string, int, int64, num (a number literal written as
// is: "9007199254740993", "1.5e-07"), []any and obj (an object keeping its key order).
type (
	num string
	kv  struct {
		k string
		v any
	}
	obj []kv
)

// pyJSON encodes v as Python's json.dumps does by default, which is what Django's JSONField
// stores: separators ", " and ": ", non-ASCII escaped as \uXXXX (surrogate pairs beyond the
// BMP), keys in insertion order.
func pyJSON(v any) string {
	var b strings.Builder
	writeJSON(&b, v)
	return b.String()
}

func writeJSON(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int:
		b.WriteString(strconv.Itoa(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case num:
		b.WriteString(string(v))
	case string:
		writeJSONString(b, v)
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSON(b, x)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, x)
		}
		b.WriteByte(']')
	case obj:
		b.WriteByte('{')
		for i, p := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, p.k)
			b.WriteString(": ")
			writeJSON(b, p.v)
		}
		b.WriteByte('}')
	default:
		// Only this package builds JSON values: a new type here is a programming error that
		// the tests catch, written visibly rather than silently dropped.
		fmt.Fprintf(b, "%q", fmt.Sprint(v))
	}
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c >= 0x20 && c < 0x7f:
			b.WriteRune(c)
		case c > 0xffff:
			c -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(c>>10), 0xdc00+(c&0x3ff))
		default:
			fmt.Fprintf(b, `\u%04x`, c)
		}
	}
	b.WriteByte('"')
}

// slugify is Django's slugify(value, allow_unicode=True): lower case, only letters, digits,
// underscores, hyphens and spaces kept, runs of spaces and hyphens become one hyphen.
func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || unicode.Is(unicode.Mn, c):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
		case c == ' ' || c == '-' || unicode.IsSpace(c):
			dash = true
		}
	}
	return b.String()
}

// truncate cuts s to at most n characters (Django's max_length counts characters).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
