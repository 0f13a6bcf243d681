package database

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// TestInitSchema: an empty database gets the schema and migrate's rows; a database with any
// table is refused, unchanged.
func TestInitSchema(t *testing.T) {
	ctx := context.Background()
	urls := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "new.sqlite3") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			db, err := Create(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.InitSchema(ctx); err != nil {
				t.Fatalf("init an empty database: %v", err)
			}
			if _, err := db.CheckSchema(ctx, platform.Default.Models); err != nil {
				t.Errorf("schema after init: %v", err)
			}
			perms, err := db.TableRows(ctx, "auth_permission")
			if err != nil || perms == 0 {
				t.Errorf("auth_permission after init: %d rows (%v)", perms, err)
			}
			err = db.InitSchema(ctx)
			if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "nothing was changed") {
				t.Errorf("init of a database with tables: %v", err)
			}
			if again, _ := db.TableRows(ctx, "auth_permission"); again != perms {
				t.Errorf("refused init changed auth_permission: %d rows, was %d", again, perms)
			}
		})
	}
}
