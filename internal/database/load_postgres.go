package database

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// loadPostgres loads on one connection in one transaction: COPY streams each fixture into its
// table (into a temporary table then INSERT ... ON CONFLICT for Merge); many-to-many pairs are
// spooled to a temporary file while the model's COPY runs and copied into the through tables
// after it.
func (db *DB) loadPostgres(ctx context.Context, fixtures []LoadFixture, plans []*loadPlan, o LoadOptions) ([]LoadedModel, error) {
	// The check runs alongside; whatever fails, its error comes first (a corrupt fixture
	// may fail the load too, less clearly), and nothing is committed before it passed.
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	verified := startVerify(vctx, o)
	out, err := db.loadPostgresTx(ctx, fixtures, plans, o, verified)
	if err != nil {
		if verr := verified(); verr != nil {
			return nil, verr
		}
		return nil, db.silenceBehind(err)
	}
	return out, nil
}

// loadPostgresTx is loadPostgres's transaction; it commits only once verified returned nil.
func (db *DB) loadPostgresTx(ctx context.Context, fixtures []LoadFixture, plans []*loadPlan, o LoadOptions, verified func() error) ([]LoadedModel, error) {
	colTypes, err := db.planColumnTypes(ctx, plans)
	if err != nil {
		return nil, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: begin: %w", err)
	}
	// Whatever happens before Commit, nothing stays: an error here means the connection is
	// gone, and the server rolls back anyway.
	defer tx.Rollback(context.Background())

	l := &pgLoad{tx: tx, plans: plans, colTypes: colTypes, merge: o.Merge, names: newTableNames(plans), phase: time.Now()}
	// A wait for another session's lock fails after the lock timeout, naming the holder;
	// this connection's own locks are not the holder's.
	self := conn.Conn().PgConn().PID()
	if err := l.lock(ctx); err != nil {
		return nil, db.lockError(err, "load", self, loadTables(plans)...)
	}
	// Sequences are not transactional: the through tables' COPYs draw ids from theirs, and
	// the reset moves each past the loaded ids. A failed load puts them back as they were.
	seqs, err := saveSequences(ctx, tx, plans)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT wnb_load"); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	out, err := l.run(ctx, fixtures)
	if err == nil {
		err = verified()
		l.lap("wait for the check")
	}
	if err != nil {
		db.putBack(ctx, seqs, tx)
		return nil, db.lockError(err, "load", self, loadTables(plans)...)
	}
	if err := l.finish(ctx); err != nil {
		db.putBack(ctx, seqs, tx)
		return nil, err
	}
	l.lap("commit")
	return out, nil
}

// finish resets the sequences and commits, last, once everything else passed, and not
// cancelled by an interrupt: setval is not undone by a rollback, so an interrupt between it
// and the commit would leave the old rows with the backup's sequences (the next insert
// colliding with a row). Both take milliseconds; a time limit stands for a lost server.
func (l *pgLoad) finish(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// What loaddata does (sequence_reset_sql), so that the next insert gets max(id)+1.
	if err := l.resetSequences(ctx); err != nil {
		return err
	}
	if err := l.tx.Commit(ctx); err != nil {
		return l.names.wrap("", "commit", commitOutcome(err))
	}
	return nil
}

// putBack sets the sequences of a failed load back as they were, through its transaction, or
// through a connection of its own when that one is gone (a cancelled query closes it): the
// server rolls the load back, but not what setval did.
func (db *DB) putBack(ctx context.Context, seqs savedSequences, tx pgx.Tx) {
	err := seqs.restore(ctx, tx)
	if err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn, cerr := db.pool.Acquire(ctx)
	if cerr == nil {
		defer conn.Release()
		if err = seqs.set(ctx, conn.Conn()); err == nil {
			return
		}
	}
	slog.Warn("load failed and its sequences could not be put back", "err", errors.Join(err, cerr))
}

// loadTables names the tables a load writes, and every platform table: dropping and adding
// foreign keys locks the tables they point at too.
func loadTables(plans []*loadPlan) []string {
	var out []string
	for _, p := range plans {
		out = append(out, p.m.Table)
		for _, f := range p.m2m {
			out = append(out, f.ThroughTable)
		}
	}
	return append(out, platformTables()...)
}

// pgColumns are a table's columns in a plan's order: their data types (information_schema's
// names, for the checks) and type OIDs (for the binary COPY encoding).
type pgColumns struct {
	types []string
	oids  []uint32
}

// planColumnTypes reads each planned table's column types, in the plans' column order, with
// one catalog query for every table (a query a table was a tenth of a small restore), or
// takes those a schema check just read.
func (db *DB) planColumnTypes(ctx context.Context, plans []*loadPlan) ([]pgColumns, error) {
	tables := make([]string, len(plans))
	for i, p := range plans {
		tables[i] = p.m.Table
	}
	found := db.takeCheckedColumns()
	if found == nil {
		var err error
		if found, err = tablesColumns(ctx, db.pool, tables); err != nil {
			return nil, fmt.Errorf("load: read the column types: %w", err)
		}
	}
	cols := make([]pgColumns, len(plans))
	for i, p := range plans {
		byName := found[p.m.Table]
		if len(byName) == 0 {
			return nil, fmt.Errorf("load %s: table %s does not exist", p.m.Label, p.m.Table)
		}
		for _, c := range p.cols {
			col, ok := byName[c]
			if !ok {
				return nil, fmt.Errorf("load %s: table %s has no column %s", p.m.Label, p.m.Table, c)
			}
			cols[i].types = append(cols[i].types, col.dataType)
			cols[i].oids = append(cols[i].oids, col.oid)
		}
	}
	return cols, nil
}

