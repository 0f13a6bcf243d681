// Package database reads and writes the platform's database, PostgreSQL (pgx) or SQLite
// (modernc.org/sqlite): URL parsing, schema checks against the model description, one
// consistent snapshot for a whole run, fixture export by primary-key range, and bulk inserts.
package database

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// DB is an open platform database. It is safe for concurrent use: several exports may run at
// once, each on its own connection.
type DB struct {
	src  Source
	opts Options

	pool  *pgxpool.Pool      // PostgreSQL
	plain *plainAfterRefusal // PostgreSQL: skips a TLS attempt the server refused before
	sql   *sql.DB            // SQLite

	mu        sync.Mutex
	snapshots map[string]*sql.DB // SQLite snapshot copies opened read-only, by path

	// described holds the result columns of each PostgreSQL export query (by its text), so
	// that a model's pieces after the first cost no round trip to describe it.
	described sync.Map

	// checked holds the columns the last schema check read (PostgreSQL), for the load that
	// follows it (see takeCheckedColumns).
	checked atomic.Pointer[checkedColumns]

	// silent is set once a connection gave up on a database that stopped answering.
	silent atomic.Bool
}

// Open connects to the database. A database that does not exist (a missing SQLite file, an
// unknown PostgreSQL database) is an error, never created.
func Open(ctx context.Context, url string) (*DB, error) {
	return open(ctx, url, false, Options{})
}

// OpenWith is Open with options (the lock timeout).
func OpenWith(ctx context.Context, url string, o Options) (*DB, error) {
	return open(ctx, url, false, o)
}

// Create opens the database, creating an empty SQLite file when missing (PostgreSQL databases
// must exist). Used by the demo generator and scratch restores.
func Create(ctx context.Context, url string) (*DB, error) {
	return open(ctx, url, true, Options{})
}

