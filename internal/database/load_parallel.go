package database

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// A parallel load (LoadOptions.Jobs > 1) fills empty tables over several connections, as
// pg_restore -j does: the foreign keys and indexes are dropped first (committed), each table
// is truncated and copied in a transaction of its own, largest first, and each table's indexes
// are built once its rows are committed, and its foreign keys added back once it and the
// tables they point at are indexed (see stepQueue). Between the first commit
// and the last, the database is half-restored; the marker table records what was dropped and
// which tables are being filled, so that a rerun empties those tables and finishes the job.
const markerTable = "wnb_parallel_restore"

// NotEmptyError refuses a parallel load into a table that holds rows: a parallel load
// commits table by table, so it could not put those rows back if it failed.
type NotEmptyError struct {
	Table string
	What  string // the model or many-to-many field the table holds
	Rows  int64
}

// Error names the table and its rows, and the mode that can replace them.
func (e *NotEmptyError) Error() string {
	return fmt.Sprintf("--jobs restores only into empty tables: %s (table %s) has %d rows; nothing was changed (without --jobs a restore replaces the rows in one transaction)",
		e.What, e.Table, e.Rows)
}

// OutcomeStatus classifies the refusal (exit 2).
func (e *NotEmptyError) OutcomeStatus() outcome.Status { return outcome.Refused }

// HalfRestoredError is a parallel load that failed after its first commit: some tables are
// loaded, others empty or missing their indexes and foreign keys.
type HalfRestoredError struct{ Err error }

// Error says what state the database is in and how to finish.
func (e *HalfRestoredError) Error() string {
	return fmt.Sprintf("the database is half-restored (a parallel restore commits table by table): %v; rerun the restore with --jobs: it empties the restored tables first and loads them again", e.Err)
}

// Unwrap returns the cause.
func (e *HalfRestoredError) Unwrap() error { return e.Err }

// pgQuerier is what the checks need of a transaction or a pool.
type pgQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// CheckParallelTarget refuses, before anything changes, a parallel load (--jobs) of models
// into tables that hold rows (a NotEmptyError naming one), unless an unfinished parallel load
// was filling them; the load checks again under its locks.
func (db *DB) CheckParallelTarget(ctx context.Context, models []platform.Model) error {
	if db.pool == nil {
		return outcome.NewUsage(errors.New("--jobs: a SQLite database is loaded on one connection; leave --jobs out"))
	}
	l := &parallelLoad{db: db}
	for _, m := range models {
		p, err := newLoadPlan(m)
		if err != nil {
			return fmt.Errorf("load %s: %w", m.Label, err)
		}
		l.plans = append(l.plans, p)
	}
	l.setTables()
	var err error
	if l.saved, err = readMarker(ctx, db.pool); err != nil {
		return err
	}
	return db.lockError(l.checkEmpty(ctx, db.pool), "check the target's tables", 0, loadTables(l.plans)...)
}

// setTables fills in the tables the load writes, and the names its errors use.
func (l *parallelLoad) setTables() {
	l.names = newTableNames(l.plans)
	for _, p := range l.plans {
		l.tables = append(l.tables, p.tables()...)
	}
}

// parallelHook, when set (tests), runs after each table's transaction commits; an error fails
// the load there, as a crash would.
var parallelHook func(label string) error

// prepareHook, when set (tests), runs once the preparation is done, before it waits for the
// check and commits.
var prepareHook func()

// parallelLoad is one parallel load in progress; its methods are the load's phases.
type parallelLoad struct {
	db       *DB
	plans    []*loadPlan
	colTypes []pgColumns
	jobs     int
	names    *tableNames
	tables   []string // quoted: the models' tables and their through tables
	order    []int    // plan indexes, largest fixture first
	saved    parallelMarker
	verified func() error // waits for the load's Verify (nil: none)
	// ahead holds the sources of the first copies, decoding while the preparation runs.
	ahead   map[int]*copySource
	aheadMu sync.Mutex
}

// firstErr returns the check's error when it failed, else err.
func firstErr(check, err error) error {
	if check != nil {
		return check
	}
	return err
}

// parallelMarker is what the marker table holds: the tables being filled (quoted), the
// index and constraint definitions to create again, and the foreign keys to add back.
type parallelMarker struct {
	tables  []string
	indexes []string
	fks     []foreignKey
}

