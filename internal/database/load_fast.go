package database

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// Most fixture values are in one plain form: an integer of a few digits, a string without
// exotic escapes, a datetime as Django writes it, true, false, null. encodeFast writes such an
// object's tuple straight from the JSON into the COPY buffer, skipping the engine-neutral
// values (a boxed value, and for a string a copy, per field) that the general path builds:
// that was a good part of a load's client CPU. Anything else — another field order, a
// missing field, a value in another form or one that fails a check — makes it report false,
// and the general path encodes the object again, with its checks and its error messages.

// encodeFast appends obj's tuple to buf and fills row's pk and many-to-many lists; false (buf
// unchanged up to its length) when the object needs the general path.
func (s *pgRowSource) encodeFast(obj *fixture.Object, row *loadRow, buf []byte) ([]byte, bool) {
	p := s.p
	if obj.Model != p.m.Label {
		return buf, false
	}
	pk, ok := plainInt(obj.PK)
	if !ok {
		return buf, false
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(p.cols)))
	if buf, ok = appendPlainInt(buf, s.cols.oids[0], pk); !ok {
		return buf, false
	}
	clear(row.seen)
	col := 1
	for k, fv := range obj.Fields {
		i, found := row.lookup(p, k, fv.Name)
		switch {
		case !found:
			return buf, false
		case i < 0:
			j := -i - 1
			m2m, err := decodePKList(fv.Value, row.m2m[j][:0])
			if err != nil {
				return buf, false
			}
			row.m2m[j], row.seen[j] = m2m, true
			continue
		case i+1 != col:
			return buf, false
		}
		if buf, ok = appendPlainValue(buf, &p.fields[i], s.cols.oids[col], fv.Value); !ok {
			return buf, false
		}
		col++
	}
	row.pk = pk
	return buf, col == len(p.cols)
}

// appendPlainValue appends raw, a value of field f for a column of type oid, when it is in a
// plain form; else false.
func appendPlainValue(buf []byte, f *loadField, oid uint32, raw []byte) ([]byte, bool) {
	be := binary.BigEndian
	if len(raw) == 0 {
		return buf, false
	}
	if raw[0] == 'n' {
		if f.Null && string(raw) == "null" {
			return be.AppendUint32(buf, 0xffffffff), true
		}
		return buf, false
	}
	switch f.kind {
	case kindInt:
		n, ok := plainInt(raw)
		if !ok || n < 0 && strings.HasPrefix(f.Type, "Positive") {
			return buf, false
		}
		return appendPlainInt(buf, oid, n)
	case kindText:
		if raw[0] == '"' && (oid == oidText || oid == oidVarchar) {
			return appendPlainText(buf, f, oid, raw)
		}
	case kindDateTime:
		if oid == oidTimestamptz {
			return appendPlainDateTime(buf, raw)
		}
	case kindJSON:
		if oid == oidJSONB || oid == oidJSON {
			return appendPlainJSON(buf, oid, raw)
		}
	case kindUUID:
		if oid == oidUUID {
			return appendPlainUUID(buf, raw)
		}
	case kindDate:
		if oid == oidDate {
			return appendPlainDate(buf, raw)
		}
	case kindDuration:
		if oid == oidInterval {
			return appendPlainDuration(buf, raw)
		}
	case kindBool:
		if oid == oidBool && (string(raw) == "true" || string(raw) == "false") {
			b := byte(0)
			if raw[0] == 't' {
				b = 1
			}
			return append(be.AppendUint32(buf, 1), b), true
		}
	}
	return buf, false
}

// appendPlainInt appends n for an integer column of type oid, when it is in the type's range.
func appendPlainInt(buf []byte, oid uint32, n int64) ([]byte, bool) {
	be := binary.BigEndian
	switch {
	case oid == oidInt8:
		return be.AppendUint64(be.AppendUint32(buf, 8), uint64(n)), true
	case oid == oidInt4 && n >= math.MinInt32 && n <= math.MaxInt32:
		return be.AppendUint32(be.AppendUint32(buf, 4), uint32(int32(n))), true
	case oid == oidInt2 && n >= math.MinInt16 && n <= math.MaxInt16:
		return be.AppendUint16(be.AppendUint32(buf, 2), uint16(int16(n))), true
	}
	return buf, false
}

