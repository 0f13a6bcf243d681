package messages

import (
	"encoding/json"
	"strconv"
)

// A second backup of a large storage writes and reads a list line per file several times
// (key lists, sums, the file index). encoding/json spends most of that time in reflection,
// so the lines this package writes itself — printable ASCII strings, integer numbers, no
// spaces — are encoded and parsed here by hand, byte for byte as encoding/json does;
// anything else (an escape, a name that is not ASCII, an unknown field, spaces) goes
// through encoding/json, so what a line means never depends on which path read it.

// appendEntry appends e's wire form, as json.Marshal(e.wire()) writes it, to b.
func appendEntry(b []byte, e FileEntry) ([]byte, error) {
	if !plainASCII(e.Key, e.Path, e.Stored, e.SHA256, e.ETag, e.Reuse, e.Plain) {
		data, err := json.Marshal(e.wire())
		return append(b, data...), err
	}
	start := len(b)
	b = append(b, '{')
	b = appendField(b, start, "k", e.Key)
	b = appendField(b, start, "p", e.Path)
	b = appendField(b, start, "s", e.Stored)
	b = appendName(b, start, "n")
	b = strconv.AppendInt(b, e.Size, 10)
	b = appendField(b, start, "h", e.SHA256)
	if e.Mode != 0 {
		b = appendName(b, start, "m")
		b = strconv.AppendUint(b, uint64(e.Mode), 10)
	}
	if e.Changed {
		b = appendName(b, start, "changed")
		b = append(b, "true"...)
	}
	if e.ModTime != 0 {
		b = appendName(b, start, "t")
		b = strconv.AppendInt(b, e.ModTime, 10)
	}
	b = appendField(b, start, "e", e.ETag)
	b = appendField(b, start, "r", e.Reuse)
	b = appendField(b, start, "ph", e.Plain)
	return append(b, '}'), nil
}

// entrySize is about the length of e's wire form, so that it is built in one allocation.
func entrySize(e FileEntry) int {
	return len(e.Key) + len(e.Path) + len(e.Stored) + len(e.SHA256) + len(e.ETag) + len(e.Reuse) + len(e.Plain) + 96
}

// appendName appends `"name":`, after a comma unless it is the object's first field (the
// object started at b[start]).
func appendName(b []byte, start int, name string) []byte {
	if len(b) > start+1 {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendField appends a string field, unless it is empty (omitempty).
func appendField(b []byte, start int, name, v string) []byte {
	if v == "" {
		return b
	}
	b = appendName(b, start, name)
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// plainASCII tells whether every string is printable ASCII that json.Marshal writes as it
// is: no quote, backslash, or <, > and & (which it escapes for HTML).
func plainASCII(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
	}
	return true
}

// parseEntry reads one line of a list into e: by hand when it is in the form appendEntry
// writes, else through encoding/json (which then decides, errors included).
func parseEntry(line []byte, e *FileEntry) error {
	if j, ok := parseFast(line); ok {
		*e = j.entry()
		return nil
	}
	var j fileEntryJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return err
	}
	*e = j.entry()
	return nil
}

// parseFast parses {"name":value,...} with printable ASCII strings without escapes, integers
// and booleans, each name a field of the wire form at most once; ok is false for anything
// else.
func parseFast(b []byte) (j fileEntryJSON, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return j, false
	}
	b = b[1 : len(b)-1]
	var seen uint32
	for len(b) > 0 {
		name, rest, ok := fastString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return j, false
		}
		var bit uint32
		if bit, b, ok = fastField(&j, name, rest[1:]); !ok || seen&bit != 0 {
			return j, false
		}
		seen |= bit
		if len(b) > 0 {
			if b[0] != ',' || len(b) == 1 {
				return j, false
			}
			b = b[1:]
		}
	}
	return j, true
}

// fastString reads a JSON string of plain printable ASCII at the start of b.
func fastString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return string(b[1:i]), b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", nil, false
		}
	}
	return "", nil, false
}

// fastInt reads an integer at the start of b, in JSON's form (no leading zeros or plus);
// unsigned refuses a sign.
func fastInt(b []byte, bits int, unsigned bool) (n int64, u uint64, rest []byte, ok bool) {
	i := 0
	if i < len(b) && b[i] == '-' && !unsigned {
		i++
	}
	d := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == d || (b[d] == '0' && i > d+1) || (i < len(b) && b[i] != ',') {
		return 0, 0, nil, false
	}
	var err error
	if unsigned {
		u, err = strconv.ParseUint(string(b[:i]), 10, bits)
	} else {
		n, err = strconv.ParseInt(string(b[:i]), 10, bits)
	}
	return n, u, b[i:], err == nil
}

// fastField reads the value of field name into j; bit is the field's bit in the set of
// fields seen.
func fastField(j *fileEntryJSON, name string, b []byte) (bit uint32, rest []byte, ok bool) {
	var dst *string
	switch name {
	case "k":
		dst, bit = &j.Key, 1<<0
	case "p":
		dst, bit = &j.Path, 1<<1
	case "s":
		dst, bit = &j.Stored, 1<<2
	case "h":
		dst, bit = &j.SHA256, 1<<3
	case "e":
		dst, bit = &j.ETag, 1<<4
	case "r":
		dst, bit = &j.Reuse, 1<<5
	case "ph":
		dst, bit = &j.Plain, 1<<6
	case "n":
		j.Size, _, rest, ok = fastInt(b, 64, false)
		return 1 << 8, rest, ok
	case "t":
		j.ModTime, _, rest, ok = fastInt(b, 64, false)
		return 1 << 9, rest, ok
	case "m":
		var u uint64
		_, u, rest, ok = fastInt(b, 32, true)
		j.Mode = uint32(u)
		return 1 << 10, rest, ok
	case "changed":
		for _, lit := range []string{"true", "false"} {
			if len(b) >= len(lit) && string(b[:len(lit)]) == lit && (len(b) == len(lit) || b[len(lit)] == ',') {
				j.Changed = lit == "true"
				return 1 << 11, b[len(lit):], true
			}
		}
		return 0, nil, false
	default:
		return 0, nil, false
	}
	*dst, rest, ok = fastString(b)
	if ok && len(rest) > 0 && rest[0] != ',' {
		ok = false
	}
	return bit, rest, ok
}
