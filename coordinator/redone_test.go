package coordinator

import (
	"testing"

	"github.com/webnovel/webnovel-backup/messages"
)

// The staging area is searched for a dead worker's temporary files only when some task's
// final result is from a later attempt than the first.
func TestRedone(t *testing.T) {
	for _, c := range []struct {
		name     string
		attempts []int
		want     bool
	}{
		{"no tasks", nil, false},
		{"every task done at once", []int{1, 1, 1}, false},
		{"one task redelivered", []int{1, 2, 1}, true},
		{"attempt unknown", []int{1, 0}, true},
	} {
		results := map[string]*messages.Result{}
		for i, a := range c.attempts {
			results[string(rune('a'+i))] = &messages.Result{Attempt: a}
		}
		if got := redone(results); got != c.want {
			t.Errorf("%s: redone = %v, want %v", c.name, got, c.want)
		}
	}
}