func open(ctx context.Context, url string, create bool, o Options) (*DB, error) {
	src, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	db := &DB{src: src, opts: o}
	switch src.Engine {
	case Postgres:
		db.pool, db.plain, err = openPostgres(ctx, src, o, func() { db.silent.Store(true) })
	case SQLite:
		db.sql, err = openSQLite(ctx, src.DSN, create, o.lockTimeout())
		err = db.lockError(err, "read the schema", 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", src.Redacted, err)
	}
	return db, nil
}

// poolCloseWait bounds how long Close waits for the pool's connections to say goodbye.
const poolCloseWait = 2 * time.Second

// closePool closes pool, waiting at most poolCloseWait: the driver's goodbye to a connection
// whose statement was cancelled sends a cancel request and waits up to 15 s for it, which a
// server that stopped answering never answers. The rest finishes in the background; the server
// drops the sessions, and rolls back their transactions, when they close.
func closePool(pool *pgxpool.Pool) {
	done := make(chan struct{})
	go func() {
		pool.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(poolCloseWait):
	}
}

// Source returns what the DB was opened from.
func (db *DB) Source() Source { return db.src }

// Close releases connections.
func (db *DB) Close() error {
	var errs []error
	if db.pool != nil {
		closePool(db.pool)
	}
	if db.sql != nil {
		errs = append(errs, db.sql.Close())
	}
	db.mu.Lock()
	for path, h := range db.snapshots {
		errs = append(errs, h.Close())
		delete(db.snapshots, path)
	}
	db.mu.Unlock()
	return errors.Join(errs...)
}

// ApplySchema makes an empty database what `manage.py migrate` makes it: the platform's tables
// (platform.SchemaPostgres / SchemaSQLite) and the rows migrate writes (content types,
// permissions, applied migrations). It is a no-op when accounts_user exists already.
func (db *DB) ApplySchema(ctx context.Context) error {
	var (
		created bool
		err     error
	)
	if db.pool != nil {
		created, err = db.applySchemaPostgres(ctx)
	} else {
		created, err = db.applySchemaSQLite(ctx)
	}
	if err == nil && created {
		err = db.seedMigrateRows(ctx)
	}
	if err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	return nil
}

// migratedAt is the applied time written for django_migrations rows: fixed, so that two
// databases made alike are alike.
var migratedAt = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

// seedMigrateRows writes django_content_type, auth_permission and django_migrations as
// migrate does: backups refer to permissions by id.
func (db *DB) seedMigrateRows(ctx context.Context) error {
	cts := platform.ContentTypes
	i := 0
	if _, err := db.BulkInsert(ctx, "django_content_type", []string{"id", "app_label", "model"}, func() ([]any, bool) {
		if i >= len(cts) {
			return nil, false
		}
		i++
		return []any{int64(i), cts[i-1].App, cts[i-1].Model}, true
	}); err != nil {
		return err
	}
	perms := platform.Permissions()
	i = 0
	if _, err := db.BulkInsert(ctx, "auth_permission", []string{"id", "name", "content_type_id", "codename"}, func() ([]any, bool) {
		if i >= len(perms) {
			return nil, false
		}
		p := perms[i]
		i++
		return []any{p.ID, p.Name, p.ContentTypeID, p.Codename}, true
	}); err != nil {
		return err
	}
	migs := platform.Migrations
	i = 0
	_, err := db.BulkInsert(ctx, "django_migrations", []string{"id", "app", "name", "applied"}, func() ([]any, bool) {
		if i >= len(migs) {
			return nil, false
		}
		i++
		return []any{int64(i), migs[i-1].App, migs[i-1].Name, migratedAt.Add(time.Duration(i) * time.Second)}, true
	})
	return err
}

// BulkInsert inserts rows into table in one transaction (PostgreSQL COPY, SQLite prepared
// statements). next returns the next row's values in columns order (nil for NULL; int64, string,
// bool, float64, time.Time or []byte; time.Duration for a duration), and false when done.
// Values are converted to what the column stores as Django would: JSON and decimals from
// strings, intervals from microseconds, UUIDs from either string form. Sequences/AUTOINCREMENT
// are moved past the largest id afterwards.
func (db *DB) BulkInsert(ctx context.Context, table string, columns []string, next func() ([]any, bool)) (int64, error) {
	var (
		n   int64
		err error
	)
	if db.pool != nil {
		n, err = db.bulkInsertPostgres(ctx, table, columns, next)
	} else {
		n, err = db.bulkInsertSQLite(ctx, table, columns, next)
	}
	if err != nil {
		return n, fmt.Errorf("bulk insert into %s: %w", table, err)
	}
	return n, nil
}

// ErrSchemaMismatch is a schema check that read the database and found tables or columns
// missing (other errors are the check failing to read it).
var ErrSchemaMismatch = errors.New("the database does not match the platform models")

// CheckSchema compares the live schema with the models: a missing table or column is an error
// naming it; a column the description does not know is returned as a warning (it is not
// exported; a restore leaves it to its default).
func (db *DB) CheckSchema(ctx context.Context, models []platform.Model) (warnings []string, err error) {
	var live map[string]map[string]bool // table -> columns
	if db.pool != nil {
		live, err = db.liveColumnsPostgres(ctx)
	} else {
		live, err = liveColumnsSQLite(ctx, db.sql)
	}
	if err = db.lockError(err, "read the table list", 0, platformTables()...); err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	var problems []string
	check := func(table string, want []string, extraWarn bool) {
		cols, ok := live[table]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s is missing", table))
			return
		}
		known := map[string]bool{}
		for _, c := range want {
			known[c] = true
			if !cols[c] {
				problems = append(problems, fmt.Sprintf("table %s is missing column %s", table, c))
			}
		}
		if extraWarn {
			for _, c := range slices.Sorted(maps.Keys(cols)) {
				if !known[c] {
					warnings = append(warnings, fmt.Sprintf("table %s has column %s, unknown to the model description: it is not exported", table, c))
				}
			}
		}
	}
	for _, m := range models {
		check(m.Table, m.Columns(), true)
		for _, f := range m.ManyToMany() {
			check(f.ThroughTable, append([]string{"id"}, f.ThroughColumns...), false)
		}
	}
	if len(problems) > 0 {
		return warnings, fmt.Errorf("check schema: %w: %s", ErrSchemaMismatch, strings.Join(problems, "; "))
	}
	return warnings, nil
}

