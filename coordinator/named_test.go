package coordinator

import (
	"fmt"
	"testing"
)

func TestNameSome(t *testing.T) {
	many := make([]string, 25)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tt := range []struct {
		items []string
		total int
		want  string
	}{
		{[]string{"a", "b"}, 2, "a, b"},
		{[]string{"a", "b"}, 5, "a, b, … and 3 more"}, // the caller kept only the first
		{many, 25, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, … and 5 more"},
	} {
		if got := nameSome(tt.items, tt.total, ", "); got != tt.want {
			t.Errorf("nameSome(%d items, %d) = %q, want %q", len(tt.items), tt.total, got, tt.want)
		}
	}
}