// checkedColumns are the columns of every table a schema check read, and when.
type checkedColumns struct {
	cols map[string]map[string]pgColumn
	at   time.Time
}

// checkedFresh is how long the columns a schema check read serve a load's plan: a restore
// checks the schema and starts loading within milliseconds (the catalog query is a few
// milliseconds of the server's time, before the first COPY); one that waited for an
// operator's confirmation reads them again.
const checkedFresh = 5 * time.Second

// takeCheckedColumns returns the columns the last schema check read if it was recent, once
// (nil: read them).
func (db *DB) takeCheckedColumns() map[string]map[string]pgColumn {
	c := db.checked.Swap(nil)
	if c == nil || time.Since(c.at) > checkedFresh {
		return nil
	}
	return c.cols
}

// pgColumn is a column's data type, as information_schema names it (for the checks), and its
// type OID (a domain's base type, as a query's description gives it: for the binary COPY).
type pgColumn struct {
	dataType string
	oid      uint32
}

// tablesColumns reads the columns of tables in the current schema (table → column → type;
// nil tables: every table), from the catalog: it takes no lock on the tables. It reads
// pg_catalog with information_schema.columns' own definitions of what it lists (tables,
// views, foreign and partitioned tables; columns the user owns or holds a privilege on) and
// of data_type: the same answer, planned in a millisecond instead of the view's five on
// every restore.
func tablesColumns(ctx context.Context, q pgQuerier, tables []string) (map[string]map[string]pgColumn, error) {
	return queryColumns(ctx, q, tablesColumnsQuery, tables)
}

// queryColumns runs a query of columns (table, column, data type, type OID) of tables.
func queryColumns(ctx context.Context, q pgQuerier, query string, tables []string) (map[string]map[string]pgColumn, error) {
	rows, err := q.Query(ctx, query, oneRoundTrip, tables)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]pgColumn{}
	var table, name string
	var col pgColumn
	_, err = pgx.ForEachRow(rows, []any{&table, &name, &col.dataType, &col.oid}, func() error {
		if out[table] == nil {
			out[table] = map[string]pgColumn{}
		}
		out[table][name] = col
		return nil
	})
	return out, err
}

// tablesColumnsQuery is what tablesColumns asks: data_type as information_schema.columns
// computes it (PostgreSQL's information_schema.sql), and the type OID a binary COPY encodes (a
// domain's base type).
const tablesColumnsQuery = `SELECT r.relname::text, a.attname::text,
		CASE WHEN t.typtype = 'd' THEN
			CASE WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN 'ARRAY'
				WHEN nbt.nspname = 'pg_catalog' THEN format_type(t.typbasetype, NULL)
				ELSE 'USER-DEFINED' END
		ELSE
			CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN 'ARRAY'
				WHEN nt.nspname = 'pg_catalog' THEN format_type(a.atttypid, NULL)
				ELSE 'USER-DEFINED' END
		END,
		CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
	FROM pg_class r
	JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	JOIN pg_type t ON t.oid = a.atttypid
	JOIN pg_namespace nt ON nt.oid = t.typnamespace
	LEFT JOIN (pg_type bt JOIN pg_namespace nbt ON nbt.oid = bt.typnamespace)
		ON t.typtype = 'd' AND t.typbasetype = bt.oid
	WHERE r.relnamespace = to_regnamespace(current_schema())
		AND r.relkind IN ('r', 'v', 'f', 'p')
		AND ($1::text[] IS NULL OR r.relname = ANY($1))
		AND (pg_has_role(r.relowner, 'USAGE') OR has_column_privilege(r.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'))`

// pgLoad is one PostgreSQL load in progress; its methods are the load's phases.
type pgLoad struct {
	tx       pgx.Tx
	plans    []*loadPlan
	colTypes []pgColumns
	merge    bool
	freeze   bool // the tables were truncated in this subtransaction: COPY ... FREEZE
	names    *tableNames
	tables   []string // quoted: the models' tables and their through tables
	phase    time.Time
}

// lap logs how long the phase that just ended took.
func (l *pgLoad) lap(what string) {
	slog.Debug("load phase", "phase", what, "took", time.Since(l.phase))
	l.phase = time.Now()
}

// lock defers the constraints and locks every table the load writes.
func (l *pgLoad) lock(ctx context.Context) error {
	for _, p := range l.plans {
		l.tables = append(l.tables, p.tables()...)
	}
	// Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at commit, so rows load
	// in any order and a replace may empty tables other tables point at. Writers wait for the
	// load; so do readers once dropForeignKeys holds its ACCESS EXCLUSIVE locks.
	setup := "SET CONSTRAINTS ALL DEFERRED"
	if len(l.tables) > 0 {
		setup += "; LOCK TABLE " + strings.Join(l.tables, ", ") + " IN EXCLUSIVE MODE"
	}
	if _, err := l.tx.Exec(ctx, setup); err != nil {
		return fmt.Errorf("load: lock tables: %w", err)
	}
	return nil
}

// run is the load proper, up to (not including) the commit.
func (l *pgLoad) run(ctx context.Context, fixtures []LoadFixture) ([]LoadedModel, error) {
	fks, dropped, err := dropForeignKeys(ctx, l.tx, l.tables)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	// Secondary indexes are dropped for the COPYs and built again once, after them, as
	// pg_restore does: cheaper than maintaining them row by row. (A merge keeps them: its
	// upserts need the constraint indexes.)
	var indexes []string
	if !l.merge {
		if indexes, err = dropIndexes(ctx, l.tx, l.tables); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
	}
	out, err := l.countAndEmpty(ctx, dropped)
	if err != nil {
		return nil, err
	}
	l.lap("prepare")
	for i, p := range l.plans {
		c, err := loadModelPostgres(ctx, l.tx, fixtures[i], p, l.colTypes[i], copyMode{merge: l.merge, freeze: l.freeze}, l.names)
		if err != nil {
			return nil, err
		}
		out[i].Rows = c.rows
		l.lap("copy " + p.m.Label)
	}
	if i, err := execAll(ctx, l.tx.Conn().PgConn(), indexes); err != nil {
		return nil, l.names.wrap("", "rebuild index ("+statementOf(indexes, i)+")", err)
	}
	l.lap("indexes")
	if err := l.checkForeignKeys(ctx, fks); err != nil {
		return nil, err
	}
	l.lap("foreign keys")
	return out, nil // the sequences are reset by finish, with the commit
}