// Range is a primary-key range [Lo, Hi]; HasLo/HasHi false means unbounded on that side.
type Range struct {
	Lo, Hi       int64
	HasLo, HasHi bool
	// Rows is the number of rows the planner counted in the range.
	Rows int64
}

// All is the range of every row.
var All = Range{}

// String shows the range for logs: "[10, 20]", "[-inf, 20]", "[10, +inf]".
func (r Range) String() string {
	lo, hi := "-inf", "+inf"
	if r.HasLo {
		lo = fmt.Sprint(r.Lo)
	}
	if r.HasHi {
		hi = fmt.Sprint(r.Hi)
	}
	return "[" + lo + ", " + hi + "]"
}

// Snapshot is one consistent read view of the database, shared by every export of a run.
type Snapshot struct {
	db *DB
	id string

	mu sync.Mutex // serialises Plan on the PostgreSQL connection
	pg *pgSnapshot
}

// BeginSnapshot opens the run's snapshot: PostgreSQL a REPEATABLE READ transaction and
// pg_export_snapshot(), held until Close; SQLite a VACUUM INTO copy in dir (the system's
// temporary directory when empty), removed on Close. Workers in other processes can use the
// SQLite copy only when they share the file system.
func (db *DB) BeginSnapshot(ctx context.Context, dir string) (*Snapshot, error) {
	var (
		s   *Snapshot
		err error
	)
	if db.pool != nil {
		s, err = db.beginSnapshotPostgres(ctx)
	} else {
		s, err = db.beginSnapshotSQLite(ctx, dir)
	}
	if err = db.lockError(err, "copy the database", 0, platformTables()...); err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return s, nil
}

// ID is what export tasks carry: the exported snapshot name, or the SQLite copy's path.
func (s *Snapshot) ID() string { return s.id }

// Plan splits a model's rows into pk ranges of at most chunkRows rows each (one open-ended
// range when the table is small), counted inside the snapshot.
func (s *Snapshot) Plan(ctx context.Context, m platform.Model, chunkRows int) ([]Range, error) {
	if chunkRows < 1 {
		return nil, fmt.Errorf("plan %s: chunk size %d, want at least 1", m.Label, chunkRows)
	}
	var (
		total  int64
		bounds []int64
		err    error
	)
	if s.pg != nil {
		s.mu.Lock()
		total, bounds, err = s.pg.plan(ctx, m, chunkRows)
		s.mu.Unlock()
	} else {
		var h *sql.DB
		if h, err = s.db.snapshotHandle(s.id); err == nil {
			total, bounds, err = planSQL(ctx, h, m, chunkRows)
		}
		err = s.db.lockError(err, "count rows", 0)
	}
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", m.Label, err)
	}
	return splitRanges(total, bounds, int64(chunkRows)), nil
}

// PlanPieces is Plan with ranges of about pieceBytes of fixture each (at most maxRows rows,
// at least one): the width of a row is estimated from a sample of the table's first rows, so
// that tables of wide rows (chapters' texts) are cut finer than narrow ones. A table whose
// pks are dense (their span at most twice the rows) is cut by pk value, which costs no scan
// and still holds at most that many rows in a range (pks are distinct integers); a sparse
// one by row number, as Plan does.
func (s *Snapshot) PlanPieces(ctx context.Context, m platform.Model, maxRows int, pieceBytes int64) ([]Range, error) {
	st, err := s.tableStats(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", m.Label, err)
	}
	rows := piecesOf(st.width, maxRows, pieceBytes)
	total, lo, hi := st.rows, st.lo, st.hi
	if total <= int64(rows) || !lo.Valid || !hi.Valid {
		return []Range{{Rows: total}}, nil
	}
	if span := uint64(hi.Int64) - uint64(lo.Int64); span < 2*uint64(total) {
		return widthRanges(total, lo.Int64, span, int64(rows)), nil
	}
	return s.Plan(ctx, m, rows)
}

