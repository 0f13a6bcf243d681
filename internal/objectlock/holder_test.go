package objectlock

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// A lock object is written by whoever can write the bucket: whatever its body, the holder
// it names is shown printable and bounded.
func FuzzParseHolder(f *testing.F) {
	f.Add([]byte(`{"run":"20261205T033354-4239f5ab","host":"db1","pid":4242,"since":"2026-12-05T03:33:54Z","renewed":"2026-12-05T03:34:24.5Z"}`))
	f.Add([]byte(`{"run":"\u001b[31mred","host":"` + strings.Repeat("h", 500) + `"}`))
	f.Add([]byte(`{"run":"a\xffb"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHolder(data)
		if err != nil {
			if h != (Holder{}) {
				t.Fatalf("a body that does not parse names %+v", h)
			}
			return
		}
		s := h.String()
		if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
			t.Fatalf("holder shown with unprintable bytes: %q", s)
		}
		if len(s) > 2*4*(maxShown+10)+100 { // two fields, each at most four bytes a byte quoted
			t.Fatalf("holder shown in %d bytes", len(s))
		}
	})
}
