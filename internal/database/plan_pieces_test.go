package database

import (
	"context"
	"fmt"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// TestPlanPieces: pieces are consecutive pk ranges, open at both ends of the table, that
// hold every row once and never more than the piece's row bound — cut by pk value when the
// pks are dense, by row number when they are sparse — on PostgreSQL and SQLite.
func TestPlanPieces(t *testing.T) {
	dense, sparse := []int64{}, []int64{}
	for id := int64(6); id <= 60; id++ {
		dense = append(dense, id)
	}
	for id := int64(100); id <= 5000; id += 100 {
		sparse = append(sparse, id)
	}
	for _, tc := range []struct {
		name       string
		ids        []int64
		maxRows    int
		pieceBytes int64
		wantRows   int64 // the bound on each piece's rows
	}{
		{"dense pks", dense, 7, 1 << 30, 7},
		{"sparse pks", sparse, 7, 1 << 30, 7},
		{"one row a piece by bytes", dense, 1000, 1, 1},
		{"small table in one piece", nil, 50, 1 << 30, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engines(t, func(t *testing.T, db *DB) {
				ctx := context.Background()
				lang := model(t, "books.language")
				if len(tc.ids) > 0 {
					insertLanguages(t, db, tc.ids...)
				}
				total := int64(5 + len(tc.ids))
				snap, err := db.BeginSnapshot(ctx, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer snap.Close()
				ranges, err := snap.PlanPieces(ctx, lang, tc.maxRows, tc.pieceBytes)
				if err != nil {
					t.Fatal(err)
				}
				planned, exported := checkPieces(t, db, snap.ID(), lang, ranges, tc.wantRows)
				if planned != total || exported != total {
					t.Errorf("%d ranges plan %d rows and hold %d, want %d", len(ranges), planned, exported, total)
				}
				if min := (total + tc.wantRows - 1) / tc.wantRows; int64(len(ranges)) < min {
					t.Errorf("%d ranges, want at least %d", len(ranges), min)
				}
			})
		})
	}
}

// checkPieces checks that ranges are consecutive, open at both ends of the table only, and
// hold at most bound rows each, and returns the rows they plan and the rows they export.
func checkPieces(t *testing.T, db *DB, snapshot string, m platform.Model, ranges []Range, bound int64) (planned, exported int64) {
	t.Helper()
	for i, r := range ranges {
		if r.HasLo != (i > 0) || r.HasHi != (i < len(ranges)-1) {
			t.Errorf("range %d is %s: only the ends are open", i, r)
		}
		if i > 0 && r.Lo != ranges[i-1].Hi+1 {
			t.Errorf("range %d %s does not follow %s", i, r, ranges[i-1])
		}
		_, n := exportRange(t, db, snapshot, m, r, fixture.Format{})
		if n > bound {
			t.Errorf("range %s holds %d rows, more than %d", r, n, bound)
		}
		planned += r.Rows
		exported += n
	}
	return planned, exported
}

// TestPlanPiecesFromEstimate: on PostgreSQL a table the server has statistics of is planned
// from its estimate of the rows, with no count: rows deleted since the last ANALYZE are still
// in the plan's rows, pages added since are in it too (the estimate is the rows a page times
// the pages now), and whatever the estimate every row is exported once, in pieces that hold
// at most their bound.
func TestPlanPiecesFromEstimate(t *testing.T) {
	ctx := context.Background()
	db := openT(t, samplePostgres(t))
	lang := model(t, "books.language")
	ids := make([]int64, 0, 1995)
	for id := int64(6); id <= 2000; id++ {
		ids = append(ids, id)
	}
	insertLanguages(t, db, ids...) // 2000 rows with the sample's 5
	// No autovacuum: the statistics stay those of the ANALYZE below.
	for _, q := range []string{"ALTER TABLE books_language SET (autovacuum_enabled = off)", "VACUUM ANALYZE books_language", "DELETE FROM books_language WHERE id BETWEEN 1000 AND 1499"} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	plan := func(t *testing.T) (planned, exported int64) {
		snap, err := db.BeginSnapshot(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		ranges, err := snap.PlanPieces(ctx, lang, 100, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return checkPieces(t, db, snap.ID(), lang, ranges, 100)
	}
	t.Run("rows deleted since", func(t *testing.T) {
		planned, exported := plan(t)
		if planned != 2000 || exported != 1500 {
			t.Errorf("planned %d rows and exported %d, want the estimate's 2000 and the 1500 there are", planned, exported)
		}
	})
	t.Run("pages added since", func(t *testing.T) {
		more := make([]int64, 0, 6000)
		for id := int64(2001); id <= 8000; id++ {
			more = append(more, id)
		}
		insertLanguages(t, db, more...)
		planned, exported := plan(t)
		if exported != 7500 {
			t.Errorf("exported %d rows, want 7500", exported)
		}
		if planned < 6000 || planned > 10000 {
			t.Errorf("planned %d rows: the estimate did not follow the table's pages (8000 rows in them)", planned)
		}
	})
}

func TestWidthRanges(t *testing.T) {
	got := widthRanges(10, 1, 9, 4) // pks 1..10 in ranges of 4 values
	want := []Range{{Hi: 4, HasHi: true, Rows: 3}, {Lo: 5, Hi: 8, HasLo: true, HasHi: true, Rows: 3}, {Lo: 9, HasLo: true, Rows: 4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("widthRanges = %+v, want %+v", got, want)
	}
}

// TestPlanAllPieces: planning every model at once gives each model the ranges PlanPieces
// gives it, and every planner reads in the run's snapshot: rows written after it opened are
// in no plan, on PostgreSQL (planners of their own) and SQLite.
func TestPlanAllPieces(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		lang := model(t, "books.language")
		var ids []int64
		for id := int64(6); id <= 60; id++ {
			ids = append(ids, id)
		}
		insertLanguages(t, db, ids...)
		snap, err := db.BeginSnapshot(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		insertLanguages(t, db, 61, 62, 63) // after the snapshot: in no plan
		const total = 60

		snaps := []*Snapshot{snap}
		for snap.pg != nil && len(snaps) < 3 {
			f, err := snap.forkPostgres(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			snaps = append(snaps, f)
		}
		for k, s := range snaps {
			ranges, err := s.PlanPieces(ctx, lang, 7, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if got := plannedRows(ranges); got != total {
				t.Errorf("planner %d counts %d rows, want the snapshot's %d", k, got, total)
			}
		}

		models := []platform.Model{model(t, "books.book"), lang, model(t, "accounts.user"), lang, lang}
		all, err := snap.PlanAllPieces(ctx, models, 7, 1<<30, 4)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range models {
			want, err := snap.PlanPieces(ctx, m, 7, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(all[i]) != fmt.Sprint(want) {
				t.Errorf("model %d %s: PlanAllPieces gives %v, PlanPieces %v", i, m.Label, all[i], want)
			}
		}
		if got := plannedRows(all[1]); got != total {
			t.Errorf("books.language: %d rows planned, want the snapshot's %d", got, total)
		}
	})
}

func plannedRows(ranges []Range) int64 {
	var n int64
	for _, r := range ranges {
		n += r.Rows
	}
	return n
}