// tableStats is what a table's pieces are planned from.
type tableStats struct {
	// width estimates the bytes one row takes in a fixture: the text of its columns
	// (averaged over the first widthSample rows) plus each field's name and the object's
	// frame.
	width int64
	// rows is the table's rows in the snapshot: on PostgreSQL the server's estimate when it
	// has one (its rows a page, from the last VACUUM or ANALYZE, times the pages the table
	// holds now, as its query planner reckons), counted otherwise. Counting is a scan of the
	// table, the largest cost of planning a run, and the rows only size the pieces: a piece
	// by pk value holds at most as many rows as values whatever the estimate, and the pieces
	// are open at both ends of the table.
	rows int64
	// lo and hi are the smallest and largest pk (NULL: no row).
	lo, hi sql.NullInt64
}

// widthSample is how many rows the row width is estimated from.
const widthSample = 250

// tableStats reads m's stats in the snapshot, in one query (two when the rows are counted on
// PostgreSQL).
func (s *Snapshot) tableStats(ctx context.Context, m platform.Model) (tableStats, error) {
	frame := int64(len(m.Label) + 40)
	for _, c := range m.Columns() {
		frame += int64(len(c) + 6)
	}
	pk, table := quote(m.PK.Column), quote(m.Table)
	sample := fmt.Sprintf("(SELECT * FROM %s LIMIT %d) t", table, widthSample)
	width := "(SELECT avg(octet_length(t::text)) FROM " + sample + ")"
	rows := rowEstimate(table)
	count := "(SELECT count(*) FROM " + table + ")"
	if s.pg == nil {
		lens := make([]string, 0, len(m.Columns()))
		for _, c := range m.Columns() {
			lens = append(lens, "ifnull(length("+quote(c)+"), 4)")
		}
		width = "(SELECT avg(" + strings.Join(lens, " + ") + ") FROM " + sample + ")"
		rows = count
	}
	// Separate subqueries, not one aggregate: alone, the count may read the smallest index
	// only (no row of a wide table) and min and max each one end of the pk's index.
	q := "SELECT " + width + ", " + rows + ", (SELECT min(" + pk + ") FROM " + table + "), (SELECT max(" + pk + ") FROM " + table + ")"
	var (
		st  tableStats
		avg sql.NullFloat64
		n   sql.NullInt64
	)
	if err := s.queryRow(ctx, q, &avg, &n, &st.lo, &st.hi); err != nil {
		return st, fmt.Errorf("estimate its rows and their width: %w", err)
	}
	st.width, st.rows = frame+int64(avg.Float64), n.Int64
	if !n.Valid {
		if err := s.queryRow(ctx, "SELECT "+count, &st.rows); err != nil {
			return st, fmt.Errorf("count rows: %w", err)
		}
	}
	return st, nil
}

// rowEstimate is the SQL of PostgreSQL's estimate of the rows of table (a quoted name): NULL
// when the server has none (the table never vacuumed or analyzed, or nothing in it then).
func rowEstimate(table string) string {
	return "(SELECT CASE WHEN c.reltuples > 0 AND c.relpages > 0 THEN " +
		"round(c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int))::bigint END " +
		"FROM pg_class c WHERE c.oid = " + literal(table) + "::regclass)"
}

