package database

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// minPoolConns lets several export workers share one DB.
const minPoolConns = 8

// readBuffer is the bytes a connection reads from its socket at once. pgx reads 8 KiB, the
// server's send buffer; an export reads hundreds of MB as fast as the server writes them, and
// a larger read takes what has piled up in one system call instead of several.
const readBuffer = 64 << 10

// applicationName names this tool's sessions in pg_stat_activity unless the URL names them.
const applicationName = "webnovel-backup"

func openPostgres(ctx context.Context, src Source, o Options, fell func()) (*pgxpool.Pool, *plainAfterRefusal, error) {
	cfg, err := pgxpool.ParseConfig(src.DSN)
	if err != nil {
		return nil, nil, err
	}
	// Exports parse the server's text output: pin the formats they rely on.
	rp := cfg.ConnConfig.RuntimeParams
	rp["timezone"] = "UTC"
	rp["datestyle"] = "ISO, YMD"
	rp["intervalstyle"] = "postgres"
	// Every lock any statement waits for (the load's, the snapshot's, the plan's, the
	// exports') fails after lockTimeout instead of queueing the application behind it.
	rp["lock_timeout"] = strconv.FormatInt(max(o.lockTimeout().Milliseconds(), 1), 10)
	if rp["application_name"] == "" {
		rp["application_name"] = applicationName
	}
	if cfg.MaxConns < minPoolConns {
		cfg.MaxConns = minPoolConns
	}
	// The bytes are copied once more (from this buffer into pgx's), for a quarter of the
	// system calls on a long export.
	cfg.ConnConfig.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, readBuffer), w)
	}
	guardSilence(cfg.ConnConfig, o.silence(), fell)
	memo := newPlainAfterRefusal(cfg.ConnConfig)
	memo.install(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
			return nil, nil, fmt.Errorf("database %q does not exist", cfg.ConnConfig.Database)
		}
		return nil, nil, err
	}
	return pool, memo, nil
}

func (db *DB) applySchemaPostgres(ctx context.Context) (created bool, err error) {
	var exists bool
	if err := db.pool.QueryRow(ctx, "SELECT to_regclass('accounts_user') IS NOT NULL").Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	// The pg_dump script empties search_path for its session: run it on a connection of its
	// own that never returns to the pool.
	conn := c.Hijack()
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, platform.SchemaPostgres)
	return err == nil, err
}

// columnTypes returns data_type by column for a table of the current schema.
func (db *DB) columnTypes(ctx context.Context, table string) (map[string]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		types[name] = typ
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("table %s does not exist", table)
	}
	return types, nil
}

