package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names.
//
// A key is the bytes of a file's name, as the local file system holds them: anything but NUL,
// in any encoding, with backslashes, newlines and other control characters. A local folder
// stores every such key as it is. S3 keys must be UTF-8, and control characters do not
// survive the XML of S3's listings, so a backup written to S3 stores each file under
// EscapeKey of its key and records that in its metadata; a restore reverses it with
// UnescapeKey. The escaping is percent-encoding of exactly these bytes, as "%XX" with upper
// case hex digits:
//
//   - '%' itself (so that the escaping can be reversed),
//   - every byte that is not part of a valid UTF-8 sequence,
//   - the ASCII control characters 0x01–0x1F and 0x7F.
//
// Every other byte is kept, so a name that is plain UTF-8 without '%' or control characters
// is stored under its own name.

// EscapeKey returns key with '%', control characters and bytes that are not valid UTF-8
// percent-escaped: a valid UTF-8 key that UnescapeKey turns back into key.
func EscapeKey(key string) string {
	if !needsEscape(key) {
		return key
	}
	var b strings.Builder
	for i := 0; i < len(key); {
		r, size := utf8.DecodeRuneInString(key[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r == '%', r < 0x20, r == 0x7f:
			fmt.Fprintf(&b, "%%%02X", key[i])
			i++
		default:
			b.WriteString(key[i : i+size])
			i += size
		}
	}
	return b.String()
}

func needsEscape(key string) bool {
	if !utf8.ValidString(key) {
		return true
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '%' || c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// UnescapeKey reverses EscapeKey. A '%' not followed by two hex digits is an error naming the
// key: the name was not written by EscapeKey.
func UnescapeKey(key string) (string, error) {
	if !strings.Contains(key, "%") {
		return key, nil
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] != '%' {
			b.WriteByte(key[i])
			continue
		}
		if i+2 >= len(key) {
			return "", withCode(CodeInvalid, fmt.Errorf("escaped key %q: '%%' without two hex digits", key))
		}
		v, err := strconv.ParseUint(key[i+1:i+3], 16, 8)
		if err != nil {
			return "", withCode(CodeInvalid, fmt.Errorf("escaped key %q: '%%' without two hex digits", key))
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// QuoteKey shows a key in a message: as it is when it is printable UTF-8, else Go-quoted
// ("media/caf\xe9.png"), so that the bytes of any name can be read back from the message.
func QuoteKey(key string) string {
	if !needsEscape(key) && strings.IndexFunc(key, func(r rune) bool { return !strconv.IsPrint(r) }) < 0 {
		return key
	}
	return strconv.Quote(key)
}

// CheckKey refuses keys that could escape the bucket: empty, absolute, with empty, "." or ".."
// segments, or holding a NUL byte. Any other byte is a valid part of a name, on a local file
// system at least (see EscapeKey for S3).
func CheckKey(key string) error {
	if !cleanKey(key) {
		return withCode(CodeInvalid, fmt.Errorf("bad storage key %s", QuoteKey(key)))
	}
	return nil
}

// cleanKey tells whether key is a path that path.Clean leaves as it is, relative, without NUL
// bytes and without "." or ".." elements: one pass, no allocation (every file of a task is
// checked, twice).
func cleanKey(key string) bool {
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) {
			if c := key[i]; c == 0 {
				return false
			} else if c != '/' {
				continue
			}
		}
		if seg := key[start:i]; seg == "" || seg == "." || seg == ".." {
			return false // also a leading, trailing or doubled slash, and an empty key
		}
		start = i + 1
	}
	return true
}

// ErrNotRegular is returned (wrapped, in a *SpecialError) when a key names something that is
// not a regular file: a symlink, FIFO, socket or device.
var ErrNotRegular = errors.New("not a regular file")

// Special is an entry that is not a regular file or a folder: of a local folder, a symlink,
// FIFO, socket or device; of S3, a key no file can stand for. Walk skips it, WalkSpecial
// reports it. A link is never followed (it could point anywhere on the host).
type Special struct {
	Key string
	// Kind is "symlink", "fifo", "socket", "block device", "char device", "irregular" or
	// "temporary file" (a local folder's entries), "folder marker" or "unaddressable key"
	// (S3's).
	Kind string
	// Target is a symlink's target, as it is written in the link.
	Target string
	// Why says why the entry is not backed up, when it is not for being other than a regular
	// file (an S3 key).
	Why string
	// Mode is a folder's permissions (KindEmptyFolder, KindFolderPermissions), and OwnMode
	// says they differ from the storage folder's, with which a restore makes folders.
	Mode    fs.FileMode
	OwnMode bool
}

// Warning describes the skipped entry: "skipped symlink media/x -> ../y".
func (s Special) Warning() string {
	if s.Kind == KindFolderPermissions {
		return "permissions of folder " + QuoteKey(s.Key) + " not backed up: " + s.Why
	}
	kind := s.Kind
	if kind == "fifo" {
		kind = "FIFO"
	}
	msg := "skipped " + kind + " " + QuoteKey(s.Key)
	if s.Kind == "symlink" {
		msg += " -> " + QuoteKey(s.Target)
		if path.IsAbs(s.Target) || !fs.ValidPath(path.Join(path.Dir(s.Key), s.Target)) {
			msg += " (outside the storage)"
		}
	}
	why := "not a regular file"
	if s.Why != "" {
		why = s.Why
	}
	return msg + ": " + why + ", not backed up"
}

// KindOf names the kind of a non-regular file mode.
func KindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "char device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "folder"
	}
	return "irregular"
}

// SpecialError is an attempt to read something that is not a regular file.
type SpecialError struct{ Special }

func (e *SpecialError) Error() string {
	return fmt.Sprintf("%s is a %s, %v", QuoteKey(e.Key), e.Kind, ErrNotRegular)
}

// Unwrap makes the error match ErrNotRegular.
func (e *SpecialError) Unwrap() error { return ErrNotRegular }
