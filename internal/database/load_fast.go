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
	at := len(buf)
	out, ok := fixture.AppendUnquoted(binary.BigEndian.AppendUint32(buf, 0), raw)
	if !ok {
		return buf[:at], false
	}
	body := out[at+4:]
	if bytes.IndexByte(body, 0) >= 0 ||
		oid == oidVarchar && f.MaxLength > 0 && len(body) > f.MaxLength && utf8.RuneCount(body) > f.MaxLength {
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
	t, err := parseDateTime(b)
	if err != nil {
		return buf, false
	}
	if zeroMillis(string(b)) {
		t = t.Add(time.Microsecond)
	}
	be := binary.BigEndian
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
	b, ok := plainString(raw)
	if !ok || len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return buf, false
	}
	var u [16]byte
	n := 0
	for i := 0; i < len(b); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		d, ok := hexDigit(b[i])
		if !ok {
			return buf, false
		}
		u[n/2] |= d << (4 * (1 - n%2))
		n++
	}
	return append(binary.BigEndian.AppendUint32(buf, 16), u[:]...), true
}

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
