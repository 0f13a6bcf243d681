package database_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// demoDB returns a database of engine filled by the demo generator with seed.
func demoDB(t *testing.T, engine string, seed int64) *database.DB {
	t.Helper()
	ctx := context.Background()
	url := "sqlite:///" + filepath.Join(t.TempDir(), "demo.sqlite3")
	if engine == database.Postgres {
		url = pgtest.URL(t)
	}
	opts := demo.DefaultOptions()
	opts.Seed, opts.NoFiles = seed, true
	if _, err := demo.Fill(ctx, url, t.TempDir(), opts); err != nil {
		t.Fatalf("demo fill: %v", err)
	}
	db, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exportModels(t *testing.T, db *database.DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, m := range platform.Default.Models {
		var chunk, file bytes.Buffer
		if _, err := db.Export(context.Background(), "", m, database.All, fixture.Format{}, &chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := fixture.Join(&file, fixture.Format{}, &chunk); err != nil {
			t.Fatal(err)
		}
		out[m.Label] = file.Bytes()
	}
	return out
}

// TestLoadDemoRoundTrip exports the demo generator's data from each engine, loads it into a
// database of each engine holding other demo data (a replace), and exports it again.
func TestLoadDemoRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("fills four demo databases")
	}
	engines := []string{database.Postgres, database.SQLite}
	for _, from := range engines {
		src := exportModels(t, demoDB(t, from, 1))
		for _, to := range engines {
			t.Run(from+"-to-"+to, func(t *testing.T) {
				db := demoDB(t, to, 2)
				var fixtures []database.LoadFixture
				for _, m := range platform.Default.Models {
					data := src[m.Label]
					fixtures = append(fixtures, database.LoadFixture{Model: m, Open: func() (io.ReadCloser, error) {
						return io.NopCloser(bytes.NewReader(data)), nil
					}})
				}
				loaded, err := db.Load(context.Background(), fixtures, database.LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range loaded {
					if l.Rows == 0 || l.Before == 0 {
						t.Errorf("%+v: the demo fills every model", l)
					}
				}
				got := exportModels(t, db)
				for _, m := range platform.Default.Models {
					if from == to || to == database.SQLite { // SQLite keeps the JSON key order it is given
						if !bytes.Equal(got[m.Label], src[m.Label]) {
							t.Errorf("%s differs", m.Label)
						}
					} else if !reflect.DeepEqual(database.ParsedObjects(t, got[m.Label]), database.ParsedObjects(t, src[m.Label])) {
						t.Errorf("%s: values differ", m.Label)
					}
				}
			})
		}
	}
}
