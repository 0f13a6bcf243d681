package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// UpsertModel is one model of a selective merge.
type UpsertModel struct {
	Model platform.Model
	// Open returns the model's fixture; the objects Keep accepts are upserted by pk (their
	// many-to-many lists are not used: Links says which pairs to add).
	Open func() (io.ReadCloser, error)
	Keep func(pk int64) bool
	// Links are the many-to-many pairs (owner pk, target pk) to add, by field name; a pair
	// the through table holds already is left as it is.
	Links map[string][][2]int64
	// Relinks are foreign keys to set back, by field name: (row pk, target pk); a row whose
	// field is no longer NULL (someone set it since) is left as it is.
	Relinks map[string][][2]int64
}

// Upsert writes a selection of rows in one transaction: each kept object is inserted, or
// updated where its pk exists; links are added; no other row is changed or deleted. Foreign
// keys are checked before the commit (an error names the row), and PostgreSQL sequences are
// moved past the written ids (SQLite's AUTOINCREMENT follows explicit ids by itself). Any
// failure leaves the database as it was.
func (db *DB) Upsert(ctx context.Context, models []UpsertModel) ([]LoadedModel, error) {
	plans := make([]*loadPlan, len(models))
	for i, um := range models {
		p, err := newLoadPlan(um.Model)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", um.Model.Label, err)
		}
		plans[i] = p
	}
	if db.pool != nil {
		return db.upsertPostgres(ctx, models, plans)
	}
	out, err := db.upsertSQLite(ctx, models, plans)
	return out, db.lockError(err, "restore the selected rows", 0)
}

// rowWriter is one engine's statements inside the upsert's transaction.
type rowWriter struct {
	exec func(ctx context.Context, q string, args []any) error
	// conv converts a decoded value of plan i's column c for the engine.
	conv func(i, c int, v any) (any, error)
	// count returns a table's row count.
	count func(ctx context.Context, table string) (int64, error)
}

// upsertAll writes every model's kept rows, then the links.
func upsertAll(ctx context.Context, w rowWriter, models []UpsertModel, plans []*loadPlan) ([]LoadedModel, error) {
	out := make([]LoadedModel, len(models))
	for i, um := range models {
		out[i].Label = um.Model.Label
		before, err := w.count(ctx, um.Model.Table)
		if err != nil {
			return nil, fmt.Errorf("restore %s: count rows: %w", um.Model.Label, err)
		}
		out[i].Before = before
		if out[i].Rows, err = upsertModel(ctx, w, i, um, plans[i]); err != nil {
			return nil, err
		}
	}
	for i, um := range models {
		for _, f := range plans[i].m2m {
			q := fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (?, ?) ON CONFLICT DO NOTHING",
				quote(f.ThroughTable), quote(f.ThroughColumns[0]), quote(f.ThroughColumns[1]))
			for _, l := range um.Links[f.Name] {
				if err := w.exec(ctx, q, []any{l[0], l[1]}); err != nil {
					return nil, fmt.Errorf("restore %s pk %d: many-to-many %s → %d: %w", um.Model.Label, l[0], f.Name, l[1], err)
				}
			}
		}
	}
	return out, relinkAll(ctx, w, models, plans)
}

// relinkAll sets back the foreign keys that a deletion of the restored rows set to NULL.
func relinkAll(ctx context.Context, w rowWriter, models []UpsertModel, plans []*loadPlan) error {
	for i, um := range models {
		for _, f := range plans[i].fields {
			q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ? AND %s IS NULL",
				quote(um.Model.Table), quote(f.Column), quote(um.Model.PK.Column), quote(f.Column))
			for _, l := range um.Relinks[f.Name] {
				if err := w.exec(ctx, q, []any{l[1], l[0]}); err != nil {
					return fmt.Errorf("restore %s pk %d: set %s back to %d: %w", um.Model.Label, l[0], f.Name, l[1], err)
				}
			}
		}
	}
	return nil
}

// upsertModel streams one fixture and upserts the kept objects.
func upsertModel(ctx context.Context, w rowWriter, i int, um UpsertModel, p *loadPlan) (int64, error) {
	rc, err := um.Open()
	if err != nil {
		return 0, fmt.Errorf("restore %s: open fixture: %w", um.Model.Label, err)
	}
	defer rc.Close()
	r := fixture.NewReader(rc)
	set := make([]string, 0, len(p.cols)-1)
	for _, c := range p.cols[1:] {
		set = append(set, quote(c)+" = excluded."+quote(c))
	}
	action := "DO NOTHING"
	if len(set) > 0 {
		action = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) %s", quote(p.m.Table), quoteList(p.cols),
		strings.TrimSuffix(strings.Repeat("?, ", len(p.cols)), ", "), quote(p.m.PK.Column), action)
	row := p.newRow()
	args := make([]any, len(p.cols))
	var n int64
	for {
		obj, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("restore %s: %w", um.Model.Label, err)
		}
		if pk, err := decodeInt(obj.PK); err == nil && um.Keep != nil && !um.Keep(pk) {
			continue // not written: not worth decoding
		}
		if err := p.decode(&obj, row); err != nil {
			return 0, err
		}
		for c, v := range row.vals {
			if args[c], err = w.conv(i, c, v); err != nil {
				return 0, &RowError{Model: um.Model.Label, PK: strconv.FormatInt(row.pk, 10), Err: err}
			}
		}
		if err := w.exec(ctx, q, args); err != nil {
			return 0, &RowError{Model: um.Model.Label, PK: strconv.FormatInt(row.pk, 10), Err: err}
		}
		n++
	}
}

