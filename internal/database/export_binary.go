package database

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// binCol is how a PostgreSQL result column is read: binNone in text format, the others in
// binary format. Binary spares the server its output functions, which for timestamps cost
// more than the rest of the export on its side; each decoder writes exactly what the text
// path writes for the same value (and refuses what it refuses).
type binCol uint8

const (
	binNone      binCol = iota
	binInt              // int2, int4, int8
	binBool             // bool
	binTimestamp        // timestamptz, timestamp: microseconds since 2000-01-01 UTC
	binDate             // date: days since 2000-01-01
	binUUID             // uuid: 16 bytes
	binInterval         // interval: microseconds, days, months
	textJSONB           // jsonb, in text format: its text is often already the fixture's
)

// binaryColumn chooses the format of a column of kind k whose type is oid. Any pairing not
// listed (a DecimalField in a float column, text, JSON, numeric, floats) stays in text format,
// read as before.
func binaryColumn(k kind, oid uint32) binCol {
	switch {
	case k == kindInt && (oid == pgtype.Int2OID || oid == pgtype.Int4OID || oid == pgtype.Int8OID):
		return binInt
	case k == kindBool && oid == pgtype.BoolOID:
		return binBool
	case k == kindDateTime && (oid == pgtype.TimestamptzOID || oid == pgtype.TimestampOID):
		return binTimestamp
	case k == kindDate && oid == pgtype.DateOID:
		return binDate
	case k == kindUUID && oid == pgtype.UUIDOID:
		return binUUID
	case k == kindDuration && oid == pgtype.IntervalOID:
		return binInterval
	case k == kindJSON && oid == pgtype.JSONBOID:
		return textJSONB
	}
	return binNone
}

// setFormats decides the format of each result column from the statement's description and
// returns the result format codes to bind with. Column 0 is the pk. floatTimes is a server
// that keeps timestamps and intervals as floats (integer_datetimes off, before PostgreSQL 10),
// whose binary forms the decoders do not read: those columns stay text.
func (p *exportPlan) setFormats(fields []pgconn.FieldDescription, floatTimes bool) ([]int16, error) {
	if len(fields) != len(p.fields)+1 {
		return nil, fmt.Errorf("query returns %d columns, want %d", len(fields), len(p.fields)+1)
	}
	p.bin = make([]binCol, len(fields))
	formats := make([]int16, len(fields))
	for i, fd := range fields {
		k := kindInt // the pk
		if i > 0 {
			k = p.fields[i-1].kind
		}
		if p.textOnly {
			continue
		}
		p.bin[i] = binaryColumn(k, fd.DataTypeOID)
		if floatTimes && (p.bin[i] == binTimestamp || p.bin[i] == binInterval) {
			p.bin[i] = binNone
		}
		if p.bin[i] != binNone && p.bin[i] != textJSONB {
			formats[i] = pgtype.BinaryFormatCode
		}
	}
	return formats, nil
}

// pkText returns the pk column's value as JSON digits, decoding it if it came in binary.
func (p *exportPlan) pkText(v []byte) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("row without primary key")
	}
	if len(p.bin) == 0 || p.bin[0] == binNone {
		return v, nil
	}
	n, err := decodeBinInt(v)
	if err != nil {
		return nil, fmt.Errorf("primary key: %w", err)
	}
	p.pkBuf = fixture.AppendInt(p.pkBuf[:0], n)
	return p.pkBuf, nil
}

// appendBinary appends a value of field f of row pk that came in binary format as column
// kind b.
func (p *exportPlan) appendBinary(dst, pk []byte, f *exportField, b binCol, v []byte) ([]byte, error) {
	switch b {
	case binInt:
		n, err := decodeBinInt(v)
		return fixture.AppendInt(dst, n), err
	case binBool:
		if len(v) != 1 {
			return dst, fmt.Errorf("bad binary boolean of %d bytes", len(v))
		}
		return fixture.AppendBool(dst, v[0] != 0), nil
	case binTimestamp:
		us, err := decodeTimestamp(v)
		if err != nil {
			return dst, err
		}
		return fixture.AppendDateTimeMicros(dst, us), nil
	case binDate:
		return appendBinaryDate(dst, v)
	case binUUID:
		return appendBinaryUUID(dst, v)
	case binInterval:
		days, us, err := decodeInterval(v)
		if err != nil {
			return dst, err
		}
		return p.appendDuration(dst, pk, f, days, us)
	}
	return dst, fmt.Errorf("no binary decoder for column kind %d", b)
}

func decodeBinInt(v []byte) (int64, error) {
	switch len(v) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(v))), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(v))), nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, fmt.Errorf("bad binary integer of %d bytes", len(v))
}

// Microseconds since 1970-01-01 of PostgreSQL's epoch, 2000-01-01, and of the first and
// last microsecond of the years 1-9999 (what Django's datetime can hold).
const (
	pgEpochMicros = 946684800 * 1000000
	minYearMicros = -62135596800 * 1000000 // 0001-01-01T00:00:00Z
	endYearMicros = 253402300800 * 1000000 // 10000-01-01T00:00:00Z
	minYearDays   = minYearMicros / 86400e6
	endYearDays   = endYearMicros / 86400e6
)

