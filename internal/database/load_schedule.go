package database

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A parallel load's steps share its connections, as pg_restore -j shares its workers: a
// table's indexes are built as soon as its rows are committed, and a table's foreign keys are
// added back as soon as it and the tables they point at are loaded and indexed, on whichever
// connection is free. Without that, a connection that finished its copies early sat idle
// while the other one copied the last table, the index builds of the largest tables waited
// for the smallest copy, and every foreign key for the last index.

// Kinds of step.
const (
	stepCopy  = iota // copy one model's fixture
	stepIndex        // build one table's indexes
	stepFK           // add back the foreign keys of one (referencing) table
)

// loadStep is one unit of a parallel load's work.
type loadStep struct {
	kind  int
	plan  int      // stepCopy: the plan
	table string   // stepIndex, stepFK: the table, unqualified
	defs  []string // stepIndex: the definitions, run one after the other
	then  []string // stepIndex: the definitions that wait for these (one step each)
}

// stepQueue hands out steps to the load's connections: copies largest first, then the index
// builds of tables whose rows are committed, then the foreign keys whose tables are loaded
// and indexed. Its methods are safe for concurrent use.
type stepQueue struct {
	mu      sync.Mutex
	wake    *sync.Cond
	copies  []int               // plan indexes not started, largest first
	waiting map[int][]loadStep  // plan index → index builds that wait for its copy
	ready   []loadStep          // index builds that can start, largest table first
	indexes map[string]int      // table → its index builds not yet done
	filled  map[int][]string    // plan index → the tables its copy fills
	loading map[string]bool     // tables not yet loaded and indexed
	fkWait  map[string][]string // referencing table → the tables its foreign keys need
	fkReady []string            // tables whose foreign keys can be added
	running int                 // steps under way
	err     error               // the first step that failed: no new step starts
	rank    func(string) int    // a table's place, largest first
}

// newStepQueue plans the load's steps: every copy; the index builds of each table with saved
// index definitions, held until the copy that fills the table is committed; the foreign keys
// of each table, held until it and the tables they point at are loaded and indexed.
func (l *parallelLoad) newStepQueue() *stepQueue {
	q := &stepQueue{copies: slices.Clone(l.order), waiting: map[int][]loadStep{}, filled: map[int][]string{},
		loading: map[string]bool{}, indexes: map[string]int{}, fkWait: map[string][]string{}, rank: l.rank}
	q.wake = sync.NewCond(&q.mu)
	owner := map[string]int{}
	for i, p := range l.plans {
		q.filled[i] = append(q.filled[i], p.m.Table)
		for _, f := range p.m2m {
			q.filled[i] = append(q.filled[i], f.ThroughTable)
		}
		for _, t := range q.filled[i] {
			owner[t], q.loading[t] = i, true
		}
	}
	for _, t := range l.indexTables() {
		steps := l.indexSteps(t)
		q.indexes[t] = len(steps)
		if len(steps) > 0 && len(steps[0].then) > 0 {
			q.indexes[t] += len(steps[0].then)
		}
		if i, ok := owner[t]; ok {
			q.waiting[i] = append(q.waiting[i], steps...)
		} else {
			q.ready = append(q.ready, steps...) // a table this load does not fill
			q.loading[t] = true                 // its foreign keys wait for its indexes
		}
	}
	for _, fk := range l.saved.fks {
		t := unqualified(fk.table)
		needs := []string{t}
		if r, ok := referencedTable(fk.def); ok {
			needs = append(needs, r)
		} else {
			needs = slices.Collect(maps.Keys(q.loading)) // unknown: wait for every table
		}
		q.fkWait[t] = append(q.fkWait[t], needs...)
	}
	q.sortReady()
	q.promote()
	return q
}

