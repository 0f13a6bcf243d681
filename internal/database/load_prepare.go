package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A parallel load's preparation is a chain of statements before its first COPY, and each
// round trip waits for the client to be scheduled again, while the fixtures' check hashes on
// every core: statement by statement it was a dozen waits. It is sent as two multi-statement
// queries instead (simple protocol, values written as literals: each statement is analysed
// as it runs, so one may write to the table an earlier one created): survey (lock, row counts, foreign keys, indexes) and
// dropAndMark (the drops and the marker). A rerun after an unfinished load reads its marker
// first, and a drop the server refuses goes back to the statement-by-statement path, which
// says what it does about it.

// survey is what the preparation reads under its locks.
type survey struct {
	marked  bool    // an unfinished load left its marker: counts is nil
	counts  []int64 // the rows of each of the load's tables
	fks     []foreignKey
	indexes []indexDrop
}

// indexDrop is an index or key constraint to drop and the statement that creates it again.
type indexDrop struct{ drop, def string }

// survey locks the load's tables and reads, in one round trip, whether an unfinished load
// left its marker, the tables' row counts (none when it did: the marker's tables are not
// counted, a rerun empties them), and their foreign keys and indexes.
func (l *parallelLoad) survey(ctx context.Context, tx pgx.Tx) (survey, error) {
	quoted := make([]string, len(l.tables))
	counts := make([]string, len(l.tables))
	marked := "to_regclass(" + literal(markerTable) + ") IS NOT NULL"
	for i, t := range l.tables {
		quoted[i] = literal(t)
		// An uncorrelated condition: the server tests it once, and scans nothing if false.
		counts[i] = "(SELECT count(*) FROM " + t + " WHERE NOT " + marked + ")"
	}
	array := "ARRAY[" + strings.Join(quoted, ", ") + "]::text[]"
	results, err := tx.Conn().PgConn().Exec(ctx, strings.Join([]string{
		"LOCK TABLE " + strings.Join(l.tables, ", ") + " IN EXCLUSIVE MODE",
		"SELECT " + marked,
		"SELECT ARRAY[" + strings.Join(counts, ", ") + "]::int8[]",
		foreignKeysSQL(array),
		indexesSQL(array),
	}, ";\n")).ReadAll()
	if err != nil {
		return survey{}, fmt.Errorf("load: lock and read the tables: %w", err)
	}
	return l.readSurvey(results)
}

// readSurvey reads survey's results: the lock's, then a value or rows each.
func (l *parallelLoad) readSurvey(results []*pgconn.Result) (survey, error) {
	var s survey
	if len(results) != 5 || !oneValue(results[1]) || !oneValue(results[2]) {
		return s, fmt.Errorf("load: read the tables: %d results, not 5 with a value each", len(results))
	}
	s.marked = string(results[1].Rows[0][0]) == "t"
	if !s.marked {
		if err := pgtype.NewMap().Scan(pgtype.Int8ArrayOID, pgtype.TextFormatCode, results[2].Rows[0][0], &s.counts); err != nil {
			return s, fmt.Errorf("load: count rows: %w", err)
		}
		if len(s.counts) != len(l.tables) {
			return s, fmt.Errorf("load: counted %d tables, not %d", len(s.counts), len(l.tables))
		}
	}
	for _, row := range results[3].Rows {
		if len(row) != 3 {
			return s, fmt.Errorf("load: list foreign keys: %d columns, not 3", len(row))
		}
		s.fks = append(s.fks, foreignKey{table: string(row[0]), name: string(row[1]), def: string(row[2])})
	}
	for _, row := range results[4].Rows {
		if len(row) != 2 {
			return s, fmt.Errorf("load: list indexes: %d columns, not 2", len(row))
		}
		s.indexes = append(s.indexes, indexDrop{drop: string(row[0]), def: string(row[1])})
	}
	return s, nil
}

// oneValue reports whether r is one row of one column.
func oneValue(r *pgconn.Result) bool { return len(r.Rows) == 1 && len(r.Rows[0]) == 1 }

// dropAndMark drops what survey found and writes the marker, in one round trip. When the
// server refuses a drop (not the tables' owner; an object depends on a key) it rolls back to
// before them and takes the statement-by-statement path (dropConstraints, writeMarker), which
// refuses --jobs without the right to drop the foreign keys and keeps indexes it may not drop.
func (l *parallelLoad) dropAndMark(ctx context.Context, tx pgx.Tx, s survey) error {
	saved := l.saved // remember only appends: this keeps what was saved before
	defs := make([]string, len(s.indexes))
	stmts := []string{"SAVEPOINT wnb_load_prepare"}
	for _, fk := range s.fks {
		stmts = append(stmts, fk.dropSQL())
	}
	for i, ix := range s.indexes {
		stmts = append(stmts, ix.drop)
		defs[i] = ix.def
	}
	l.remember(s.fks, defs)
	stmts = append(stmts, markerSQL(l.saved)...)
	_, err := execAll(ctx, tx.Conn().PgConn(), stmts)
	if err == nil {
		return nil
	}
	if !dropRefused(err) {
		return fmt.Errorf("load: drop the keys and indexes: %w", err)
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT wnb_load_prepare"); err != nil {
		return fmt.Errorf("load: roll back the drops: %w", err)
	}
	l.saved = saved
	if err := l.dropConstraints(ctx, tx); err != nil {
		return err
	}
	return writeMarker(ctx, tx, l.saved)
}

// dropRefused reports whether err is the server refusing a drop: the user does not own the
// table, or another object (a view) depends on a key.
func dropRefused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "2BP01")
}

// markerSQL are the statements that (re)write the marker table with m.
func markerSQL(m parallelMarker) []string {
	rows := m.rows()
	values := make([]string, len(rows))
	for i, r := range rows {
		values[i] = "(" + strconv.Itoa(r.ord) + ", " + literal(r.kind) + ", " + literal(r.table) + ", " + literal(r.name) + ", " + literal(r.def) + ")"
	}
	stmts := []string{createMarkerSQL, "DELETE FROM " + markerTable}
	if len(values) > 0 {
		stmts = append(stmts, "INSERT INTO "+markerTable+" (ord, kind, tbl, name, def) VALUES "+strings.Join(values, ", "))
	}
	return stmts
}