// appendPlainText unquotes a JSON string straight into buf, with the checks pgCheckValue makes
// (no NUL, max_length in characters for varchar).
func appendPlainText(buf []byte, f *loadField, oid uint32, raw []byte) ([]byte, bool) {
	tooLong := func(body []byte) bool {
		return oid == oidVarchar && f.MaxLength > 0 && len(body) > f.MaxLength && utf8.RuneCount(body) > f.MaxLength
	}
	// Most strings have no escape: their body is the text (and holds no NUL), copied as it
	// is after one scan.
	if body, ok := fixture.PlainBody(raw); ok {
		if tooLong(body) {
			return buf, false
		}
		return append(binary.BigEndian.AppendUint32(buf, uint32(len(body))), body...), true
	}
	at := len(buf)
	out, ok := fixture.AppendUnquoted(binary.BigEndian.AppendUint32(buf, 0), raw)
	if !ok {
		return buf[:at], false
	}
	body := out[at+4:]
	if bytes.IndexByte(body, 0) >= 0 || tooLong(body) {
		return out[:at], false
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(body)))
	return out, true
}

// appendPlainDateTime appends a datetime written as Django writes it, read as decodeDateTime
// reads it.
func appendPlainDateTime(buf []byte, raw []byte) ([]byte, bool) {
	b, ok := plainString(raw)
	if !ok || len(b) == 0 || b[0] == ' ' || b[len(b)-1] == ' ' {
		return buf, false
	}
	be := binary.BigEndian
	if us, ok := djangoDateTime(b); ok {
		return be.AppendUint64(be.AppendUint32(buf, 8), uint64(us-pgEpoch)), true
	}
	t, err := parseDateTime(b)
	if err != nil {
		return buf, false
	}
	if zeroMillis(string(b)) {
		t = t.Add(time.Microsecond)
	}
	return be.AppendUint64(be.AppendUint32(buf, 8), uint64(t.UnixMicro()-pgEpoch)), true
}

// appendPlainJSON re-encodes a JSON value as Django writes it (decodeValue's form) straight
// into buf: jsonb's binary form is a version byte, then the text.
func appendPlainJSON(buf []byte, oid uint32, raw []byte) ([]byte, bool) {
	at := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	if oid == oidJSONB {
		buf = append(buf, 1)
	}
	out, err := fixture.AppendJSON(buf, raw)
	if err != nil {
		return buf[:at], false
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	return out, true
}

// appendPlainUUID appends a UUID written in its 36-character form (either case) as its 16
// bytes; other forms Django accepts take the general path.
func appendPlainUUID(buf []byte, raw []byte) ([]byte, bool) {
	// The literal itself, quotes included: 36 characters and no escape (a backslash is not
	// a hex digit) need no unquoting.
	if len(raw) != 38 || raw[0] != '"' || raw[37] != '"' {
		return buf, false
	}
	b := raw[1:37]
	if b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return buf, false
	}
	var u [16]byte
	bad := byte(0)
	for k, i := range uuidHexAt {
		hi, lo := hexValue[b[i]], hexValue[b[i+1]]
		bad |= hi | lo
		u[k] = hi<<4 | lo&0x0f
	}
	if bad&0xf0 != 0 {
		return buf, false
	}
	return append(binary.BigEndian.AppendUint32(buf, 16), u[:]...), true
}

// uuidHexAt is where each byte's two hex digits start in a UUID's 36-character form.
var uuidHexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// hexValue is a byte's value as a hex digit (either case), 0xff when it is not one.
var hexValue = func() (t [256]byte) {
	for c := range t {
		d, ok := hexDigit(byte(c))
		if !ok {
			d = 0xff
		}
		t[c] = d
	}
	return t
}()

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// djangoDateTime reads the datetimes Django writes, YYYY-MM-DD[T ]HH:MM:SS[.f…][Z], into Unix
// microseconds as parseDateTime and decodeDateTime do (".000" is 1 µs), without time.Time:
// three of them a row made time.Date a tenth of a load's client CPU. False for any other
// form (offsets, no seconds, out-of-range fields), which parseDateTime then reads.
func djangoDateTime(b []byte) (int64, bool) {
	if len(b) < 19 || b[13] != ':' || b[16] != ':' || b[10] != 'T' && b[10] != ' ' {
		return 0, false
	}
	days, ok := civilDays(b[:10])
	hour, ok1 := digits2(b[11:13])
	min, ok2 := digits2(b[14:16])
	sec, ok3 := digits2(b[17:19])
	if !ok || !ok1 || !ok2 || !ok3 || hour > 23 || min > 59 || sec > 59 {
		return 0, false
	}
	rest := b[19:]
	var us int64
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		for i < len(rest) && isDigitByte(rest[i]) {
			i++
		}
		frac := rest[1:i]
		if len(frac) == 0 || len(frac) > 12 {
			return 0, false
		}
		for k := range 6 {
			us *= 10
			if k < len(frac) {
				us += int64(frac[k] - '0')
			}
		}
		rest = rest[i:]
	}
	if len(rest) > 1 || len(rest) == 1 && rest[0] != 'Z' {
		return 0, false
	}
	if zeroMillis(string(b)) { // no allocation: the conversion does not escape
		us++
	}
	return ((days*24+int64(hour))*60+int64(min))*60*usSecond + int64(sec)*usSecond + us, true
}