// literal quotes s as an SQL string literal. One with a backslash (an index's predicate, a
// check's pattern) is written E'...' with the backslashes doubled: it then means s whatever
// the server's standard_conforming_strings says.
func literal(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// PlanAllPieces is PlanPieces for each of models (the ranges in models' order), with up to
// planners of them planned at once: planning is the server's work (a sample of rows, and a
// count where it has no estimate), and a run plans every table before its first export
// starts. On PostgreSQL each planner but the first is a transaction of its own in the
// snapshot, opened as it starts (opening a connection costs the server a process), and the
// largest tables are taken first so that none is left to count alone at the end; SQLite
// plans one model after another.
func (s *Snapshot) PlanAllPieces(ctx context.Context, models []platform.Model, maxRows int, pieceBytes int64, planners int) ([][]Range, error) {
	out := make([][]Range, len(models))
	order, err := s.planOrder(ctx, models)
	if err != nil {
		return nil, fmt.Errorf("plan: order the tables by size: %w", err)
	}
	if s.pg == nil {
		planners = 1
	}
	planners = max(1, min(planners, len(models)))
	next := make(chan int, len(order))
	for _, i := range order {
		next <- i
	}
	close(next)
	errs := make([]error, planners)
	var wg sync.WaitGroup
	for k := range planners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = s.planEach(ctx, k > 0, models, next, out, maxRows, pieceBytes)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// planEach plans the models whose indexes come from next into out, in s or, when fork is
// set, in a transaction of its own in s's snapshot.
func (s *Snapshot) planEach(ctx context.Context, fork bool, models []platform.Model, next <-chan int, out [][]Range, maxRows int, pieceBytes int64) error {
	snap := s
	if fork {
		f, err := s.forkPostgres(ctx)
		if err != nil {
			return fmt.Errorf("plan: open a planner: %w", err)
		}
		defer f.Close() // read only: nothing to keep
		snap = f
	}
	for i := range next {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if out[i], err = snap.PlanPieces(ctx, models[i], maxRows, pieceBytes); err != nil {
			return err
		}
	}
	return nil
}

// planOrder is the order models are planned in: the largest tables first on PostgreSQL.
func (s *Snapshot) planOrder(ctx context.Context, models []platform.Model) ([]int, error) {
	order := make([]int, len(models))
	for i := range order {
		order[i] = i
	}
	if s.pg == nil || len(models) < 2 {
		return order, nil
	}
	tables := make([]string, len(models))
	for i, m := range models {
		tables[i] = m.Table
	}
	s.mu.Lock()
	sizes, err := s.pg.tableSizes(ctx, tables)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	return order, nil
}

// widthRanges cuts the pks lo..lo+span into consecutive ranges of rows values each, open at
// both ends of the table; each range's Rows is its share of total (the sum is total).
func widthRanges(total, lo int64, span uint64, rows int64) []Range {
	n := int64(span/uint64(rows)) + 1
	out := make([]Range, n)
	for i := range n {
		r := Range{Lo: lo + i*rows, HasLo: i > 0, Rows: total / n}
		r.Hi, r.HasHi = r.Lo+rows-1, i < n-1
		if !r.HasLo {
			r.Lo = 0
		}
		if !r.HasHi {
			r.Hi, r.Rows = 0, total-(n-1)*(total/n)
		}
		out[i] = r
	}
	return out
}

// piecesOf is the number of rows of width bytes in a piece of pieceBytes, within [1, maxRows].
func piecesOf(width int64, maxRows int, pieceBytes int64) int {
	if width <= 0 || pieceBytes <= 0 {
		return max(maxRows, 1)
	}
	return int(max(1, min(int64(maxRows), pieceBytes/width)))
}

// CountReferences counts, in the snapshot, the references field f of model m holds: the
// rows of its through table for a many-to-many field, else the rows whose column is set.
func (s *Snapshot) CountReferences(ctx context.Context, m platform.Model, f platform.Field) (int64, error) {
	q := "SELECT count(*) FROM " + quote(m.Table) + " WHERE " + quote(f.Column) + " IS NOT NULL"
	if f.IsManyToMany() {
		q = "SELECT count(*) FROM " + quote(f.ThroughTable)
	}
	var n int64
	if err := s.queryRow(ctx, q, &n); err != nil {
		return 0, fmt.Errorf("count the references of %s field %s: %w", m.Label, f.Name, err)
	}
	return n, nil
}

// queryRow runs a query of one row in the snapshot.
func (s *Snapshot) queryRow(ctx context.Context, q string, dest ...any) error {
	if s.pg != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pg.tx == nil {
			return errors.New("snapshot is closed")
		}
		return s.db.lockError(s.pg.tx.QueryRow(ctx, q, oneRoundTrip).Scan(dest...), "read rows", s.pg.conn.PgConn().PID())
	}
	h, err := s.db.snapshotHandle(s.id)
	if err != nil {
		return err
	}
	return s.db.lockError(h.QueryRowContext(ctx, q).Scan(dest...), "read rows", 0)
}

// splitRanges turns the pks at row numbers chunk, 2*chunk, ... (strictly before the last row)
// into consecutive ranges, open at both ends of the table.
func splitRanges(total int64, bounds []int64, chunk int64) []Range {
	if len(bounds) == 0 {
		return []Range{{Rows: total}}
	}
	out := make([]Range, 0, len(bounds)+1)
	var prev Range
	for i, b := range bounds {
		r := Range{Hi: b, HasHi: true, Rows: chunk}
		if i > 0 {
			r.Lo, r.HasLo = prev.Hi+1, true
		}
		out = append(out, r)
		prev = r
	}
	out = append(out, Range{Lo: prev.Hi + 1, HasLo: true, Rows: total - chunk*int64(len(bounds))})
	return out
}

// Close ends the snapshot.
func (s *Snapshot) Close() error {
	if s.pg != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pg.close()
	}
	return s.db.closeSnapshotSQLite(s.id)
}

