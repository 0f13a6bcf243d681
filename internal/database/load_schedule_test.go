package database

import (
	"context"
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
// a table's foreign keys only once it and the tables they point at are loaded and indexed;
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
	l := &parallelLoad{plans: plans, order: []int{2, 1, 0}, saved: parallelMarker{
		indexes: []string{
			"ALTER TABLE books_chapter ADD CONSTRAINT books_chapter_pkey PRIMARY KEY (id)",
			"CREATE INDEX books_chapter_book_id ON public.books_chapter USING btree (book_id)",
			"ALTER TABLE books_changelog ADD CONSTRAINT books_changelog_pkey PRIMARY KEY (id)",
			"CREATE INDEX elsewhere_x ON public.elsewhere USING btree (x)",
		},
		fks: []foreignKey{
			{table: "books_chapter", name: "to_book", def: "FOREIGN KEY (book_id) REFERENCES books_book(id) DEFERRABLE INITIALLY DEFERRED"},
			{table: "books_changelog", name: "to_chapter", def: "FOREIGN KEY (chapter_id) REFERENCES books_chapter(id)"},
			{table: "public.books_changelog", name: "to_user", def: `FOREIGN KEY (user_id) REFERENCES public."accounts_user"(id)`},
		},
	}}
	q := l.newStepQueue()
	var got []loadStep
	take := func(kind int, want string) loadStep {
		t.Helper()
		s, ok := q.next()
		if !ok || s.kind != kind || kind != stepCopy && s.table != want {
			t.Fatalf("step %+v (ok %v) after %+v, want kind %d %s", s, ok, got, kind, want)
		}
		got = append(got, s)
		return s
	}
	cl, ch, bk := take(stepCopy, ""), take(stepCopy, ""), take(stepCopy, "")
	if cl.plan != 2 || ch.plan != 1 || bk.plan != 0 {
		t.Fatalf("copies in order %+v, want changelog, chapter, book", got)
	}
	// Only the index builds of a table no copy fills are ready: chapter's wait for its copy.
	q.done(take(stepIndex, "elsewhere"), nil)
	q.done(ch, nil)
	// The constraint first, alone; the index after it, in a step of its own.
	chCons := take(stepIndex, "books_chapter")
	if !slices.Equal(chCons.defs, l.saved.indexes[:1]) {
		t.Fatalf("books_chapter's first index step runs %v, want its constraint", chCons.defs)
	}
	q.done(bk, nil) // book has no indexes: loaded once copied
	q.done(chCons, nil)
	chIdx := take(stepIndex, "books_chapter")
	if !slices.Equal(chIdx.defs, l.saved.indexes[1:2]) {
		t.Fatalf("books_chapter's second index step runs %v, want its index", chIdx.defs)
	}
	q.done(chIdx, nil)
	take(stepFK, "books_chapter") // chapter and book are loaded; changelog is not
	q.done(cl, nil)
	clIdx := take(stepIndex, "books_changelog")
	q.done(clIdx, nil)
	take(stepFK, "books_changelog") // both its keys, as one step
	q.done(got[len(got)-2], nil)
	q.done(got[len(got)-1], errTest)
	if s, ok := q.next(); ok {
		t.Fatalf("step %+v after every step was handed out", s)
	}
	if q.err != errTest {
		t.Fatalf("queue error %v, want the failed step's", q.err)
	}
}

// A failed step stops the queue: the steps it still holds are not handed out.
func TestStepQueueStopsAtFailure(t *testing.T) {
	m, _ := platform.Default.Model("books.book")
	p, err := newLoadPlan(m)
	if err != nil {
		t.Fatal(err)
	}
	l := &parallelLoad{plans: []*loadPlan{p, p}, order: []int{0, 1}}
	q := l.newStepQueue()
	s, ok := q.next()
	if !ok {
		t.Fatal("no first step")
	}
	q.done(s, errTest)
	if s, ok := q.next(); ok || q.err != errTest {
		t.Fatalf("step %+v (ok %v, err %v) after a failure", s, ok, q.err)
	}
}

// TestExecAll: statements run in one query; the index of the one that failed comes with its
// error, whether it failed before any result (DDL) or while sending rows; those before it are
// undone with it.
func TestExecAll(t *testing.T) {
	db := openT(t, samplePostgres(t))
	ctx := context.Background()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	ok := []string{"CREATE TABLE exec_a (x int)", "INSERT INTO exec_a VALUES (1), (0)"}
	if i, err := execAll(ctx, pg, ok); i != -1 || err != nil {
		t.Fatalf("execAll: %d, %v", i, err)
	}
	for _, tt := range []struct {
		name  string
		stmts []string
		want  int
	}{
		{"DDL", []string{"CREATE TABLE exec_b (x int)", "CREATE TABLE exec_a (x int)", "CREATE TABLE exec_c (x int)"}, 1},
		{"while sending rows", []string{"CREATE TABLE exec_b (x int)", "SELECT 1 / x FROM exec_a", "CREATE TABLE exec_c (x int)"}, 1},
		{"the first", []string{"SELECT * FROM exec_missing", "CREATE TABLE exec_b (x int)"}, 0},
	} {
		i, err := execAll(ctx, pg, tt.stmts)
		if err == nil || i != tt.want {
			t.Errorf("%s: statement %d, %v; want %d and its error", tt.name, i, err, tt.want)
		}
		var exists bool
		if err := db.pool.QueryRow(ctx, "SELECT to_regclass('exec_b') IS NOT NULL").Scan(&exists); err != nil || exists {
			t.Errorf("%s: exec_b exists %v (%v): the statements before the failure were not undone", tt.name, exists, err)
		}
	}
}
