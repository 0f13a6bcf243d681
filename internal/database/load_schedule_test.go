package database

import (
	"errors"
	"slices"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// Both forms PostgreSQL gives an index's table (regclass text for a constraint, qualified for
// an index) name one table, so a table's index builds are one step, never two that wait for
// each other's locks.
func TestIndexTable(t *testing.T) {
	tests := []struct{ def, want string }{
		{"ALTER TABLE books_changelog ADD CONSTRAINT books_changelog_pkey PRIMARY KEY (id)", "books_changelog"},
		{"CREATE INDEX books_changelog_user_id ON public.books_changelog USING btree (user_id)", "books_changelog"},
		{"CREATE UNIQUE INDEX x ON ONLY public.books_changelog USING btree (change_id)", "books_changelog"},
		{`ALTER TABLE other."odd.Table" ADD CONSTRAINT c UNIQUE (a)`, "odd.Table"},
		{`CREATE INDEX i ON "we""ird" USING btree (a)`, `we"ird`},
	}
	for _, tt := range tests {
		if got := indexTable(tt.def); got != tt.want {
			t.Errorf("indexTable(%q) = %q, want %q", tt.def, got, tt.want)
		}
	}
}

var errTest = errors.New("test failure")

// A parallel load hands out every copy first, largest first; a table's index builds only
// once the copy that fills it has committed, as one step whatever form its definitions take;
// and a failed step stops the queue.
func TestStepQueue(t *testing.T) {
	var plans []*loadPlan
	for _, label := range []string{"books.book", "books.chapter", "books.changelog"} {
		m, _ := platform.Default.Model(label)
		p, err := newLoadPlan(m)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	l := &parallelLoad{plans: plans, order: []int{2, 1, 0}, saved: parallelMarker{indexes: []string{
		"ALTER TABLE books_chapter ADD CONSTRAINT books_chapter_pkey PRIMARY KEY (id)",
		"CREATE INDEX books_chapter_book_id ON public.books_chapter USING btree (book_id)",
		"ALTER TABLE books_changelog ADD CONSTRAINT books_changelog_pkey PRIMARY KEY (id)",
		"CREATE INDEX elsewhere_x ON public.elsewhere USING btree (x)",
	}}}
	q := l.newStepQueue()
	var got []loadStep
	take := func() loadStep {
		t.Helper()
		s, ok := q.next()
		if !ok {
			t.Fatalf("no step after %v", got)
		}
		got = append(got, s)
		return s
	}
	cl, ch, bk := take(), take(), take()
	if cl.plan != 2 || ch.plan != 1 || bk.plan != 0 {
		t.Fatalf("copies in order %v, want changelog, chapter, book", got)
	}
	// Only the index builds of a table no copy fills are ready: chapter's wait for its copy.
	if s := take(); s.plan >= 0 || s.table != "elsewhere" {
		t.Fatalf("step %+v, want the index builds of elsewhere", s)
	}
	q.done(got[3], nil)
	q.done(ch, nil)
	if s := take(); s.table != "books_chapter" || !slices.Equal(l.indexDefs(s.table), l.saved.indexes[:2]) {
		t.Fatalf("step %+v (%v), want books_chapter's two definitions as one step", s, l.indexDefs(s.table))
	}
	q.done(got[4], nil)
	q.done(bk, nil)
	q.done(cl, errTest)
	if s, ok := q.next(); ok {
		t.Fatalf("step %+v after a failed one", s)
	}
	if q.err != errTest {
		t.Fatalf("queue error %v, want the failed step's", q.err)
	}
}