// countAndEmpty counts each table's rows before the load and, for a replace, empties them:
// with TRUNCATE when no foreign key points at them any more (fksDropped), so that the COPYs
// that follow in the same subtransaction can write frozen rows, else with DELETE.
func (l *pgLoad) countAndEmpty(ctx context.Context, fksDropped bool) ([]LoadedModel, error) {
	out := make([]LoadedModel, len(l.plans))
	tables := make([]string, len(l.plans))
	for i, p := range l.plans {
		out[i].Label = p.m.Label
		tables[i] = quote(p.m.Table)
	}
	counts, err := countTables(ctx, l.tx, tables)
	if err != nil {
		return nil, fmt.Errorf("load: count rows: %w", err)
	}
	for i, n := range counts {
		out[i].Before = n
	}
	if l.merge || len(l.tables) == 0 {
		return out, nil
	}
	if fksDropped {
		ok, err := l.truncate(ctx)
		if err != nil || ok {
			l.freeze = ok
			return out, err
		}
	}
	// DELETE, not TRUNCATE: TRUNCATE refuses tables that others reference, and CASCADE would
	// empty tables that are not being restored.
	for i := len(l.plans) - 1; i >= 0; i-- {
		p := l.plans[i]
		for _, f := range p.m2m {
			if _, err := l.tx.Exec(ctx, "DELETE FROM "+quote(f.ThroughTable)); err != nil {
				return nil, l.names.wrap(p.m.Label, "empty "+f.ThroughTable, err)
			}
		}
		if _, err := l.tx.Exec(ctx, "DELETE FROM "+quote(p.m.Table)); err != nil {
			return nil, l.names.wrap(p.m.Label, "empty "+p.m.Table, err)
		}
	}
	return out, nil
}

// truncate empties the load's tables with one TRUNCATE, and reports false (nothing done)
// when the user may not truncate them. The savepoint around it is released, so the COPYs run
// in the subtransaction that truncated, as FREEZE requires.
func (l *pgLoad) truncate(ctx context.Context) (bool, error) {
	if _, err := l.tx.Exec(ctx, "SAVEPOINT wnb_load_truncate"); err != nil {
		return false, fmt.Errorf("load: %w", err)
	}
	_, err := l.tx.Exec(ctx, "TRUNCATE "+strings.Join(l.tables, ", "))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // no TRUNCATE privilege
		_, err := l.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load_truncate; RELEASE SAVEPOINT wnb_load_truncate")
		return false, err
	}
	if err != nil {
		return false, l.names.wrap("", "empty the tables", err)
	}
	if _, err := l.tx.Exec(ctx, "RELEASE SAVEPOINT wnb_load_truncate"); err != nil {
		return false, fmt.Errorf("load: %w", err)
	}
	return true, nil
}

// checkForeignKeys adds the dropped foreign keys back and checks the deferred ones, in a
// savepoint, so a dangling reference can be traced to its row before everything is rolled back.
func (l *pgLoad) checkForeignKeys(ctx context.Context, fks []foreignKey) error {
	if _, err := l.tx.Exec(ctx, "SAVEPOINT wnb_load_fk"); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	stmts := make([]string, 0, len(fks)+1)
	for _, fk := range fks {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", fk.table, quote(fk.name), fk.def))
	}
	stmts = append(stmts, "SET CONSTRAINTS ALL IMMEDIATE")
	if _, err := execAll(ctx, l.tx.Conn().PgConn(), stmts); err != nil {
		return l.names.foreignKeyError(ctx, l.tx, err)
	}
	return nil
}

// execAll runs statements (values written in them as literals) in one round trip, as one
// query of the simple protocol: one implicit transaction, or part of the one conn is in. It
// stops at the first that fails, whose index comes with its error (-1: the error is no one
// statement's). A load's dozens of index builds, foreign keys and sequence resets each waited
// for a round trip of their own; a batch of prepared statements waits for two.
func execAll(ctx context.Context, conn *pgconn.PgConn, stmts []string) (int, error) {
	if len(stmts) == 0 {
		return -1, nil
	}
	results, err := conn.Exec(ctx, strings.Join(stmts, ";\n")).ReadAll()
	if err == nil {
		return -1, nil
	}
	// Each statement that completed has its result; the one that failed has none, or one
	// that holds its error.
	i := len(results)
	for k, r := range results {
		if r.Err != nil {
			i = k
			break
		}
	}
	if i >= len(stmts) {
		i = -1
	}
	return i, err
}

// statementOf is stmts[i], or all of them when i is -1 (execAll's failure of no one statement).
func statementOf(stmts []string, i int) string { return oneOrAll(stmts, i, "; ") }

// oneOrAll is items[i], or all of them joined with sep when i is -1.
func oneOrAll(items []string, i int, sep string) string {
	if i < 0 {
		return strings.Join(items, sep)
	}
	return items[i]
}