// decodeTimestamp decodes a binary timestamp into microseconds since 1970-01-01 UTC.
// Infinities and years outside 1-9999 are refused, as the text path refuses their text
// ("infinity", "... BC", five-digit years): Django could not hold them.
func decodeTimestamp(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("bad binary datetime of %d bytes", len(v))
	}
	us := int64(binary.BigEndian.Uint64(v))
	switch {
	case us == math.MaxInt64:
		return 0, fmt.Errorf("bad datetime %q", "infinity")
	case us == math.MinInt64:
		return 0, fmt.Errorf("bad datetime %q", "-infinity")
	case us < minYearMicros-pgEpochMicros || us >= endYearMicros-pgEpochMicros:
		return 0, fmt.Errorf("bad datetime: %d microseconds from 2000-01-01 is outside the years 1-9999", us)
	}
	return us + pgEpochMicros, nil
}

// appendBinaryDate appends a binary date as "YYYY-MM-DD", refusing what the text path refuses.
func appendBinaryDate(dst []byte, v []byte) ([]byte, error) {
	if len(v) != 4 {
		return dst, fmt.Errorf("bad binary date of %d bytes", len(v))
	}
	days := int64(int32(binary.BigEndian.Uint32(v)))
	switch {
	case days == math.MaxInt32:
		return dst, fmt.Errorf("bad date %q", "infinity")
	case days == math.MinInt32:
		return dst, fmt.Errorf("bad date %q", "-infinity")
	}
	days += pgEpochMicros / 86400e6
	if days < minYearDays || days >= endYearDays {
		return dst, fmt.Errorf("bad date: %d days from 1970-01-01 is outside the years 1-9999", days)
	}
	y, m, d := fixture.CivilDate(days)
	return fixture.AppendDate(dst, y, m, d), nil
}

// appendBinaryUUID appends 16 bytes as a lowercase hyphenated UUID string.
func appendBinaryUUID(dst []byte, v []byte) ([]byte, error) {
	if len(v) != 16 {
		return dst, fmt.Errorf("bad binary UUID of %d bytes", len(v))
	}
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i, c := range v {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return append(dst, '"'), nil
}

// decodeInterval decodes a binary interval into whole days and 0 <= us < one day more, as
// parseIntervalDays reads its text in IntervalStyle postgres: the server writes months as
// years (12 months) and months, and a year counts 365 days, a month 30 (psycopg's rule, the
// same for negative months: -13 months is -395 days). The days cannot overflow: months and
// days are int32s, and the microseconds add at most 106,751,992 days.
func decodeInterval(v []byte) (days, us int64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("bad binary interval of %d bytes", len(v))
	}
	micros := int64(binary.BigEndian.Uint64(v[0:8]))
	days = int64(int32(binary.BigEndian.Uint32(v[8:12])))
	months := int64(int32(binary.BigEndian.Uint32(v[12:16])))
	days += months/12*365 + months%12*30 + micros/usDay
	us = micros % usDay
	if us < 0 {
		days--
		us += usDay
	}
	return days, us, nil
}

// appendJSONB appends a jsonb value in text format: as it is when jsonbPlain says the server's
// text is already what AppendJSON would write, else through AppendJSON.
func (p *exportPlan) appendJSONB(dst []byte, pk []byte, f *exportField, v []byte) ([]byte, error) {
	if jsonbPlain(v) {
		return append(dst, v...), nil
	}
	return p.appendPGText(dst, pk, f, v)
}

// jsonbPlain reports whether v, jsonb's text output, is byte for byte what AppendJSON writes
// for it. jsonb writes Python's separators (", " and ": "), each key once, strings escaped as
// json.dumps escapes them (\" \\ \b \f \n \r \t, other control characters as lowercase
// \u00XX, the rest raw) and integers as their digits. What differs, or might, is left to
// AppendJSON: a number with a fraction or an exponent (Python makes it a float), any other
// escape or byte outside strings, text that is not valid UTF-8.
func jsonbPlain(v []byte) bool {
	if !utf8.Valid(v) {
		return false
	}
	in := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			in = !in
		case in && c == '\\':
			n, ok := plainEscape(v[i+1:])
			if !ok {
				return false
			}
			i += n
		case in && c < 0x20:
			return false
		case in:
		case c >= '0' && c <= '9', c == '-', c == ',', c == ':', c == ' ', c == '{', c == '}', c == '[', c == ']':
		case c == 'e':
			if i > 0 && v[i-1] >= '0' && v[i-1] <= '9' { // an exponent, not true or false
				return false
			}
		case c == 't' || c == 'r' || c == 'u' || c == 'f' || c == 'a' || c == 'l' || c == 's' || c == 'n':
		default: // '.', 'E', NaN, Infinity, other whitespace, anything else
			return false
		}
	}
	return !in
}

// plainEscape checks the escape after a backslash in e, returning its length: one of json.dumps's
// own short escapes, or \u00XX for a control character json.dumps writes that way.
func plainEscape(e []byte) (int, bool) {
	if len(e) == 0 {
		return 0, false
	}
	switch e[0] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return 1, true
	case 'u':
		if len(e) < 5 || e[1] != '0' || e[2] != '0' || (e[3] != '0' && e[3] != '1') {
			return 0, false
		}
		x := e[4]
		switch {
		case x >= '0' && x <= '9', x >= 'a' && x <= 'f':
		default:
			return 0, false
		}
		if e[3] == '0' && (x == '8' || x == '9' || x == 'a' || x == 'c' || x == 'd') {
			return 0, false // \b \t \n \f \r have short forms
		}
		return 5, true
	}
	return 0, false
}
