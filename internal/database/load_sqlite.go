package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// loadSQLite loads on one connection in one BEGIN IMMEDIATE transaction with prepared
// statements. Foreign keys are deferred (PRAGMA defer_foreign_keys) and checked with
// PRAGMA foreign_key_check before COMMIT, for an error that names the row.
func (db *DB) loadSQLite(ctx context.Context, fixtures []LoadFixture, plans []*loadPlan, o LoadOptions) (out []LoadedModel, err error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer conn.Close()
	// IMMEDIATE takes the write lock now: a deferred transaction could fail to upgrade its
	// read lock halfway through the load.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("load: begin: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// SQLite may have rolled back by itself (an interrupted statement does that).
		_, rerr := conn.ExecContext(context.Background(), "ROLLBACK")
		if rerr != nil && !strings.Contains(rerr.Error(), "no transaction is active") {
			// Never hand a connection still inside the transaction back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	// Reset by SQLite at the end of the transaction.
	if _, err := conn.ExecContext(ctx, "PRAGMA defer_foreign_keys = ON"); err != nil {
		return nil, fmt.Errorf("load: defer foreign keys: %w", err)
	}

	out = make([]LoadedModel, len(plans))
	for i, p := range plans {
		out[i].Label = p.m.Label
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(p.m.Table)).Scan(&out[i].Before); err != nil {
			return nil, fmt.Errorf("load %s: count rows: %w", p.m.Label, err)
		}
	}
	if !o.Merge {
		for i := len(plans) - 1; i >= 0; i-- {
			p := plans[i]
			for _, f := range p.m2m {
				if _, err := conn.ExecContext(ctx, "DELETE FROM "+quote(f.ThroughTable)); err != nil {
					return nil, fmt.Errorf("load %s: empty %s: %w", p.m.Label, f.ThroughTable, err)
				}
			}
			if _, err := conn.ExecContext(ctx, "DELETE FROM "+quote(p.m.Table)); err != nil {
				return nil, fmt.Errorf("load %s: empty %s: %w", p.m.Label, p.m.Table, err)
			}
		}
	}
	for i, p := range plans {
		if out[i].Rows, err = loadModelSQLite(ctx, conn, fixtures[i], p, o.Merge); err != nil {
			return nil, err
		}
	}
	for _, p := range plans {
		seqs := [][2]string{{p.m.Table, p.m.PK.Column}}
		for _, f := range p.m2m {
			seqs = append(seqs, [2]string{f.ThroughTable, "id"})
		}
		for _, s := range seqs {
			// AUTOINCREMENT tracks explicit ids itself; this also covers a sqlite_sequence
			// row left behind a lower value.
			q := fmt.Sprintf(`UPDATE sqlite_sequence SET seq = (SELECT max(%[2]s) FROM %[1]s)
				WHERE name = ? AND seq < (SELECT max(%[2]s) FROM %[1]s)`, quote(s[0]), quote(s[1]))
			if _, err := conn.ExecContext(ctx, q, s[0]); err != nil && !strings.Contains(err.Error(), "no such table") {
				return nil, fmt.Errorf("load %s: update sqlite_sequence: %w", p.m.Label, err)
			}
		}
	}
	if err := foreignKeyCheckSQLite(ctx, conn, plans); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("load: commit: %w", err)
	}
	committed = true
	return out, nil
}

// loadModelSQLite inserts one fixture's objects and their M2M pairs.
func loadModelSQLite(ctx context.Context, conn *sql.Conn, lf LoadFixture, p *loadPlan, merge bool) (int64, error) {
	r, closer, err := openFixture(lf)
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	st, err := prepareSQLite(ctx, conn, p, merge)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", p.m.Label, err)
	}
	defer st.close()
	// Rows run without ctx, which costs a goroutine per statement in the driver; ctx is
	// polled instead.
	rowCtx := context.WithoutCancel(ctx)
	row := p.newRow()
	args := make([]any, len(p.cols))
	var n int64
	for ; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("load %s: %w", p.m.Label, err)
			}
		}
		obj, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("load %s: %w", p.m.Label, err)
		}
		if err := p.decode(&obj, row); err != nil {
			return 0, err
		}
		if err := st.insertRow(rowCtx, p, row, args, merge); err != nil {
			return 0, &RowError{Model: p.m.Label, PK: strconv.FormatInt(row.pk, 10), Err: err}
		}
	}
}

// sqliteStmts are one model's prepared statements: its insert (an upsert when merging), and
// per M2M field the insert of a pair and, when merging, the delete of an object's pairs.
type sqliteStmts struct {
	insert    *sql.Stmt
	m2mInsert []*sql.Stmt
	m2mDelete []*sql.Stmt
}