// civilDays reads a date written YYYY-MM-DD into days since 1970-01-01, refusing a day the
// month lacks (Feb 30), as parseDateTime and parseDate do (Howard Hinnant's days-from-civil).
func civilDays(b []byte) (int64, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y1, ok1 := digits2(b[0:2])
	y2, ok2 := digits2(b[2:4])
	m, ok3 := digits2(b[5:7])
	d, ok4 := digits2(b[8:10])
	y := y1*100 + y2
	if !ok1 || !ok2 || !ok3 || !ok4 || m < 1 || m > 12 || d < 1 || d > monthDays(y, m) {
		return 0, false
	}
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := yy
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := yy - era*400                    // [0, 399]
	mp := int64((m + 9) % 12)              // month from March, [0, 11]
	doy := (153*mp+2)/5 + int64(d) - 1     // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return era*146097 + doe - 719468, true
}

// monthDays is the number of days of month m (1-12) of year y, proleptic Gregorian.
func monthDays(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// digits2 reads two decimal digits.
func digits2(b []byte) (int, bool) {
	if !isDigitByte(b[0]) || !isDigitByte(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }

// appendPlainDate appends a date written YYYY-MM-DD as PostgreSQL's binary date, days since
// 2000-01-01, as pgx encodes the time.Time decodeValue makes of it; other forms parseDate
// reads take the general path.
func appendPlainDate(buf []byte, raw []byte) ([]byte, bool) {
	b, ok := plainString(raw)
	if !ok {
		return buf, false
	}
	days, ok := civilDays(b)
	if !ok {
		return buf, false
	}
	const pgEpochDays = 10957 // 2000-01-01
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(buf, 4), uint32(int32(days-pgEpochDays))), true
}

// appendPlainDuration appends a duration written as Django writes it, "[D ]HH:MM:SS[.ffffff]"
// (D negative for a negative duration, of at most 6 digits here), as PostgreSQL's binary
// interval of that many microseconds, as the general path (parseStandardDuration, then pgx)
// does; other forms take the general path.
func appendPlainDuration(buf []byte, raw []byte) ([]byte, bool) {
	b, ok := plainString(raw)
	if !ok {
		return buf, false
	}
	var days int64
	if sp := bytes.IndexByte(b, ' '); sp >= 0 {
		d, neg := b[:sp], false
		if len(d) > 0 && d[0] == '-' {
			d, neg = d[1:], true
		}
		if len(d) == 0 || len(d) > 6 {
			return buf, false
		}
		for _, c := range d {
			if !isDigitByte(c) {
				return buf, false
			}
			days = days*10 + int64(c-'0')
		}
		if neg {
			days = -days
		}
		b = b[sp+1:]
	}
	if len(b) != 8 && (len(b) != 15 || b[8] != '.') || b[2] != ':' || b[5] != ':' {
		return buf, false
	}
	h, ok1 := digits2(b[0:2])
	m, ok2 := digits2(b[3:5])
	s, ok3 := digits2(b[6:8])
	if !ok1 || !ok2 || !ok3 {
		return buf, false
	}
	var us int64
	for _, c := range b[min(len(b), 9):] {
		if !isDigitByte(c) {
			return buf, false
		}
		us = us*10 + int64(c-'0')
	}
	us += int64(h)*usHour + int64(m)*usMinute + int64(s)*usSecond + days*usDay
	be := binary.BigEndian
	buf = be.AppendUint64(be.AppendUint32(buf, 16), uint64(us))
	return be.AppendUint64(buf, 0), true // days and months: 0
}