// Export writes the model's rows in r, in pk order, read in snapshot snapshotID, as fixture
// objects in format f separated by f.Sep() and without the surrounding brackets (a chunk). It
// returns the number of rows written. Memory does not grow with the number of rows.
//
// An empty snapshotID reads the database as it is now (one transaction). Export is for
// callers that compare what they export; a backup uses ExportWithWarnings, so that values
// written changed are reported.
func (db *DB) Export(ctx context.Context, snapshotID string, m platform.Model, r Range, f fixture.Format, w io.Writer) (int64, error) {
	n, _, err := db.ExportWithWarnings(ctx, snapshotID, m, r, f, w)
	return n, err
}

// ExportWithWarnings is Export that also returns a warning for each value it had to write
// changed, naming the model, pk and field: text stored as invalid UTF-8 (SQLite keeps any
// bytes) is written with U+FFFD for each invalid byte, as a fixture can hold only Unicode. A
// value written as dumpdata writes it that a restore refuses (a boolean of 2, an integer with
// a fraction, a duration beyond an int64 of microseconds) is warned about too, so that the
// operator learns of it at backup time.
func (db *DB) ExportWithWarnings(ctx context.Context, snapshotID string, m platform.Model, r Range, f fixture.Format, w io.Writer) (int64, []string, error) {
	p, err := newExportPlan(m, db.src.Engine)
	if err != nil {
		return 0, nil, fmt.Errorf("export %s: %w", m.Label, err)
	}
	return db.exportPlanned(ctx, snapshotID, p, r, f, w)
}

// exportPlanned is ExportWithWarnings for a plan made already.
func (db *DB) exportPlanned(ctx context.Context, snapshotID string, p *exportPlan, r Range, f fixture.Format, w io.Writer) (int64, []string, error) {
	m := p.m
	out := fixture.NewChunkWriter(w, f)
	var err error
	var n int64
	if db.pool != nil {
		n, err = db.exportPostgres(ctx, snapshotID, p, r, out)
	} else {
		n, err = db.exportSQLite(ctx, snapshotID, p, r, out)
		err = db.lockError(err, "read rows", 0)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return n, nil, fmt.Errorf("export %s %s: %w", m.Label, r, err)
	}
	return n, p.takeWarnings(), nil
}
