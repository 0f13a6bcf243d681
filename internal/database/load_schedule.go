package database

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A parallel load's copies and index builds share its connections, as pg_restore -j shares
// its workers: a table's indexes are built as soon as its rows are committed, on whichever
// connection is free, rather than after every copy. Without that, the connection that
// finished its copies early sat idle while the other one copied the last table, and the
// index builds of the largest tables all waited for the smallest copy.

// loadStep is one unit of a parallel load's work: a model's copy (plan >= 0) or the index
// builds of one table (plan < 0).
type loadStep struct {
	plan  int
	table string // the index builds' table (regclass text or quoted)
}

// stepQueue hands out steps to the load's connections: copies largest first, then the index
// builds of tables whose rows are committed, largest first. Its methods are safe for
// concurrent use.
type stepQueue struct {
	mu      sync.Mutex
	wake    *sync.Cond
	copies  []int            // plan indexes not started, largest first
	waiting map[int][]string // plan index → tables whose index builds wait for its copy
	ready   []string         // tables whose index builds can start, largest first
	running int              // steps under way
	err     error            // the first step that failed: no new step starts
	rank    func(string) int // a table's place, largest first
}

// newStepQueue plans the load's steps: every copy, and the index builds of each table with
// saved index definitions, held until the copy that fills the table is committed.
func (l *parallelLoad) newStepQueue() *stepQueue {
	q := &stepQueue{copies: slices.Clone(l.order), waiting: map[int][]string{}, rank: l.rank}
	q.wake = sync.NewCond(&q.mu)
	owner := map[string]int{}
	for i, p := range l.plans {
		owner[p.m.Table] = i
		for _, f := range p.m2m {
			owner[f.ThroughTable] = i
		}
	}
	seen := map[string]bool{}
	for _, def := range l.saved.indexes {
		t := indexTable(def)
		if seen[t] {
			continue
		}
		seen[t] = true
		if i, ok := owner[t]; ok {
			q.waiting[i] = append(q.waiting[i], t)
		} else {
			q.ready = append(q.ready, t) // a table this load does not fill
		}
	}
	q.sortReady()
	return q
}

// next waits for a step to run; false when there is none left or a step failed.
func (q *stepQueue) next() (loadStep, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.err != nil:
			return loadStep{}, false
		case len(q.copies) > 0:
			s := loadStep{plan: q.copies[0]}
			q.copies = q.copies[1:]
			q.running++
			return s, true
		case len(q.ready) > 0:
			s := loadStep{plan: -1, table: q.ready[0]}
			q.ready = q.ready[1:]
			q.running++
			return s, true
		case q.running == 0:
			return loadStep{}, false // a copy still running could make index builds ready
		}
		q.wake.Wait()
	}
}

// done records a finished step: a committed copy makes its tables' index builds ready.
func (q *stepQueue) done(s loadStep, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running--
	if err != nil && q.err == nil {
		q.err = err
	}
	if err == nil && s.plan >= 0 {
		q.ready = append(q.ready, q.waiting[s.plan]...)
		delete(q.waiting, s.plan)
		q.sortReady()
	}
	q.wake.Broadcast()
}

func (q *stepQueue) sortReady() {
	slices.SortStableFunc(q.ready, func(a, b string) int { return q.rank(a) - q.rank(b) })
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
	if s.plan < 0 {
		err := l.withConn(ctx, func(conn *pgxpool.Conn) error { return l.buildTableIndexes(ctx, conn, s.table) })
		slog.Debug("load phase", "phase", "indexes of "+s.table, "took", time.Since(start))
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

// buildTableIndexes runs a table's saved index definitions one after the other: statements
// on one table would wait for each other's locks.
func (l *parallelLoad) buildTableIndexes(ctx context.Context, conn *pgxpool.Conn, table string) error {
	for _, def := range l.indexDefs(table) {
		if _, err := conn.Exec(ctx, def); err != nil {
			return l.names.wrap("", "rebuild index ("+def+")", err)
		}
	}
	return nil
}

// indexDefs are the saved index definitions of table.
func (l *parallelLoad) indexDefs(table string) []string {
	var out []string
	for _, def := range l.saved.indexes {
		if indexTable(def) == table {
			out = append(out, def)
		}
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