// next waits for a step to run; false when there is none left or a step failed.
func (q *stepQueue) next() (loadStep, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		var s loadStep
		switch {
		case q.err != nil:
			return s, false
		case len(q.copies) > 0:
			s, q.copies = loadStep{kind: stepCopy, plan: q.copies[0]}, q.copies[1:]
		case len(q.ready) > 0:
			s, q.ready = q.ready[0], q.ready[1:]
		case len(q.fkReady) > 0:
			s, q.fkReady = loadStep{kind: stepFK, table: q.fkReady[0]}, q.fkReady[1:]
		case q.running == 0 && len(q.fkWait) > 0:
			q.err = fmt.Errorf("load: the foreign keys of %v wait for tables that are not loaded", slices.Collect(maps.Keys(q.fkWait)))
			return s, false
		case q.running == 0:
			return s, false
		default:
			q.wake.Wait() // a step under way can make others ready
			continue
		}
		q.running++
		return s, true
	}
}

// done records a finished step: a committed copy makes its tables' index builds ready (a
// table without indexes is then loaded), a table's index builds make it loaded, and the
// foreign keys whose tables are all loaded become ready.
func (q *stepQueue) done(s loadStep, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running--
	if err != nil && q.err == nil {
		q.err = err
	}
	if err == nil {
		switch s.kind {
		case stepCopy:
			for _, t := range q.filled[s.plan] {
				if q.indexes[t] == 0 {
					delete(q.loading, t)
				}
			}
			q.ready = append(q.ready, q.waiting[s.plan]...)
			delete(q.waiting, s.plan)
			q.sortReady()
		case stepIndex:
			for _, def := range s.then {
				q.ready = append(q.ready, loadStep{kind: stepIndex, table: s.table, defs: []string{def}})
			}
			q.sortReady()
			if q.indexes[s.table]--; q.indexes[s.table] == 0 {
				delete(q.loading, s.table)
			}
		}
		q.promote()
	}
	q.wake.Broadcast()
}

// promote makes ready the foreign keys whose tables are all loaded and indexed.
func (q *stepQueue) promote() {
	for t, needs := range q.fkWait {
		if !slices.ContainsFunc(needs, func(n string) bool { return q.loading[n] }) {
			q.fkReady = append(q.fkReady, t)
			delete(q.fkWait, t)
		}
	}
	slices.SortStableFunc(q.fkReady, func(a, b string) int { return q.rank(a) - q.rank(b) })
}

func (q *stepQueue) sortReady() {
	slices.SortStableFunc(q.ready, func(a, b loadStep) int { return q.rank(a.table) - q.rank(b.table) })
}

// referencedTable is the table a foreign key definition points at, unqualified:
// "FOREIGN KEY (a) REFERENCES t(id) ...".
func referencedTable(def string) (string, bool) {
	_, rest, ok := strings.Cut(def, " REFERENCES ")
	if !ok {
		return "", false
	}
	quoted := false
	for i := 0; i < len(rest); i++ {
		switch {
		case rest[i] == '"':
			quoted = !quoted
		case rest[i] == '(' && !quoted:
			return unqualified(rest[:i]), i > 0
		}
	}
	return "", false
}

// copyAndIndex runs every copy and index build over jobs connections, and returns the
// loaded models.
func (l *parallelLoad) copyAndIndex(ctx context.Context, fixtures []LoadFixture) ([]LoadedModel, error) {
	out := make([]LoadedModel, len(l.plans))
	q := l.newStepQueue()
	var wg sync.WaitGroup
	for range l.jobs {
		wg.Go(func() {
			for {
				s, ok := q.next()
				if !ok {
					return
				}
				q.done(s, l.runStep(ctx, s, fixtures, out))
			}
		})
	}
	wg.Wait()
	return out, q.err
}

// runStep runs one step, on a connection of its own.
func (l *parallelLoad) runStep(ctx context.Context, s loadStep, fixtures []LoadFixture, out []LoadedModel) error {
	start := time.Now()
	switch s.kind {
	case stepIndex:
		err := l.withConn(ctx, func(conn *pgxpool.Conn) error { return l.buildIndexes(ctx, conn, s.defs) })
		slog.Debug("load phase", "phase", "indexes of "+s.table, "took", time.Since(start))
		return err
	case stepFK:
		err := l.withConn(ctx, func(conn *pgxpool.Conn) error { return l.addTableForeignKeys(ctx, conn, s.table) })
		slog.Debug("load phase", "phase", "foreign keys of "+s.table, "took", time.Since(start))
		return err
	}
	n, err := l.copyModel(ctx, fixtures[s.plan], s.plan)
	if err != nil {
		return err
	}
	label := l.plans[s.plan].m.Label
	out[s.plan] = LoadedModel{Label: label, Rows: n}
	slog.Debug("load phase", "phase", "copy "+label, "took", time.Since(start))
	if parallelHook != nil {
		return parallelHook(label)
	}
	return nil
}

