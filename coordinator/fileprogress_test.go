package coordinator

import (
	"slices"
	"sync"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/progress"
)

// recordProgress records every addition, by phase.
type recordProgress struct {
	mu   sync.Mutex
	adds map[string][]int64
}

func (r *recordProgress) Total(string, int64) {}

func (r *recordProgress) Add(phase string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.adds == nil {
		r.adds = map[string][]int64{}
	}
	r.adds[phase] = append(r.adds[phase], n)
}

func TestFileMeterCountsEachByteOnce(t *testing.T) {
	// Each step is a progress message (final false) or a final result (final true).
	type step struct {
		task  string
		bytes int64
		final bool
	}
	cases := []struct {
		name  string
		steps []step
		want  []int64 // the additions, in order
	}{
		{"messages then result", []step{{"a", 10, false}, {"a", 25, false}, {"a", 40, true}}, []int64{10, 15, 15}},
		{"every message lost", []step{{"a", 40, true}}, []int64{40}},
		{"out of order", []step{{"a", 25, false}, {"a", 10, false}, {"a", 40, true}}, []int64{25, 15}},
		{"duplicates", []step{{"a", 10, false}, {"a", 10, false}, {"a", 40, true}, {"a", 40, true}}, []int64{10, 30}},
		{"message after the result", []step{{"a", 10, false}, {"a", 40, true}, {"a", 30, false}, {"a", 50, false}}, []int64{10, 30}},
		{"all counted before the result", []step{{"a", 40, false}, {"a", 40, true}}, []int64{40}},
		{"counted past the result (a copy thrown away)", []step{{"a", 50, false}, {"a", 40, true}}, []int64{50}},
		{"tasks apart", []step{{"a", 10, false}, {"b", 5, false}, {"b", 7, true}, {"a", 12, false}, {"a", 20, true}}, []int64{10, 5, 2, 2, 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordProgress{}
			m := newFileMeter(rec)
			for _, s := range tc.steps {
				if s.final {
					m.finish(s.task, s.bytes)
				} else {
					m.seen(s.task, s.bytes)
				}
			}
			if got := rec.adds[progress.Files]; !slices.Equal(got, tc.want) {
				t.Fatalf("additions %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFileMeterIgnoresMessagesOnceClosed(t *testing.T) {
	rec := &recordProgress{}
	m := newFileMeter(rec)
	m.seen("a", 10)
	m.close()
	m.seen("a", 20)
	if got := rec.adds[progress.Files]; !slices.Equal(got, []int64{10}) {
		t.Fatalf("additions %v, want [10]", got)
	}
	var none *fileMeter // no Progress: nothing to do, nothing to fail
	none.seen("a", 1)
	none.finish("a", 1)
	none.close()
}