// resetSequences moves each loaded table's id sequence past its largest id.
func (l *pgLoad) resetSequences(ctx context.Context) error {
	var (
		stmts  []string
		labels []string
		tables []string
	)
	for _, p := range l.plans {
		for _, s := range sequenceColumns(p) {
			seq := "pg_get_serial_sequence(" + literal(quote(s[0])) + ", " + literal(s[1]) + ")"
			stmts = append(stmts, setvalMax(seq, s[0], s[1]))
			labels, tables = append(labels, p.m.Label), append(tables, s[0])
		}
	}
	if i, err := execAll(ctx, l.tx.Conn().PgConn(), stmts); err != nil {
		if i < 0 {
			return l.names.wrap("", "reset the sequences", err)
		}
		return l.names.wrap(labels[i], "reset sequence of "+tables[i], err)
	}
	return nil
}

// resetSequencesAfter is resetSequences for one model whose tables tx truncated and filled
// (c is what it wrote), in one round trip: the model's own sequence is moved past the
// largest pk the load wrote, which is its table's (a parallel load drops the pk's index, so
// max() would read the whole table again); its through tables' past their max().
func resetSequencesAfter(ctx context.Context, tx pgx.Tx, p *loadPlan, c copied, names *tableNames) error {
	cols := sequenceColumns(p)
	set := make([]string, len(cols))
	args := []any{oneRoundTrip}
	tables := make([]string, len(cols))
	for i, s := range cols {
		args = append(args, quote(s[0]), s[1])
		seq := fmt.Sprintf("pg_get_serial_sequence($%d, $%d)", len(args)-2, len(args)-1)
		if i == 0 {
			last := int64(1) // what coalesce(max(id), 1) gives an empty table
			if c.rows > 0 {
				last = c.maxPK
			}
			args = append(args, last, c.rows > 0)
			set[i] = fmt.Sprintf("setval(%s, $%d, $%d)", seq, len(args)-2, len(args)-1)
		} else {
			set[i] = "(" + setvalMax(seq, s[0], s[1]) + ")"
		}
		tables[i] = s[0]
	}
	if _, err := tx.Exec(ctx, "SELECT "+strings.Join(set, ", "), args...); err != nil {
		return names.wrap(p.m.Label, "reset the sequences of "+strings.Join(tables, ", "), err)
	}
	return nil
}

// setvalMax is the query that moves sequence seq (an SQL expression) past the largest value
// of table's column, or back to its start when the table is empty.
func setvalMax(seq, table, column string) string {
	return fmt.Sprintf("SELECT setval(%[1]s, coalesce(max(%[2]s), 1), max(%[2]s) IS NOT null) FROM %[3]s", seq, quote(column), quote(table))
}

// sequenceColumns lists the (table, column) pairs of a plan whose ids come from a sequence:
// the model's primary key and its through tables' ids.
func sequenceColumns(p *loadPlan) [][2]string {
	cols := [][2]string{{p.m.Table, p.m.PK.Column}}
	for _, f := range p.m2m {
		cols = append(cols, [2]string{f.ThroughTable, "id"})
	}
	return cols
}

// savedSequences are sequences as they were before a load.
type savedSequences []savedSequence

type savedSequence struct {
	name      string // as pg_get_serial_sequence gives it: qualified and quoted where needed
	lastValue int64
	isCalled  bool
}

