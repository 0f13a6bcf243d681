package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// loadSample loads the reference sample into a fresh PostgreSQL database.
func loadSample(t *testing.T) string {
	t.Helper()
	url := pgtest.URL(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	data, err := os.ReadFile("../platform/testdata/sample-data.postgres.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{platform.SchemaPostgres, string(data)} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

// With --indent 2 the backup's fixtures are byte for byte what `dumpdata --indent 2` wrote,
// also when every table is split into many chunks exported by different workers.
func TestBackupPostgresGoldenChunked(t *testing.T) {
	url := loadSample(t)
	p := platformFixture{dbURL: url, storage: "../platform/testdata/sample-fixtures/files"}
	s := startSession(t, p, 3, queue.Config{})
	for _, chunk := range []int{1, 2, 50000} {
		t.Run(fmt.Sprintf("chunk-rows=%d", chunk), func(t *testing.T) {
			rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: url, StorageURL: p.storage, BackupDir: t.TempDir(), Indent: 2, ChunkRows: chunk,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range rep.Models {
				want, err := os.ReadFile(filepath.Join("../platform/testdata/sample-fixtures", m.File))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(filepath.Join(rep.Path, m.File))
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from dumpdata's (chunks %d)\n got: %.300s\nwant: %.300s", m.File, m.Chunks, got, want)
				}
			}
			sha256sumCheck(t, rep.Path)
		})
	}
}

// Every export task of a run reads one snapshot: transactions committed while a multi-worker
// backup runs are in the backup wholly or not at all.
func TestBackupPostgresOneSnapshot(t *testing.T) {
	url := pgtest.URL(t)
	opts := demo.DefaultOptions()
	opts.NoFiles = true
	if _, err := demo.Fill(context.Background(), url, t.TempDir(), opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// Each transaction adds a language and an author that name each other, and moves a
	// chapter's word count: the pair and the update must travel together.
	var committed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ctx.Err() == nil; i++ {
			tag := fmt.Sprintf("tx%d", i)
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO books_language (code, name) VALUES ($1, $1)`, tag); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO books_author (name, bio, created_at) VALUES ($1, '', now())`, tag)
				return err
			})
			if err != nil {
				return
			}
			committed.Store(int64(i))
		}
	}()
	waitUntil(t, time.Minute, time.Millisecond, "20 concurrent transactions to commit", func() bool { return committed.Load() >= 20 })
	p := platformFixture{dbURL: url, storage: t.TempDir()}
	s := startSession(t, p, 4, queue.Config{})
	rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
		DatabaseURL: url, StorageURL: p.storage, BackupDir: t.TempDir(), SkipFiles: true, ChunkRows: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()

	names := func(file, field string) map[string]bool {
		data, err := os.ReadFile(filepath.Join(rep.Path, file))
		if err != nil {
			t.Fatal(err)
		}
		var objs []struct {
			Fields map[string]any `json:"fields"`
		}
		if err := json.Unmarshal(data, &objs); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, o := range objs {
			if v, ok := o.Fields[field].(string); ok && len(v) > 2 && v[:2] == "tx" {
				out[v] = true
			}
		}
		return out
	}
	langs := names("db_books_language.json", "code")
	authors := names("db_books_author.json", "name")
	if len(langs) == 0 {
		t.Fatal("no concurrent transaction made it into the backup: the test did not overlap the snapshot")
	}
	if int64(len(langs)) >= committed.Load() {
		t.Fatalf("all %d transactions are in the backup: none committed during the run", committed.Load())
	}
	for tag := range langs {
		if !authors[tag] {
			t.Errorf("transaction %s: language in the backup, author not", tag)
		}
	}
	for tag := range authors {
		if !langs[tag] {
			t.Errorf("transaction %s: author in the backup, language not", tag)
		}
	}
	t.Logf("%d of %d concurrent transactions in the backup, each whole", len(langs), committed.Load())
}