// loadParallel is Load with Jobs > 1 (PostgreSQL only).
// verified waits for the load's Verify, which runs alongside everything before the
// preparation's commit: its error, when it fails, is the load's.
func (db *DB) loadParallel(ctx context.Context, fixtures []LoadFixture, plans []*loadPlan, jobs int, verified func() error) ([]LoadedModel, error) {
	if db.pool == nil {
		return nil, errors.New("load: --jobs needs PostgreSQL")
	}
	colTypes, err := db.planColumnTypes(ctx, plans)
	if err != nil {
		return nil, firstErr(verified(), err)
	}
	l := &parallelLoad{db: db, plans: plans, colTypes: colTypes, jobs: jobs, verified: verified}
	l.setTables()
	l.order = largestFirst(fixtures)
	start := time.Now()
	warmed := l.warmConns(ctx)
	defer func() { <-warmed }()
	l.decodeAhead(ctx, fixtures)
	defer l.closeAhead()
	if err := l.prepare(ctx); err != nil {
		return nil, firstErr(verified(), db.lockError(err, "load", 0, loadTables(plans)...))
	}
	slog.Debug("load phase", "phase", "prepare", "took", time.Since(start))
	out, err := l.copyAndIndex(ctx, fixtures)
	if err == nil {
		err = l.finish(ctx)
	}
	if err != nil {
		return nil, &HalfRestoredError{Err: db.lockError(err, "load", 0, loadTables(plans)...)}
	}
	return out, nil
}