// saveSequences reads the state of every sequence the load can move.
func saveSequences(ctx context.Context, tx pgx.Tx, plans []*loadPlan) (savedSequences, error) {
	var out savedSequences
	for _, p := range plans {
		for _, c := range sequenceColumns(p) {
			var name *string
			if err := tx.QueryRow(ctx, "SELECT pg_get_serial_sequence($1, $2)", quote(c[0]), c[1]).Scan(&name); err != nil {
				return nil, fmt.Errorf("find the sequence of %s.%s: %w", c[0], c[1], err)
			}
			if name == nil {
				continue // not a serial column: nothing to put back
			}
			s := savedSequence{name: *name}
			if err := tx.QueryRow(ctx, "SELECT last_value, is_called FROM "+s.name).Scan(&s.lastValue, &s.isCalled); err != nil {
				return nil, fmt.Errorf("read sequence %s: %w", s.name, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// restore rolls the transaction back to the load's savepoint (keeping its locks, so no other
// session draws from the sequences meanwhile) and sets every sequence back. setval is not
// undone by the rollback that follows.
func (ss savedSequences) restore(ctx context.Context, tx pgx.Tx) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load"); err != nil {
		return err
	}
	return ss.set(ctx, tx.Conn())
}

// set sets every sequence to its saved state on conn.
func (ss savedSequences) set(ctx context.Context, conn *pgx.Conn) error {
	for _, s := range ss {
		if _, err := conn.Exec(ctx, "SELECT setval($1::regclass, $2, $3)", s.name, s.lastValue, s.isCalled); err != nil {
			return fmt.Errorf("put back sequence %s: %w", s.name, err)
		}
	}
	return nil
}

// dropIndexes drops the indexes of tables — secondary indexes, and the primary-key and
// unique constraints with theirs — and returns the statements that create them again. The
// caller has dropped the foreign keys that depend on the constraints. Loading into bare
// tables and building each index once afterwards is what pg_restore does, and much cheaper
// than maintaining the indexes row by row. Where they cannot be dropped (another object
// depends on a constraint, or the user does not own the table) they stay and are maintained.
func dropIndexes(ctx context.Context, tx pgx.Tx, tables []string) ([]string, error) {
	rows, err := tx.Query(ctx, indexesSQL("$1"), oneRoundTrip, tables)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	var drops, defs []string
	var drop, def string
	if _, err := pgx.ForEachRow(rows, []any{&drop, &def}, func() error {
		drops, defs = append(drops, drop), append(defs, def)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	if len(drops) == 0 {
		return nil, nil
	}
	// The savepoint and the drops in one round trip: a drop that fails leaves the savepoint
	// made, to roll back to.
	if _, err := tx.Exec(ctx, "SAVEPOINT wnb_load_drop_index; "+strings.Join(drops, "; ")); err != nil {
		var pgErr *pgconn.PgError
		if dropRefused(err) && errors.As(err, &pgErr) {
			slog.Warn("load: keeping the tables' indexes during the load", "reason", pgErr.Message)
			_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load_drop_index")
			return nil, err
		}
		return nil, fmt.Errorf("drop indexes: %w", err)
	}
	return defs, nil
}

// indexesSQL lists the indexes of the tables in the text array tables (a parameter or a
// literal), as pairs of statements: the one that drops an index and the one that creates it
// again. Primary-key and unique constraints come as constraints, other indexes as indexes.
func indexesSQL(tables string) string {
	return `SELECT 'ALTER TABLE ' || c.conrelid::regclass::text || ' DROP CONSTRAINT ' || quote_ident(c.conname),
			'ALTER TABLE ' || c.conrelid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c
		WHERE c.conrelid = ANY(` + tables + `::regclass[]) AND c.contype IN ('p', 'u')
		UNION ALL
		SELECT 'DROP INDEX ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
		FROM pg_index i
		WHERE i.indrelid = ANY(` + tables + `::regclass[])
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`
}

// foreignKey is a constraint dropped for the load and added back before commit.
type foreignKey struct {
	table, name, def string // table as regclass text (quoted as needed)
}

// dropForeignKeys drops the foreign keys from and to tables, inside the transaction, so that
// neither the emptying nor the COPYs queue a check per row: adding them back before commit
// checks each one with a single query, which is what makes pg_restore fast. Dropping needs
// the tables' owner; without that right the load keeps the keys (dropped is false), deferred,
// and PostgreSQL checks them row by row at the end.
func dropForeignKeys(ctx context.Context, tx pgx.Tx, tables []string) (fks []foreignKey, dropped bool, err error) {
	fks, err = listForeignKeys(ctx, tx, tables)
	if err != nil || len(fks) == 0 {
		return nil, err == nil, err
	}
	// One round trip for the savepoint and all the drops: a statement each was a good part of
	// a small restore. A drop that fails leaves the savepoint made, to roll back to.
	drops := make([]string, len(fks))
	for i, fk := range fks {
		drops[i] = fk.dropSQL()
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT wnb_load_drop_fk; "+strings.Join(drops, "; ")); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load_drop_fk"); err != nil {
				return nil, false, err
			}
			slog.Warn("load: cannot drop foreign keys (not the tables' owner); checking them row by row", "err", pgErr.Message)
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("drop the foreign keys: %w", err)
	}
	return fks, true, nil
}

// foreignKeysSQL lists the foreign keys from and to the tables in the text array tables (a
// parameter or a literal): table, name, definition.
func foreignKeysSQL(tables string) string {
	return `SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
		FROM pg_constraint c
		WHERE c.contype = 'f' AND (c.conrelid = ANY(` + tables + `::regclass[]) OR c.confrelid = ANY(` + tables + `::regclass[]))
		ORDER BY 1, 2`
}

// dropSQL is the statement that drops fk.
func (fk foreignKey) dropSQL() string {
	return fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", fk.table, quote(fk.name))
}

// listForeignKeys lists the foreign keys from and to tables.
func listForeignKeys(ctx context.Context, tx pgx.Tx, tables []string) ([]foreignKey, error) {
	rows, err := tx.Query(ctx, foreignKeysSQL("$1"), oneRoundTrip, tables)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	var fks []foreignKey
	var fk foreignKey
	if _, err := pgx.ForEachRow(rows, []any{&fk.table, &fk.name, &fk.def}, func() error {
		fks = append(fks, fk)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return fks, nil
}

// copySource is a fixture being read and decoded into COPY tuples, ahead of the COPY that
// takes them (at most its read-ahead budget ahead).
type copySource struct {
	src    *pgRowSource
	closer io.Closer
}

// openCopySource opens lf and starts decoding it for p's COPY.
func openCopySource(ctx context.Context, lf LoadFixture, p *loadPlan, cols pgColumns, mode copyMode) (*copySource, error) {
	r, closer, err := openFixture(lf)
	if err != nil {
		return nil, err
	}
	cs := &copySource{src: newPGRowSource(ctx, r, p, cols, mode.merge, mode.ahead), closer: closer}
	if len(p.m2m) > 0 {
		if cs.src.spool, err = newPairSpool(); err != nil {
			cs.Close()
			return nil, fmt.Errorf("load %s: %w", p.m.Label, err)
		}
	}
	return cs, nil
}

// Close stops the decoding and closes the fixture.
func (cs *copySource) Close() {
	cs.src.Close()
	if cs.src.spool != nil {
		cs.src.spool.Close()
	}
	cs.closer.Close()
}

// loadModelPostgres copies one fixture into its table and its M2M pairs into the through
// tables, and returns the number of objects loaded and their largest pk.
func loadModelPostgres(ctx context.Context, tx pgx.Tx, lf LoadFixture, p *loadPlan, cols pgColumns, mode copyMode, names *tableNames) (copied, error) {
	cs, err := openCopySource(ctx, lf, p, cols, mode)
	if err != nil {
		return copied{}, err
	}
	defer cs.Close()
	return copyInto(ctx, tx, cs.src, p, mode, names)
}

// copyInto copies what src decodes into p's table and its M2M pairs into the through tables.
func copyInto(ctx context.Context, tx pgx.Tx, src *pgRowSource, p *loadPlan, mode copyMode, names *tableNames) (copied, error) {
	merge := mode.merge
	target := p.m.Table
	if merge {
		target = "wnb_load_" + p.m.Table
		q := fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA",
			quote(target), quoteList(p.cols), quote(p.m.Table))
		if _, err := tx.Exec(ctx, q); err != nil {
			return copied{}, names.wrap(p.m.Label, "create temporary table", err)
		}
	}
	opts := "FORMAT binary"
	if mode.freeze && !merge {
		// Rows written frozen: no hint-bit writes and no anti-wraparound vacuum of the
		// whole table later. Only allowed into a table truncated in this subtransaction.
		opts += ", FREEZE"
	}
	q := fmt.Sprintf("COPY %s (%s) FROM STDIN (%s)", quote(target), quoteList(p.cols), opts)
	tag, err := copyFrom(ctx, tx, src, q)
	if src.err != nil { // the fixture's fault, whatever the driver made of it
		return copied{}, src.err
	}
	if err != nil && ctx.Err() != nil {
		return copied{}, fmt.Errorf("load %s: copy into %s: %w", p.m.Label, p.m.Table, context.Cause(ctx))
	}
	if err != nil {
		return copied{}, names.wrap(p.m.Label, "copy into "+p.m.Table, err)
	}
	n := tag.RowsAffected()
	if merge {
		set := make([]string, 0, len(p.cols)-1)
		for _, c := range p.cols[1:] {
			set = append(set, quote(c)+" = EXCLUDED."+quote(c))
		}
		action := "DO NOTHING"
		if len(set) > 0 {
			action = "DO UPDATE SET " + strings.Join(set, ", ")
		}
		q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) %s",
			quote(p.m.Table), quoteList(p.cols), quoteList(p.cols), quote(target), quote(p.m.PK.Column), action)
		if _, err := tx.Exec(ctx, q); err != nil {
			return copied{}, names.wrap(p.m.Label, "upsert into "+p.m.Table, err)
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+quote(target)); err != nil {
			return copied{}, names.wrap(p.m.Label, "drop temporary table", err)
		}
	}
	if src.spool == nil {
		return copied{rows: n, maxPK: src.maxPK}, nil
	}
	if err := src.spool.Flush(); err != nil {
		return copied{}, fmt.Errorf("load %s: %w", p.m.Label, err)
	}
	for j, f := range p.m2m {
		if merge {
			// The fixture's list replaces the object's current one, as loaddata's set() does;
			// objects that leave the field out keep theirs.
			owners := "wnb_load_owners"
			if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+owners+" (owner bigint) ON COMMIT DROP"); err != nil {
				return copied{}, names.wrap(p.m.Label, "create temporary table", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{owners}, []string{"owner"}, src.spool.source(spoolOwner, j)); err != nil {
				return copied{}, names.wrap(p.m.Label, "copy many-to-many owners", err)
			}
			q := fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT owner FROM %s)", quote(f.ThroughTable), quote(f.ThroughColumns[0]), owners)
			if _, err := tx.Exec(ctx, q+"; DROP TABLE "+owners); err != nil {
				return copied{}, names.wrap(p.m.Label, "replace many-to-many "+f.Name, err)
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{f.ThroughTable}, f.ThroughColumns, src.spool.source(spoolPair, j)); err != nil {
			return copied{}, names.wrap(p.m.Label, "copy many-to-many "+f.Name+" into "+f.ThroughTable, err)
		}
	}
	return copied{rows: n, maxPK: src.maxPK}, nil
}

// copyFrom runs a COPY ... FROM STDIN statement fed by src. The driver reads its source on a
// goroutine it does not always wait for (a connection lost or cancelled mid-COPY), so src is
// read here, through a pipe, and copyFrom returns only once src is no longer read.
func copyFrom(ctx context.Context, tx pgx.Tx, src *pgRowSource, q string) (pgconn.CommandTag, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := src.WriteTo(pw)
		pw.CloseWithError(err) // nil: EOF
	}()
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, q)
	pr.Close()  // a write still under way fails
	src.Close() // a read waiting for a batch ends
	<-done
	return tag, err
}

// copied is what loadModelPostgres wrote: the model's rows, and the largest pk among them
// (when there are any).
type copied struct {
	rows, maxPK int64
}

// copyMode says how loadModelPostgres writes: Merge upserts through a temporary table;
// freeze copies frozen rows (the table was truncated in this subtransaction).
type copyMode struct {
	merge, freeze bool
	ahead         int64 // bytes read ahead of COPY (0: bytesAhead)
}

func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	return strings.Join(q, ", ")
}

