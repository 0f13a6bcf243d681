package database

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// informationSchemaColumns is what tablesColumns asked before it read pg_catalog: the
// reference its answer must equal.
const informationSchemaColumns = `SELECT c.table_name::text, c.column_name::text, c.data_type::text,
		CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
	FROM information_schema.columns c
	JOIN pg_namespace n ON n.nspname = c.table_schema
	JOIN pg_class r ON r.relnamespace = n.oid AND r.relname = c.table_name
	JOIN pg_attribute a ON a.attrelid = r.oid AND a.attname = c.column_name
	JOIN pg_type t ON t.oid = a.atttypid
	WHERE c.table_schema = current_schema() AND c.table_name = ANY($1)`

// tablesColumns reads pg_catalog with information_schema.columns' definitions: for columns of
// every kind of type (built-in, array, domains over both, enum, composite), for the kinds of
// relation the view lists and those it does not, and for a role that may see only some
// columns, its answer is the view's.
func TestTablesColumnsMatchInformationSchema(t *testing.T) {
	ctx := context.Background()
	db := openT(t, pgtest.URL(t))
	for _, q := range []string{
		`CREATE DOMAIN posint AS integer CHECK (VALUE > 0)`,
		`CREATE DOMAIN intlist AS integer[]`,
		`CREATE TYPE mood AS ENUM ('sad', 'ok')`,
		`CREATE TYPE pair AS (a int, b text)`,
		`CREATE TABLE kinds (id bigserial PRIMARY KEY, i int, s smallint, v varchar(10), c char(3), tx text,
			ts timestamptz, tsn timestamp, d date, iv interval, u uuid, j jsonb, js json, n numeric(10,2),
			b boolean, f double precision, r real, ba bytea, ip inet, arr int[], tarr text[], dom posint,
			domarr intlist, m mood, p pair, dropped int)`,
		`ALTER TABLE kinds DROP COLUMN dropped`,
		`CREATE VIEW kinds_view AS SELECT id, m FROM kinds`,
		`CREATE MATERIALIZED VIEW kinds_mat AS SELECT id FROM kinds`,
		`CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k)`,
		`CREATE SEQUENCE a_sequence`,
		`CREATE TABLE hidden (id int, secret text, open text)`,
		`DROP ROLE IF EXISTS wnb_columns_reader`,
		`CREATE ROLE wnb_columns_reader`,
		`GRANT USAGE ON SCHEMA public TO wnb_columns_reader`,
		`GRANT SELECT (id, open) ON hidden TO wnb_columns_reader`,
		`GRANT INSERT (i) ON kinds TO wnb_columns_reader`,
	} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		db.pool.Exec(context.Background(), `DROP OWNED BY wnb_columns_reader; DROP ROLE IF EXISTS wnb_columns_reader`)
	})
	tables := []string{"kinds", "kinds_view", "kinds_mat", "parted", "a_sequence", "hidden", "missing"}
	// Every table of the schema (what CheckSchema reads) is the view's too.
	all, err := queryColumns(ctx, db.pool, strings.Replace(informationSchemaColumns, " AND c.table_name = ANY($1)", " AND $1::text[] IS NULL", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tablesColumns(ctx, db.pool, nil); err != nil || !maps.EqualFunc(got, all, maps.Equal) || len(all) < 4 {
		t.Errorf("every table: pg_catalog gives %v (%v), information_schema %v", got, err, all)
	}
	compare := func(who string, q pgQuerier) map[string]map[string]pgColumn {
		t.Helper()
		want, err := queryColumns(ctx, q, informationSchemaColumns, tables)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tablesColumns(ctx, q, tables)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("%s: information_schema lists no column: nothing compared", who)
		}
		if !maps.EqualFunc(got, want, maps.Equal) {
			t.Errorf("%s: pg_catalog gives\n%v\ninformation_schema\n%v", who, got, want)
		}
		return got
	}
	if all := compare("the owner", db.pool); len(all["kinds"]) != 25 || len(all["hidden"]) != 3 || all["parted"] == nil || all["kinds_mat"] != nil {
		t.Errorf("the owner sees %v", all)
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET ROLE wnb_columns_reader`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `RESET ROLE`)
	if some := compare("a role granted some columns", conn); len(some["hidden"]) != 2 || len(some["kinds"]) != 1 {
		t.Errorf("a role granted hidden(id, open) and kinds(i) sees %v", some)
	}
}
