package database

import (
	"bytes"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// TestExportAfterTypeChangePostgres: an export query is described once per database handle
// and its columns' formats chosen from that; a column whose type changes between two exports
// (a uuid become text, whose binary form is its text) is read in the format of its new type,
// the fixture unchanged, not decoded as the old type.
func TestExportAfterTypeChangePostgres(t *testing.T) {
	url := samplePostgres(t)
	db := openT(t, url)
	m := model(t, "books.changelog")
	before, n := exportRange(t, db, "", m, All, fixture.Format{})
	if n == 0 {
		t.Fatal("the sample holds no change log rows")
	}
	execScript(t, url, `ALTER TABLE books_changelog ALTER COLUMN change_id TYPE text USING change_id::text`)
	after, _ := exportRange(t, db, "", m, All, fixture.Format{})
	if !bytes.Equal(before, after) {
		t.Errorf("after the type change the export differs:\n%.300s\nwant\n%.300s", after, before)
	}
}