// warmConns opens, while the preparation runs on its own connection, the other connections
// the jobs will copy on: the pool opens them lazily, and each one (a TLS attempt, then the
// server's fork and authentication) was otherwise waited for before the second table's COPY.
// A connection that fails to open here is left to the copy that needs it to report. The
// channel is closed once every connection is back in the pool.
func (l *parallelLoad) warmConns(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range l.jobs - 1 {
		wg.Go(func() {
			if conn, err := l.db.pool.Acquire(ctx); err == nil {
				conn.Release()
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// largestFirst orders the fixtures by weight, largest first, so that the longest copy starts
// first and the others fill the remaining connections around it.
func largestFirst(fixtures []LoadFixture) []int {
	order := make([]int, len(fixtures))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(fixtures[b].Weight, fixtures[a].Weight) })
	return order
}

// prepare checks that every table is empty (or was being filled by a parallel load that did
// not finish), drops the foreign keys and indexes, and records them in the marker table, all
// in one transaction: when it fails, nothing was changed.
func (l *parallelLoad) prepare(ctx context.Context) error {
	conn, err := l.db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("load: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	s, err := l.survey(ctx, tx)
	if err != nil {
		return err
	}
	if err := l.checkSurveyed(ctx, tx, s); err != nil {
		return err
	}
	if err := l.dropAndMark(ctx, tx, s); err != nil {
		return err
	}
	// The first commit: nothing changes before the check passed.
	if prepareHook != nil {
		prepareHook()
	}
	if err := l.verified(); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("load: commit the preparation: %w", commitOutcome(err))
	}
	return nil
}

// checkSurveyed is checkEmpty on what survey counted; a rerun reads the marker and counts the
// tables it does not list.
func (l *parallelLoad) checkSurveyed(ctx context.Context, tx pgx.Tx, s survey) error {
	if s.marked {
		var err error
		if l.saved, err = readMarker(ctx, tx); err != nil {
			return err
		}
		return l.checkEmpty(ctx, tx)
	}
	return l.refuseRows(l.tables, s.counts)
}

// checkEmpty refuses a table with rows, unless the marker lists it (a parallel load that did
// not finish was filling it, and this one empties it again). A marker listing tables this
// load does not fill is refused too: they would stay half-loaded.
func (l *parallelLoad) checkEmpty(ctx context.Context, tx pgQuerier) error {
	if err := l.refuseForeignMarker(); err != nil {
		return err
	}
	var check []string
	for _, t := range l.tables {
		if !slices.Contains(l.saved.tables, t) {
			check = append(check, t)
		}
	}
	counts, err := countTables(ctx, tx, check)
	if err != nil {
		return fmt.Errorf("load: count rows of %s: %w", strings.Join(check, ", "), err)
	}
	return l.refuseRows(check, counts)
}

// refuseForeignMarker refuses a marker that lists tables this load does not fill.
func (l *parallelLoad) refuseForeignMarker() error {
	for _, t := range l.saved.tables {
		if !slices.Contains(l.tables, t) {
			return fmt.Errorf("load: an unfinished parallel restore was filling table %s, which this restore does not load: rerun the same restore (same models) with --jobs; nothing was changed", t)
		}
	}
	return nil
}

// refuseRows refuses the first of tables (none the marker lists) with rows (counts, in their
// order), then takes the load's tables as the marker's.
func (l *parallelLoad) refuseRows(tables []string, counts []int64) error {
	for i, n := range counts {
		if n > 0 {
			name := strings.Trim(tables[i], `"`)
			return &NotEmptyError{Table: name, What: l.names.describe(name), Rows: n}
		}
	}
	if len(l.saved.tables) > 0 {
		slog.Warn("load: an earlier parallel restore did not finish; emptying its tables and loading them again", "tables", l.saved.tables)
	}
	l.saved.tables = l.tables
	return nil
}

// dropConstraints drops the foreign keys from and to the tables, then their indexes, adding
// their definitions to the saved ones (a rerun finds those the first run dropped in the
// marker only).
func (l *parallelLoad) dropConstraints(ctx context.Context, tx pgx.Tx) error {
	fks, dropped, err := dropForeignKeys(ctx, tx, l.tables)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if !dropped {
		return errors.New("load: --jobs must drop the foreign keys of the restored tables, which needs their owner; restore without --jobs; nothing was changed")
	}
	indexes, err := dropIndexes(ctx, tx, l.tables)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	l.remember(fks, indexes)
	return nil
}

// remember adds the dropped foreign keys and index definitions to the saved ones, which a
// rerun already holds (one an unfinished load added back, maybe NOT VALID, is the saved one).
func (l *parallelLoad) remember(fks []foreignKey, indexes []string) {
	for _, fk := range fks {
		if !slices.ContainsFunc(l.saved.fks, func(s foreignKey) bool { return s.table == fk.table && s.name == fk.name }) {
			l.saved.fks = append(l.saved.fks, fk)
		}
	}
	for _, def := range indexes {
		if !slices.Contains(l.saved.indexes, def) {
			l.saved.indexes = append(l.saved.indexes, def)
		}
	}
}

// readMarker reads what an unfinished parallel load recorded; none is an empty marker.
func readMarker(ctx context.Context, tx pgQuerier) (parallelMarker, error) {
	var m parallelMarker
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", oneRoundTrip, markerTable).Scan(&exists); err != nil || !exists {
		return m, err
	}
	rows, err := tx.Query(ctx, readMarkerSQL, oneRoundTrip)
	if err != nil {
		return m, fmt.Errorf("load: read %s: %w", markerTable, err)
	}
	var kind, table, name, def string
	_, err = pgx.ForEachRow(rows, []any{&kind, &table, &name, &def}, func() error {
		m.add(kind, table, name, def)
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("load: read %s: %w", markerTable, err)
	}
	return m, nil
}

// createMarkerSQL creates the marker table if it does not exist; readMarkerSQL reads it.
const (
	createMarkerSQL = "CREATE TABLE IF NOT EXISTS " + markerTable + " (ord int, kind text, tbl text, name text, def text)"
	readMarkerSQL   = "SELECT kind, tbl, name, def FROM " + markerTable + " ORDER BY ord"
)

// add adds one row of the marker table to m.
func (m *parallelMarker) add(kind, table, name, def string) {
	switch kind {
	case "table":
		m.tables = append(m.tables, table)
	case "index":
		m.indexes = append(m.indexes, def)
	case "fk":
		m.fks = append(m.fks, foreignKey{table: table, name: name, def: def})
	}
}

// markerRow is a row of the marker table.
type markerRow struct {
	ord                    int
	kind, table, name, def string
}

// rows are m as the marker table's rows: the tables, then the indexes, then the foreign keys.
func (m parallelMarker) rows() []markerRow {
	var rows []markerRow
	for _, t := range m.tables {
		rows = append(rows, markerRow{ord: len(rows), kind: "table", table: t})
	}
	for _, def := range m.indexes {
		rows = append(rows, markerRow{ord: len(rows), kind: "index", def: def})
	}
	for _, fk := range m.fks {
		rows = append(rows, markerRow{ord: len(rows), kind: "fk", table: fk.table, name: fk.name, def: fk.def})
	}
	return rows
}

// writeMarker (re)writes the marker table.
func writeMarker(ctx context.Context, tx pgx.Tx, m parallelMarker) error {
	if _, err := execAll(ctx, tx.Conn().PgConn(), markerSQL(m)); err != nil {
		return fmt.Errorf("load: write %s: %w", markerTable, err)
	}
	return nil
}

// copyModel empties one model's tables and copies its fixture into them, in one transaction.
func (l *parallelLoad) copyModel(ctx context.Context, lf LoadFixture, i int) (int64, error) {
	p := l.plans[i]
	conn, err := l.db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", p.m.Label, err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("load %s: begin: %w", p.m.Label, err)
	}
	defer tx.Rollback(context.Background())
	tables := p.tables()
	// Truncated in this transaction: the COPY writes frozen rows, and a rerun's rows replace
	// whatever a failed run left.
	if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", ")); err != nil {
		return 0, l.names.wrap(p.m.Label, "empty "+strings.Join(tables, ", "), err)
	}
	cs := l.takeAhead(i)
	if cs == nil {
		if cs, err = openCopySource(ctx, lf, p, l.colTypes[i], l.copyMode()); err != nil {
			return 0, err
		}
	}
	defer cs.Close()
	c, err := copyInto(ctx, tx, cs.src, p, l.copyMode(), l.names)
	if err != nil {
		return 0, err
	}
	if err := resetSequencesAfter(ctx, tx, p, c, l.names); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, l.names.wrap(p.m.Label, "commit", commitOutcome(err))
	}
	return c.rows, nil
}