// buildIndexes runs index definitions, in one round trip.
func (l *parallelLoad) buildIndexes(ctx context.Context, conn *pgxpool.Conn, defs []string) error {
	if i, err := execAll(ctx, conn.Conn().PgConn(), defs); err != nil {
		return l.names.wrap("", "rebuild index ("+statementOf(defs, i)+")", err)
	}
	return nil
}

// indexTables are the tables with saved index definitions, in the order of the definitions.
func (l *parallelLoad) indexTables() []string {
	var out []string
	for _, def := range l.saved.indexes {
		if t := indexTable(def); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// indexSteps are the index builds of table as steps. Its primary-key and unique constraints
// (ALTER TABLE ... ADD CONSTRAINT: a lock that excludes every other statement on the table)
// are one step; its other indexes (CREATE INDEX: a lock that admits other index builds) wait
// for that step and are then one step each, so a large table's indexes are built on several
// connections at once, as pg_restore -j builds them.
func (l *parallelLoad) indexSteps(table string) []loadStep {
	var cons, plain []string
	for _, def := range l.saved.indexes {
		switch {
		case indexTable(def) != table:
		case strings.HasPrefix(def, "ALTER TABLE "):
			cons = append(cons, def)
		default:
			plain = append(plain, def)
		}
	}
	if len(cons) > 0 {
		return []loadStep{{kind: stepIndex, table: table, defs: cons, then: plain}}
	}
	var out []loadStep
	for _, def := range plain {
		out = append(out, loadStep{kind: stepIndex, table: table, defs: []string{def}})
	}
	return out
}

// withConn runs do on a connection of the pool.
func (l *parallelLoad) withConn(ctx context.Context, do func(*pgxpool.Conn) error) error {
	conn, err := l.db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer conn.Release()
	return do(conn)
}

// addTableForeignKeys adds back the saved foreign keys of one referencing table NOT VALID (no
// scan, a short lock), a statement each, then validates them (a scan under a lock that lets
// the referenced table be read and the other tables' keys be validated) in one round trip.
func (l *parallelLoad) addTableForeignKeys(ctx context.Context, conn *pgxpool.Conn, table string) error {
	var fks []foreignKey
	for _, fk := range l.saved.fks {
		if unqualified(fk.table) == table {
			fks = append(fks, fk)
		}
	}
	var checks []string
	var checked []foreignKey
	for _, fk := range fks {
		def := fk.def
		if !strings.HasSuffix(def, "NOT VALID") {
			def += " NOT VALID"
			// (One that was NOT VALID was not validated before the restore either.)
			checks = append(checks, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", fk.table, quote(fk.name)))
			checked = append(checked, fk)
		}
		// A statement, and a transaction, each: adding a key locks the table it points at
		// against other additions, and two tables' additions batched in one transaction
		// each could take their referenced tables in opposite orders and deadlock.
		q := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", fk.table, quote(fk.name), def)
		if _, err := conn.Exec(ctx, q); err != nil {
			return l.names.wrap("", "add foreign key "+fk.name+" of "+fk.table, err)
		}
	}
	// The validations go in one round trip: they lock this table against one another (it is
	// this step's alone) and the referenced tables only against their rewriting.
	if i, err := execAll(ctx, conn.Conn().PgConn(), checks); err != nil {
		return l.names.wrap("", "check foreign key "+keyNames(checked, i)+" of "+table, err)
	}
	return nil
}

// keyNames is the name of fks[i], or all of them when i is -1.
func keyNames(fks []foreignKey, i int) string {
	names := make([]string, len(fks))
	for k, fk := range fks {
		names[k] = fk.name
	}
	return oneOrAll(names, i, ", ")
}