// prepareSQLite prepares p's statements.
func prepareSQLite(ctx context.Context, conn *sql.Conn, p *loadPlan, merge bool) (st *sqliteStmts, err error) {
	st = &sqliteStmts{m2mInsert: make([]*sql.Stmt, len(p.m2m)), m2mDelete: make([]*sql.Stmt, len(p.m2m))}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.insert, err = conn.PrepareContext(ctx, sqliteInsertSQL(p, merge)); err != nil {
		return nil, err
	}
	for j, f := range p.m2m {
		q := fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (?, ?)", quote(f.ThroughTable), quote(f.ThroughColumns[0]), quote(f.ThroughColumns[1]))
		if st.m2mInsert[j], err = conn.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		if merge {
			q := fmt.Sprintf("DELETE FROM %s WHERE %s = ?", quote(f.ThroughTable), quote(f.ThroughColumns[0]))
			if st.m2mDelete[j], err = conn.PrepareContext(ctx, q); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// sqliteInsertSQL is p's insert: an upsert by primary key when merging, as loaddata does.
func sqliteInsertSQL(p *loadPlan, merge bool) string {
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", quote(p.m.Table), quoteList(p.cols),
		strings.TrimSuffix(strings.Repeat("?, ", len(p.cols)), ", "))
	if !merge {
		return q
	}
	set := make([]string, 0, len(p.cols)-1)
	for _, c := range p.cols[1:] {
		set = append(set, quote(c)+" = excluded."+quote(c))
	}
	if len(set) == 0 {
		return q + fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", quote(p.m.PK.Column))
	}
	return q + fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", quote(p.m.PK.Column), strings.Join(set, ", "))
}

// close closes the statements prepared.
func (st *sqliteStmts) close() {
	for _, s := range append(append([]*sql.Stmt{st.insert}, st.m2mInsert...), st.m2mDelete...) {
		if s != nil {
			s.Close()
		}
	}
}

// insertRow inserts one decoded row and the M2M pairs its fixture object lists (replacing the
// object's pairs when merging); args is scratch space of one value per column.
func (st *sqliteStmts) insertRow(ctx context.Context, p *loadPlan, row *loadRow, args []any, merge bool) error {
	for i, v := range row.vals {
		k := kindInt
		if i > 0 {
			k = p.fields[i-1].kind
		}
		args[i] = sqliteLoadValue(k, v)
	}
	if _, err := st.insert.ExecContext(ctx, args...); err != nil {
		return err
	}
	for j, pks := range row.m2m {
		if !row.seen[j] {
			continue
		}
		if merge {
			if _, err := st.m2mDelete[j].ExecContext(ctx, row.pk); err != nil {
				return fmt.Errorf("field %q: %w", p.m2m[j].Name, err)
			}
		}
		for _, t := range pks {
			if _, err := st.m2mInsert[j].ExecContext(ctx, row.pk, t); err != nil {
				return fmt.Errorf("field %q: %d: %w", p.m2m[j].Name, t, err)
			}
		}
	}
	return nil
}

// sqliteLoadValue converts a decoded value to what Django stores in SQLite: bools as 0/1,
// datetimes as UTC text, UUIDs as 32 hex digits, JSON as json.dumps text, decimals as text
// that the column's NUMERIC affinity turns into REAL or INTEGER, durations as microseconds.
func sqliteLoadValue(k kind, v any) any {
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case time.Time:
		if k == kindDate {
			return x.Format(time.DateOnly)
		}
		return pyDateTime(x)
	case string:
		if k == kindUUID {
			return strings.ReplaceAll(x, "-", "")
		}
	case []byte:
		return string(asciiJSON(x))
	}
	return v
}

// foreignKeyCheckSQLite reports the first foreign-key violation that involves a loaded table
// (as the referencing or the referenced table), naming the row.
func foreignKeyCheckSQLite(ctx context.Context, conn *sql.Conn, plans []*loadPlan) error {
	touched := map[string]bool{}
	for _, p := range plans {
		touched[p.m.Table] = true
		for _, f := range p.m2m {
			touched[f.ThroughTable] = true
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT "table", rowid, parent, fkid FROM pragma_foreign_key_check`)
	if err != nil {
		return fmt.Errorf("load: foreign key check: %w", err)
	}
	var (
		found         bool
		table, parent string
		rowid         sql.NullInt64
		fkid          int64
	)
	for rows.Next() {
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return fmt.Errorf("load: foreign key check: %w", err)
		}
		if touched[table] || touched[parent] {
			found = true
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load: foreign key check: %w", err)
	}
	if !found {
		return nil
	}
	names := newTableNames(plans)
	var col string
	_ = conn.QueryRowContext(ctx, `SELECT "from" FROM pragma_foreign_key_list(?) WHERE id = ? ORDER BY seq LIMIT 1`, table, fkid).Scan(&col)
	var pk, val string
	pkCol := "rowid"
	if m, ok := names.model[table]; ok {
		pkCol = m.PK.Column
	} else if t, ok := names.through[table]; ok {
		pkCol = t.f.ThroughColumns[0]
	}
	if col != "" && rowid.Valid {
		q := fmt.Sprintf("SELECT CAST(%s AS TEXT), CAST(%s AS TEXT) FROM %s WHERE rowid = ?", quote(pkCol), quote(col), quote(table))
		_ = conn.QueryRowContext(ctx, q, rowid.Int64).Scan(&pk, &val)
	}
	return errors.New(names.danglingMessage(table, col, pk, val, parent) + " (foreign key " + table + "." + col + " → " + parent + ")")
}