// copyMode is how the copies write: frozen rows, into tables truncated in their transaction.
// The jobs share the read-ahead budget: memory does not grow with --jobs.
func (l *parallelLoad) copyMode() copyMode {
	return copyMode{freeze: true, ahead: max(bytesAhead/int64(l.jobs), 4<<20)}
}

// decodeAhead starts decoding the fixtures of the first copies (one a job, largest first)
// while the preparation runs: its round trips and the server's work leave the client's cores
// idle, and the copies then start with tuples ready. Nothing is written before the
// preparation commits, and a fixture that fails to open here is opened again, and its error
// reported, by its copy.
func (l *parallelLoad) decodeAhead(ctx context.Context, fixtures []LoadFixture) {
	l.ahead = map[int]*copySource{}
	for _, i := range l.order[:min(l.jobs, len(l.order))] {
		if cs, err := openCopySource(ctx, fixtures[i], l.plans[i], l.colTypes[i], l.copyMode()); err == nil {
			l.ahead[i] = cs
		}
	}
}

// takeAhead returns the source decodeAhead opened for plan i, if any, which the caller closes.
func (l *parallelLoad) takeAhead(i int) *copySource {
	l.aheadMu.Lock()
	defer l.aheadMu.Unlock()
	cs := l.ahead[i]
	delete(l.ahead, i)
	return cs
}

// closeAhead closes the sources no copy took (the load failed before their copies).
func (l *parallelLoad) closeAhead() {
	l.aheadMu.Lock()
	defer l.aheadMu.Unlock()
	for i, cs := range l.ahead {
		cs.Close()
		delete(l.ahead, i)
	}
}

// finish removes the marker: every table is loaded, indexed and its foreign keys checked.
func (l *parallelLoad) finish(ctx context.Context) error {
	if _, err := l.db.pool.Exec(ctx, "DROP TABLE "+markerTable); err != nil {
		return fmt.Errorf("load: drop %s: %w", markerTable, err)
	}
	return nil
}

// rank is a table's place in the load's order (largest fixture first); tables the load does
// not fill come last.
func (l *parallelLoad) rank(table string) int {
	table = unqualified(table)
	for r, i := range l.order {
		p := l.plans[i]
		if strings.Trim(p.m.Table, `"`) == table || slices.ContainsFunc(p.m2m, func(f loadField) bool { return f.ThroughTable == table }) {
			return r
		}
	}
	return len(l.order)
}

// indexTable is the table an index definition is on, unqualified and unquoted:
// "ALTER TABLE t ADD CONSTRAINT ..." (t as regclass text: qualified only when off the search
// path) or "CREATE [UNIQUE] INDEX name ON [ONLY] schema.t USING ..." (always qualified). Both
// forms of one table must give one name: the builds of one table's indexes are one step.
func indexTable(def string) string {
	if rest, ok := strings.CutPrefix(def, "ALTER TABLE "); ok {
		t, _, _ := strings.Cut(rest, " ADD CONSTRAINT ")
		return unqualified(t)
	}
	_, rest, ok := strings.Cut(def, " ON ")
	if !ok {
		return def
	}
	rest = strings.TrimPrefix(rest, "ONLY ")
	t, _, _ := strings.Cut(rest, " USING ")
	return unqualified(t)
}

// unqualified is the last part of a possibly schema-qualified, possibly quoted name, unquoted.
func unqualified(name string) string {
	quoted, start := false, 0
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == '"':
			quoted = !quoted
		case name[i] == '.' && !quoted:
			start = i + 1
		}
	}
	last := name[start:]
	if len(last) >= 2 && last[0] == '"' && last[len(last)-1] == '"' {
		last = strings.ReplaceAll(last[1:len(last)-1], `""`, `"`)
	}
	return last
}

// refuseUnfinishedParallel refuses a one-transaction load into a database that an unfinished
// parallel load left half-restored: its dropped indexes and foreign keys are recorded only in
// the marker, which a rerun with --jobs uses.
func (db *DB) refuseUnfinishedParallel(ctx context.Context) error {
	var exists bool
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", markerTable).Scan(&exists); err != nil {
		return fmt.Errorf("load: look for %s: %w", markerTable, err)
	}
	if exists {
		return outcome.Errorf(outcome.Refused, "load: a parallel restore did not finish and left this database half-restored (table %s records it): rerun that restore with --jobs; nothing was changed", markerTable)
	}
	return nil
}