func (db *DB) bulkInsertPostgres(ctx context.Context, table string, columns []string, next func() ([]any, bool)) (int64, error) {
	types, err := db.columnTypes(ctx, table)
	if err != nil {
		return 0, err
	}
	colTypes := make([]string, len(columns))
	for i, c := range columns {
		t, ok := types[c]
		if !ok {
			return 0, fmt.Errorf("table %s has no column %s", table, c)
		}
		colTypes[i] = t
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	var rowNum int64
	src := pgx.CopyFromFunc(func() ([]any, error) {
		row, ok := next()
		if !ok {
			return nil, nil
		}
		rowNum++
		if len(row) != len(columns) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", rowNum, len(row), len(columns))
		}
		for i, v := range row {
			cv, err := pgValue(colTypes[i], v)
			if err != nil {
				return nil, fmt.Errorf("row %d column %s: %w", rowNum, columns[i], err)
			}
			row[i] = cv
		}
		return row, nil
	})
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, src)
	if err != nil {
		return 0, err
	}
	if _, ok := types["id"]; ok {
		// What loaddata does (sequence_reset_sql), so the next insert gets max(id)+1.
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence($1, 'id'), coalesce(max("id"), 1), max("id") IS NOT null) FROM %s`, quote(table))
		if _, err := tx.Exec(ctx, q, quote(table)); err != nil {
			return 0, fmt.Errorf("reset id sequence: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// pgValue converts a BulkInsert value to what pgx encodes for a column of dataType
// (information_schema.columns.data_type).
func pgValue(dataType string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch dataType {
	case "numeric":
		if s, ok := v.(string); ok {
			var n pgtype.Numeric
			if err := n.Scan(s); err != nil {
				return nil, fmt.Errorf("decimal %q: %w", s, err)
			}
			return n, nil
		}
	case "interval":
		switch x := v.(type) {
		case int64:
			return pgtype.Interval{Microseconds: x, Valid: true}, nil
		case time.Duration:
			return pgtype.Interval{Microseconds: x.Microseconds(), Valid: true}, nil
		}
	case "uuid":
		if s, ok := v.(string); ok {
			var u pgtype.UUID
			if err := u.Scan(s); err != nil {
				return nil, fmt.Errorf("UUID %q: %w", s, err)
			}
			return u, nil
		}
	case "timestamp with time zone", "timestamp without time zone":
		if s, ok := v.(string); ok {
			return parseDateTime([]byte(s))
		}
	case "date":
		if s, ok := v.(string); ok {
			t, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return nil, fmt.Errorf("date %q: %w", s, err)
			}
			return t, nil
		}
	case "json", "jsonb":
		if b, ok := v.([]byte); ok {
			return string(b), nil
		}
	}
	return v, nil
}

func (db *DB) liveColumnsPostgres(ctx context.Context) (map[string]map[string]bool, error) {
	cols, err := tablesColumns(ctx, db.pool, nil)
	if err != nil {
		return nil, err
	}
	db.checked.Store(&checkedColumns{cols: cols, at: time.Now()})
	live := make(map[string]map[string]bool, len(cols))
	for table, byName := range cols {
		live[table] = make(map[string]bool, len(byName))
		for name := range byName {
			live[table][name] = true
		}
	}
	return live, nil
}

// pgSnapshot is the coordinator's transaction whose snapshot the exports import.
type pgSnapshot struct {
	db   *DB
	conn *pgx.Conn
	tx   pgx.Tx
	// release gives a forked planner's connection back to the pool (nil: the connection is
	// the snapshot's own, closed with it).
	release func()
}

// forkPostgres opens one more transaction in s's snapshot, on a pool connection: a planner
// of its own, so that several tables are counted at once.
func (s *Snapshot) forkPostgres(ctx context.Context) (*Snapshot, error) {
	if !validSnapshotID(s.id) {
		return nil, fmt.Errorf("invalid PostgreSQL snapshot id %q", s.id)
	}
	conn, err := s.db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		// Must be the transaction's first statement.
		if _, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+s.id+"'"); err != nil {
			tx.Rollback(context.Background())
		}
	}
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("import snapshot %s: %w", s.id, err)
	}
	return &Snapshot{db: s.db, id: s.id, pg: &pgSnapshot{db: s.db, conn: conn.Conn(), tx: tx, release: conn.Release}}, nil
}

// tableSizes returns the pages each of tables holds, as the server last estimated them (0
// for one it has no estimate of): what the planners take the tables in the order of.
func (s *pgSnapshot) tableSizes(ctx context.Context, tables []string) ([]int64, error) {
	if s.tx == nil {
		return nil, errors.New("snapshot is closed")
	}
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = quote(t)
	}
	rows, err := s.tx.Query(ctx, `SELECT coalesce((SELECT relpages FROM pg_class WHERE oid = to_regclass(t)), 0)::bigint
		FROM unnest($1::text[]) WITH ORDINALITY u(t, i) ORDER BY i`, quoted)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func (db *DB) beginSnapshotPostgres(ctx context.Context) (*Snapshot, error) {
	// A connection of its own: held for the whole run, it must not take a pool slot.
	conn, err := db.plain.connect(ctx, db.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	var id string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return &Snapshot{db: db, id: id, pg: &pgSnapshot{db: db, conn: conn, tx: tx}}, nil
}

func (s *pgSnapshot) plan(ctx context.Context, m platform.Model, chunk int) (int64, []int64, error) {
	if s.tx == nil {
		return 0, nil, errors.New("snapshot is closed")
	}
	var total int64
	if err := s.tx.QueryRow(ctx, "SELECT count(*) FROM "+quote(m.Table)).Scan(&total); err != nil {
		// The snapshot's own locks are not the holder's.
		return 0, nil, s.db.lockError(err, "count rows", s.conn.PgConn().PID(), m.Table)
	}
	if total <= int64(chunk) {
		return total, nil, nil
	}
	pk := quote(m.PK.Column)
	rows, err := s.tx.Query(ctx, fmt.Sprintf(`SELECT pk FROM (SELECT %s AS pk, row_number() OVER (ORDER BY %s) AS n FROM %s) s
		WHERE n %% $1 = 0 AND n < $2 ORDER BY pk`, pk, pk, quote(m.Table)), int64(chunk), total)
	if err != nil {
		return 0, nil, err
	}
	bounds, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return total, bounds, err
}

func (s *pgSnapshot) close() error {
	if s.tx == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.tx.Rollback(ctx)
	if s.release != nil {
		if err != nil {
			s.conn.Close(ctx) // a connection left in a transaction must not go back to the pool
		}
		s.release()
		s.tx, s.conn = nil, nil
		return err
	}
	if cerr := s.conn.Close(ctx); err == nil {
		err = cerr
	}
	s.tx, s.conn = nil, nil
	return err
}

// validSnapshotID reports whether id looks like a pg_export_snapshot() name
// ("00000003-0000001B-1"), so it can be written into SET TRANSACTION SNAPSHOT.
func validSnapshotID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// exportSetup is what begins an export's transaction, in one round trip: a read-only
// REPEATABLE READ transaction in the run's snapshot, with the formats the text decoders rely on.
func exportSetup(snapshotID string) (string, error) {
	begin := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
	setup := "SET LOCAL TIME ZONE 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'"
	if snapshotID == "" {
		return begin + setup, nil
	}
	if !validSnapshotID(snapshotID) {
		return "", fmt.Errorf("invalid PostgreSQL snapshot id %q", snapshotID)
	}
	// Must be the transaction's first statement.
	return begin + "SET TRANSACTION SNAPSHOT '" + snapshotID + "'; " + setup, nil
}

func (db *DB) exportPostgres(ctx context.Context, snapshotID string, p *exportPlan, r Range, out *fixture.Writer) (n int64, err error) {
	setup, err := exportSetup(snapshotID)
	if err != nil {
		return 0, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	// A connection released inside its transaction (after an error) is closed by the pool,
	// never reused.
	defer conn.Release()
	pc := conn.Conn().PgConn()
	self := pc.PID()
	defer func() { err = db.lockError(err, "read rows", self, modelTables(p.m)...) }()
	if _, err := pc.Exec(ctx, setup).ReadAll(); err != nil {
		return 0, fmt.Errorf("import snapshot %s: %w", snapshotID, err)
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rr, err := db.queryRange(qctx, pc, p, r)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 4096)
	for rr.NextRow() {
		// In place in the writer's buffer when the layout allows: one copy of each row less.
		if dst, direct := out.ObjectBuffer(); direct {
			if dst, err = p.appendPGRow(dst, rr.Values()); err == nil {
				err = out.CommitObject(dst)
			}
		} else if buf, err = p.appendPGRow(buf[:0], rr.Values()); err == nil {
			err = out.WriteObject(buf)
		}
		if err != nil {
			cancel() // do not read the rest of the table
			rr.Close()
			return n, err
		}
		n++
	}
	if _, err := rr.Close(); err != nil {
		return n, err
	}
	_, err = pc.Exec(ctx, "COMMIT").ReadAll()
	return n, err
}

// queryRange starts the query of p's rows in r, its results straight off the wire (no
// per-value allocation), formatted as they come. Columns whose binary form is cheaper for the
// server to write come in binary: the query is described once per shape and run, and each
// result's columns are checked against that description.
func (db *DB) queryRange(ctx context.Context, pc *pgconn.PgConn, p *exportPlan, r Range) (*pgconn.ResultReader, error) {
	q, args := p.query(r, func(i int) string { return "$" + strconv.Itoa(i) })
	params := make([][]byte, len(args))
	oids := make([]uint32, len(args))
	for i, a := range args {
		params[i] = strconv.AppendInt(nil, a, 10)
		oids[i] = pgtype.Int8OID
	}
	fields, _ := db.described.Load(q)
	for range 2 {
		if fields == nil {
			sd, err := pc.Prepare(ctx, "", q, oids)
			if err != nil {
				return nil, err
			}
			fields = sd.Fields
			db.described.Store(q, fields)
		}
		formats, err := p.setFormats(fields.([]pgconn.FieldDescription), pc.ParameterStatus("integer_datetimes") == "off")
		if err != nil {
			return nil, err
		}
		rr := pc.ExecParams(ctx, q, params, oids, nil, formats)
		got := rr.FieldDescriptions()
		if got == nil || sameTypes(got, fields.([]pgconn.FieldDescription)) {
			return rr, nil
		}
		// A column changed type since the query was described: its values came in a
		// format chosen for the old type, so the result is read again, described afresh.
		if _, err := rr.Close(); err != nil {
			return nil, err
		}
		fields = nil
	}
	return nil, fmt.Errorf("the columns of %s keep changing type", p.m.Table)
}

// sameTypes reports whether two descriptions of a result have the same column types.
func sameTypes(a, b []pgconn.FieldDescription) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].DataTypeOID != b[i].DataTypeOID {
			return false
		}
	}
	return true
}