// numbered turns ? placeholders into PostgreSQL's $1, $2, ...
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// upsertPostgres runs the upsert in one transaction with deferred constraints.
func (db *DB) upsertPostgres(ctx context.Context, models []UpsertModel, plans []*loadPlan) ([]LoadedModel, error) {
	colTypes, err := db.planColumnTypes(ctx, plans)
	if err != nil {
		return nil, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore the selected rows: %w", err)
	}
	defer conn.Release()
	self := conn.Conn().PgConn().PID()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore the selected rows: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
		return nil, fmt.Errorf("restore the selected rows: %w", err)
	}
	names := newTableNames(plans)
	w := rowWriter{
		exec: func(ctx context.Context, q string, args []any) error {
			_, err := tx.Exec(ctx, numbered(q), args...)
			return err
		},
		conv: func(i, c int, v any) (any, error) {
			var f *loadField
			if c > 0 {
				f = &plans[i].fields[c-1]
			}
			return pgLoadValue(colTypes[i].types[c], f, v)
		},
		count: func(ctx context.Context, table string) (n int64, err error) {
			err = tx.QueryRow(ctx, "SELECT count(*) FROM "+quote(table)).Scan(&n)
			return n, err
		},
	}
	out, err := upsertAll(ctx, w, models, plans)
	if err != nil {
		return nil, db.lockError(err, "restore the selected rows", self, loadTables(plans)...)
	}
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
		return nil, names.foreignKeyError(ctx, tx, err)
	}
	if err := advanceSequences(ctx, tx, plans); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, names.wrap("", "commit", err)
	}
	return out, nil
}

// advanceSequences moves each model's id sequence past its largest id, never back: rows
// created meanwhile keep their ids, and the next insert cannot collide with a restored one.
func advanceSequences(ctx context.Context, tx pgx.Tx, plans []*loadPlan) error {
	for _, p := range plans {
		var seq *string
		if err := tx.QueryRow(ctx, "SELECT pg_get_serial_sequence($1, $2)", quote(p.m.Table), p.m.PK.Column).Scan(&seq); err != nil {
			return fmt.Errorf("restore %s: find the id sequence: %w", p.m.Label, err)
		}
		if seq == nil {
			continue
		}
		q := fmt.Sprintf(`SELECT setval($1::regclass, m) FROM (SELECT max(%s) AS m FROM %s) t, %s s
			WHERE m IS NOT NULL AND m >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END`,
			quote(p.m.PK.Column), quote(p.m.Table), *seq)
		if _, err := tx.Exec(ctx, q, *seq); err != nil {
			return fmt.Errorf("restore %s: move the id sequence %s: %w", p.m.Label, *seq, err)
		}
	}
	return nil
}

// upsertSQLite runs the upsert in one BEGIN IMMEDIATE transaction, foreign keys deferred and
// checked before the commit.
func (db *DB) upsertSQLite(ctx context.Context, models []UpsertModel, plans []*loadPlan) (out []LoadedModel, err error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore the selected rows: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("restore the selected rows: begin: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		if _, rerr := conn.ExecContext(context.Background(), "ROLLBACK"); rerr != nil && !strings.Contains(rerr.Error(), "no transaction is active") {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if _, err := conn.ExecContext(ctx, "PRAGMA defer_foreign_keys = ON"); err != nil {
		return nil, fmt.Errorf("restore the selected rows: defer foreign keys: %w", err)
	}
	w := sqliteWriter(conn, plans)
	if out, err = upsertAll(ctx, w, models, plans); err != nil {
		return nil, err
	}
	if err := foreignKeyCheckSQLite(ctx, conn, plans); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("restore the selected rows: commit: %w", err)
	}
	committed = true
	return out, nil
}

func sqliteWriter(conn *sql.Conn, plans []*loadPlan) rowWriter {
	return rowWriter{
		exec: func(ctx context.Context, q string, args []any) error {
			_, err := conn.ExecContext(ctx, q, args...)
			return err
		},
		conv: func(i, c int, v any) (any, error) {
			k := kindInt
			if c > 0 {
				k = plans[i].fields[c-1].kind
			}
			return sqliteLoadValue(k, v), nil
		},
		count: func(ctx context.Context, table string) (n int64, err error) {
			err = conn.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(table)).Scan(&n)
			return n, err
		},
	}
}