// pgLoadValue checks a decoded value for a column of dataType and converts it for a query
// parameter (the row-by-row paths: merge and selective restores).
func pgLoadValue(dataType string, f *loadField, v any) (any, error) {
	if err := pgCheckValue(dataType, f, v); err != nil {
		return nil, err
	}
	return pgValue(dataType, v)
}

// pgCheckValue checks a decoded value for a column of dataType (f is nil for the pk) for what
// PostgreSQL would refuse without saying which row.
func pgCheckValue(dataType string, f *loadField, v any) error {
	switch x := v.(type) {
	case int64:
		var lo, hi int64 = math.MinInt64, math.MaxInt64
		switch dataType {
		case "integer":
			lo, hi = math.MinInt32, math.MaxInt32
		case "smallint":
			lo, hi = math.MinInt16, math.MaxInt16
		}
		if x < lo || x > hi {
			return fmt.Errorf("%d is out of range for type %s", x, dataType)
		}
	case string:
		if strings.IndexByte(x, 0) >= 0 && (dataType == "text" || dataType == "character varying" || dataType == "character") {
			return errors.New("PostgreSQL text cannot hold NUL characters")
		}
		if f != nil && f.MaxLength > 0 && dataType == "character varying" && len(x) > f.MaxLength {
			if n := utf8.RuneCountInString(x); n > f.MaxLength {
				return fmt.Errorf("%d characters, more than max_length %d", n, f.MaxLength)
			}
		}
	}
	return nil
}

// Spool record kinds.
const (
	spoolPair  = 1 // owner → target of an M2M field
	spoolOwner = 2 // the object gave the M2M field (Merge replaces its list)
)

const spoolRecord = 2 + 8 + 8

// pairSpool keeps many-to-many pairs in a temporary file while the model's COPY runs, so
// memory stays flat however many there are.
type pairSpool struct {
	f   *os.File
	w   *bufio.Writer
	buf [spoolRecord]byte
	err error
}

func newPairSpool() (*pairSpool, error) {
	f, err := os.CreateTemp("", "wnb-load-m2m-*")
	if err != nil {
		return nil, fmt.Errorf("spool many-to-many pairs: %w", err)
	}
	os.Remove(f.Name()) // gone with the last descriptor, even after a crash (Unix)
	return &pairSpool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (s *pairSpool) add(kind byte, field int, owner, target int64) {
	if s.err != nil {
		return
	}
	s.buf[0], s.buf[1] = kind, byte(field)
	binary.LittleEndian.PutUint64(s.buf[2:], uint64(owner))
	binary.LittleEndian.PutUint64(s.buf[10:], uint64(target))
	_, s.err = s.w.Write(s.buf[:])
}

func (s *pairSpool) Flush() error {
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

func (s *pairSpool) Close() error {
	name := s.f.Name()
	err := s.f.Close()
	os.Remove(name)
	return err
}

// source reads the spool's records of one kind and field from the start.
func (s *pairSpool) source(kind byte, field int) pgx.CopyFromSource {
	src := &spoolSource{kind: kind, field: byte(field)}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		src.err = err
	}
	src.r = bufio.NewReaderSize(s.f, 64<<10)
	return src
}

type spoolSource struct {
	r           *bufio.Reader
	kind, field byte
	buf         [spoolRecord]byte
	vals        []any
	err         error
}

func (s *spoolSource) Next() bool {
	for s.err == nil {
		if _, err := io.ReadFull(s.r, s.buf[:]); err != nil {
			if err != io.EOF {
				s.err = fmt.Errorf("read many-to-many spool: %w", err)
			}
			return false
		}
		if s.buf[0] != s.kind || s.buf[1] != s.field {
			continue
		}
		owner := int64(binary.LittleEndian.Uint64(s.buf[2:]))
		if s.kind == spoolOwner {
			s.vals = append(s.vals[:0], owner)
		} else {
			s.vals = append(s.vals[:0], owner, int64(binary.LittleEndian.Uint64(s.buf[10:])))
		}
		return true
	}
	return false
}

func (s *spoolSource) Values() ([]any, error) { return s.vals, nil }
func (s *spoolSource) Err() error             { return s.err }

// tableNames maps tables to what an error message should call them.
type tableNames struct {
	model   map[string]platform.Model // model table → model
	through map[string]throughOf      // auto M2M table → owner and field
}

type throughOf struct {
	m platform.Model
	f platform.Field
}

func newTableNames(plans []*loadPlan) *tableNames {
	n := &tableNames{model: map[string]platform.Model{}, through: map[string]throughOf{}}
	models := append([]platform.Model(nil), platform.Default.Models...)
	for _, p := range plans {
		models = append(models, p.m)
	}
	for _, m := range models {
		n.model[m.Table] = m
		for _, f := range m.ManyToMany() {
			n.through[f.ThroughTable] = throughOf{m, f}
		}
	}
	return n
}

// describe names a table for an error message.
func (n *tableNames) describe(table string) string {
	if m, ok := n.model[table]; ok {
		return m.Label
	}
	if t, ok := n.through[table]; ok {
		return fmt.Sprintf("%s many-to-many field %q (table %s)", t.m.Label, t.f.Name, table)
	}
	return "table " + table
}

var (
	pgKeyDetail  = regexp.MustCompile(`^Key \(([^)]*)\)=\((.*)\) (already exists|is duplicated|is not present in table "([^"]+)"|is still referenced from table "([^"]+)")\.$`)
	pgCopyWhere  = regexp.MustCompile(`COPY [^,]+, line (\d+)`)
	pgFailingRow = regexp.MustCompile(`^Failing row contains \(([^,)]*)`)
)

// wrap turns a PostgreSQL error into one that names the model (from the error's table when
// it has one), the pk when the error's detail gives it, and the constraint.
func (n *tableNames) wrap(label, doing string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if label == "" {
			return fmt.Errorf("load: %s: %w", doing, err)
		}
		return fmt.Errorf("load %s: %s: %w", label, doing, err)
	}
	what := label
	if pgErr.TableName != "" {
		what = n.describe(pgErr.TableName)
	}
	if what == "" {
		what = "database"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load %s", what)
	m, isModel := n.model[pgErr.TableName]
	if d := pgKeyDetail.FindStringSubmatch(pgErr.Detail); d != nil && isModel && d[1] == m.PK.Column {
		fmt.Fprintf(&b, " pk %s", d[2])
	} else if d := pgFailingRow.FindStringSubmatch(pgErr.Detail); d != nil && isModel && (pgErr.Code == "23514" || pgErr.Code == "23502") {
		fmt.Fprintf(&b, " pk %s", d[1]) // the pk is the first column of Django's tables
	}
	if w := pgCopyWhere.FindStringSubmatch(pgErr.Where); w != nil {
		fmt.Fprintf(&b, " (object %s of the fixture)", w[1])
	}
	fmt.Fprintf(&b, ": %s: %s", doing, safeMessage(pgErr))
	if d := n.safeDetail(pgErr); d != "" {
		fmt.Fprintf(&b, ": %s", d)
	}
	if pgErr.ColumnName != "" {
		fmt.Fprintf(&b, " (column %s)", pgErr.ColumnName)
	}
	if pgErr.ConstraintName != "" {
		fmt.Fprintf(&b, " (constraint %s)", pgErr.ConstraintName)
	}
	return &loadError{msg: b.String(), err: err}
}

// pgQuotedValue is the value PostgreSQL quotes at the end of a data exception's message
// (`invalid input syntax for type integer: "abc"`).
var pgQuotedValue = regexp.MustCompile(`: ".*"$`)

// safeMessage is the error's message without the column value some data exceptions quote: a
// load error reaches logs and reports, and a row may hold password hashes and e-mail addresses.
func safeMessage(pgErr *pgconn.PgError) string {
	if strings.HasPrefix(pgErr.Code, "22") {
		return pgQuotedValue.ReplaceAllString(pgErr.Message, "")
	}
	return pgErr.Message
}

// safeDetail is the error's detail when it names only keys: a key of primary-key and
// foreign-key columns keeps its values (ids), any other key (a unique username or e-mail) only
// its columns, and a "Failing row contains (…)" — the whole row — is left out.
func (n *tableNames) safeDetail(pgErr *pgconn.PgError) string {
	d := pgKeyDetail.FindStringSubmatch(pgErr.Detail)
	if d == nil {
		return ""
	}
	if n.idColumns(pgErr.TableName, strings.Split(d[1], ", ")) {
		return pgErr.Detail
	}
	return strings.Replace(pgErr.Detail, "=("+d[2]+")", "", 1)
}

// idColumns reports whether every one of cols in table is a primary key or a foreign key.
func (n *tableNames) idColumns(table string, cols []string) bool {
	m, isModel := n.model[table]
	_, isThrough := n.through[table]
	for _, c := range cols {
		switch {
		case isThrough:
		case isModel && c == m.PK.Column:
		case isModel && slices.ContainsFunc(m.Fields, func(f platform.Field) bool { return f.Column == c && f.To != "" }):
		default:
			return false
		}
	}
	return isModel || isThrough
}

// loadError keeps the driver's error for errors.As while giving a readable message.
type loadError struct {
	msg string
	err error
}

func (e *loadError) Error() string { return e.msg }
func (e *loadError) Unwrap() error { return e.err }

// foreignKeyError explains a failed deferred foreign-key check: after rolling back to the
// savepoint (the loaded rows are still there), it finds the row holding the dangling
// reference. PostgreSQL reports either the referencing row ("Key (book_id)=(9) is not present
// in table books_book") or the referenced one ("Key (id)=(9) is still referenced from table
// books_chapter"), whichever check runs first.
func (n *tableNames) foreignKeyError(ctx context.Context, tx pgx.Tx, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		return n.wrap("", "check foreign keys", err)
	}
	d := pgKeyDetail.FindStringSubmatch(pgErr.Detail)
	if d == nil || strings.Contains(d[1], ",") || d[4] == "" && d[5] == "" {
		return n.wrap("", "check foreign keys", err)
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load_fk"); rerr != nil {
		return n.wrap("", "check foreign keys", err)
	}
	val := d[2]
	var child, col, parent string
	if d[4] != "" {
		child, col, parent = pgErr.TableName, d[1], d[4]
	} else {
		// The error is on the referenced table; the constraint names the referencing column.
		child = d[5]
		_ = tx.QueryRow(ctx, `SELECT a.attname, p.relname FROM pg_constraint c
			JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
			JOIN pg_class p ON p.oid = c.confrelid
			WHERE c.conname = $1 AND c.conrelid = $2::regclass`, pgErr.ConstraintName, quote(child)).Scan(&col, &parent)
	}
	pkCol := ""
	if m, ok := n.model[child]; ok {
		pkCol = m.PK.Column
	} else if t, ok := n.through[child]; ok {
		pkCol = t.f.ThroughColumns[0]
	}
	pk := ""
	if pkCol != "" && col != "" {
		q := fmt.Sprintf("SELECT %s::text FROM %s WHERE %s::text = $1 LIMIT 1", quote(pkCol), quote(child), quote(col))
		_ = tx.QueryRow(ctx, q, val).Scan(&pk)
	}
	return &loadError{msg: n.danglingMessage(child, col, pk, val, parent) + " (constraint " + pgErr.ConstraintName + ")", err: err}
}

// danglingMessage describes a row of child whose column col (= val) has no row in parent;
// pk is the row's pk (for an M2M table, its owner's), "" when unknown.
func (n *tableNames) danglingMessage(child, col, pk, val, parent string) string {
	target := n.describe(parent)
	if m, ok := n.model[parent]; ok {
		target = fmt.Sprintf("%s (table %s)", m.Label, parent)
	}
	where := ""
	if t, ok := n.through[child]; ok {
		where = t.m.Label
		if pk != "" {
			where += " pk " + pk
		}
		return fmt.Sprintf("load: foreign key check failed, nothing was changed: %s: many-to-many field %q lists %s, but %s has no row with that id after the load",
			where, t.f.Name, val, target)
	}
	where, field := n.describe(child), col
	if m, ok := n.model[child]; ok {
		for _, f := range m.Fields {
			if f.Column == col {
				field = f.Name
			}
		}
	}
	if pk != "" {
		where += " pk " + pk
	}
	return fmt.Sprintf("load: foreign key check failed, nothing was changed: %s: field %q = %s, but %s has no row with that id after the load",
		where, field, val, target)
}
