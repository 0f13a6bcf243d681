package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// sampleDB copies the sample SQLite database into a temporary folder and returns its URL.
func sampleDB(t *testing.T) (url, path string) {
	t.Helper()
	data, err := os.ReadFile("../platform/testdata/sample.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "db.sqlite3")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "sqlite:///" + path, path
}

// mediaDir writes a small storage folder.
func mediaDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range []string{"content/1/a.json", "images/b.png", "media/c.mp3"} {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goodConfig is a configuration where every check passes.
func goodConfig(t *testing.T) Config {
	t.Helper()
	url, _ := sampleDB(t)
	return Config{DatabaseURL: url, StorageURL: mediaDir(t), BackupDir: filepath.Join(t.TempDir(), "backups"), Timeout: 5 * time.Second}
}

func check(t *testing.T, rep Report, name string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q check in %+v", name, rep.Checks)
	return Check{}
}

func TestAllGood(t *testing.T) {
	c := goodConfig(t)
	rep := Run(context.Background(), c)
	if !rep.OK || rep.Err() != nil {
		t.Fatalf("report not OK: %+v", rep)
	}
	var names []string
	for _, ch := range rep.Checks {
		names = append(names, ch.Name)
		if ch.Status != StatusOK {
			t.Errorf("%s: %s %s", ch.Name, ch.Status, ch.Detail)
		}
	}
	if want := []string{CheckDatabase, CheckSchema, CheckStorage, CheckDestination, CheckNATS, CheckSpace}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("checks %v, want %v", names, want)
	}
	fi, _ := os.Stat(strings.TrimPrefix(c.DatabaseURL, "sqlite:///"))
	if rep.Estimate != fi.Size()+30 || rep.EstimatePartial {
		t.Errorf("estimate %d (partial %v), want the database file (%d) plus 30 bytes of storage", rep.Estimate, rep.EstimatePartial, fi.Size())
	}
	if d := check(t, rep, CheckNATS).Detail; d != "embedded: nothing to check" {
		t.Errorf("nats detail %q", d)
	}
	if d := check(t, rep, CheckDestination).Detail; !strings.Contains(d, "will be created") {
		t.Errorf("destination detail %q", d)
	}
	if _, err := os.Stat(c.BackupDir); !os.IsNotExist(err) {
		t.Errorf("doctor created the destination: %v", err)
	}
}

// listener returns a loopback address nothing answers NATS on.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// natsWithoutJetStream starts a NATS server with JetStream off.
func natsWithoutJetStream(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return srv.ClientURL()
}

// Every failure is reported with its advice, and the other checks still run.
func TestFailures(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, c *Config)
		check  string
		detail string // in the failing check's detail
		advice string // in its advice
	}{
		{"missing database file", func(t *testing.T, c *Config) {
			c.DatabaseURL = "sqlite:///" + filepath.Join(t.TempDir(), "nope.sqlite3")
		}, CheckDatabase, "does not exist", "SQLite file must exist"},
		{"bad database URL", func(t *testing.T, c *Config) { c.DatabaseURL = "mysql://x/y" }, CheckDatabase, "unsupported scheme", "DATABASE_URL"},
		{"postgres not listening", func(t *testing.T, c *Config) {
			c.DatabaseURL = "postgres://u:secret@" + deadAddress(t) + "/webnovel?connect_timeout=2"
		}, CheckDatabase, "", "pg_hba.conf"},
		{"dropped column", func(t *testing.T, c *Config) {
			url, path := sampleDB(t)
			sqlitetest.Exec(t, path, "ALTER TABLE books_book DROP COLUMN description")
			c.DatabaseURL = url
		}, CheckSchema, "missing column description", "manage.py migrate"},
		{"missing storage", func(t *testing.T, c *Config) { c.StorageURL = filepath.Join(t.TempDir(), "media") }, CheckStorage, "does not exist", "STORAGE_URL"},
		{"storage is a file", func(t *testing.T, c *Config) {
			p := filepath.Join(t.TempDir(), "media")
			os.WriteFile(p, nil, 0o644)
			c.StorageURL = p
		}, CheckStorage, "not a folder", "MEDIA_ROOT"},
		{"destination under a file", func(t *testing.T, c *Config) {
			p := filepath.Join(t.TempDir(), "somefile")
			os.WriteFile(p, nil, 0o644)
			c.BackupDir = filepath.Join(p, "backups")
		}, CheckDestination, "is not a folder", "--backup-dir"},
		{"nothing listening on the NATS URL", func(t *testing.T, c *Config) { c.NATSURL = "nats://" + deadAddress(t) }, CheckNATS, "connect to nats", "NATS_URL"},
		{"NATS without JetStream", func(t *testing.T, c *Config) { c.NATSURL = natsWithoutJetStream(t) }, CheckNATS, "JetStream", "-js"},
		{"insufficient space", func(t *testing.T, c *Config) { c.EstimateBytes = 1 << 62 }, CheckSpace, "needs about 4.0 EiB", "prune"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodConfig(t)
			tt.mutate(t, &c)
			rep := Run(context.Background(), c)
			if rep.OK {
				t.Fatalf("report OK: %+v", rep)
			}
			ch := check(t, rep, tt.check)
			if ch.Status != StatusFail {
				t.Fatalf("%s: %s %q, want FAIL", ch.Name, ch.Status, ch.Detail)
			}
			if !strings.Contains(ch.Detail, tt.detail) {
				t.Errorf("detail %q, want it to hold %q", ch.Detail, tt.detail)
			}
			if !strings.Contains(ch.Advice, tt.advice) {
				t.Errorf("advice %q, want it to hold %q", ch.Advice, tt.advice)
			}
			if len(rep.Failed()) != 1 {
				t.Errorf("failed checks %+v, want only %s", rep.Failed(), tt.check)
			}
			if err := rep.Err(); err == nil || !strings.Contains(err.Error(), tt.check) {
				t.Errorf("Err() = %v", err)
			}
			if strings.Contains(fmt.Sprint(rep), "secret") {
				t.Error("a password is in the report")
			}
		})
	}
}

func TestSchemaWarnings(t *testing.T) {
	c := goodConfig(t)
	path := strings.TrimPrefix(c.DatabaseURL, "sqlite:///")
	sqlitetest.Exec(t, path, "ALTER TABLE books_book ADD COLUMN legacy_flag integer")
	rep := Run(context.Background(), c)
	ch := check(t, rep, CheckSchema)
	if ch.Status != StatusOK || len(ch.Warnings) != 1 || !strings.Contains(ch.Warnings[0], "legacy_flag") {
		t.Errorf("schema check %+v: want OK with a warning about legacy_flag", ch)
	}
}

func TestNATSWithJetStream(t *testing.T) {
	eURL := queuetest.Server(t)
	c := goodConfig(t)
	c.NATSURL = eURL
	rep := Run(context.Background(), c)
	if ch := check(t, rep, CheckNATS); ch.Status != StatusOK || !strings.Contains(ch.Detail, "JetStream enabled") {
		t.Errorf("nats check %+v", ch)
	}
}

// A walk that runs out of time gives a partial estimate, and says so.
func TestStorageWalkBudget(t *testing.T) {
	c := goodConfig(t)
	c.WalkBudget = time.Nanosecond
	rep := Run(context.Background(), c)
	ch := check(t, rep, CheckStorage)
	if ch.Status != StatusOK || !rep.EstimatePartial || !strings.Contains(ch.Detail, "stopped counting") {
		t.Errorf("storage check %+v, partial %v", ch, rep.EstimatePartial)
	}
}

func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	c := goodConfig(t)
	c.DatabaseURL = url
	rep := Run(context.Background(), c)
	if ch := check(t, rep, CheckSchema); ch.Status != StatusFail || !strings.Contains(ch.Detail, "table") {
		t.Errorf("empty database: schema check %+v", ch)
	}
	db, err := database.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep = Run(context.Background(), c)
	if !rep.OK {
		t.Fatalf("report %+v", rep)
	}
	// pg_database_size of even an empty database is several MiB.
	if rep.Estimate < 1<<20 {
		t.Errorf("estimate %d: pg_database_size not counted", rep.Estimate)
	}
	// A restore checks the database but does not measure it.
	c.NoDatabaseSize = true
	if rep = Run(context.Background(), c); !rep.OK || rep.Estimate >= 1<<20 {
		t.Errorf("without the database's size: OK %v, estimate %d", rep.OK, rep.Estimate)
	}
}

// With SpaceAfterPlan the storage is not summed (the plan sizes it), and Space names the
// destination and the bytes needed when they do not fit.
func TestSpaceAfterPlan(t *testing.T) {
	c := goodConfig(t)
	full := Run(context.Background(), c)
	c.SpaceAfterPlan = true
	rep := Run(context.Background(), c)
	if !rep.OK || check(t, rep, CheckStorage).Status != StatusOK {
		t.Fatalf("report %+v", rep)
	}
	if rep.Estimate >= full.Estimate || rep.Estimate <= 0 {
		t.Errorf("estimate %d with the storage left to the plan, %d with it summed", rep.Estimate, full.Estimate)
	}
	parent := filepath.Dir(c.BackupDir)
	for _, tc := range []struct {
		need     int64
		compress bool
		fails    bool
		named    string
	}{
		{1 << 10, false, false, ""},
		{1 << 62, false, true, "4611686018427387904 bytes"},
		{1 << 61, true, true, "4611686018427387904 bytes"},
	} {
		err := Space(c.BackupDir, tc.need, tc.compress, "files planned")
		if (err != nil) != tc.fails {
			t.Fatalf("Space(%d, compress %v) = %v", tc.need, tc.compress, err)
		}
		if err != nil && (!strings.Contains(err.Error(), parent) || !strings.Contains(err.Error(), tc.named)) {
			t.Errorf("error %q names neither %s nor %s", err, parent, tc.named)
		}
	}
}

// TestKeepDatabase: with KeepDatabase a database whose checks passed is handed over open (a
// restore loads over it), and one whose schema check failed is closed, not handed over.
func TestKeepDatabase(t *testing.T) {
	c := goodConfig(t)
	c.KeepDatabase, c.DatabaseOptions = true, database.Options{LockTimeout: time.Second}
	rep := Run(context.Background(), c)
	if !rep.OK || rep.Database == nil {
		t.Fatalf("report OK %v, database %v: want the checked database kept", rep.OK, rep.Database)
	}
	defer rep.Database.Close()
	if _, err := rep.Database.CountRows(context.Background(), c.Models); err != nil {
		t.Errorf("kept database: %v", err)
	}
	if rep := Run(context.Background(), Config{DatabaseURL: c.DatabaseURL}); rep.Database != nil {
		t.Error("a database kept without KeepDatabase")
	}
	url, path := sampleDB(t)
	sqlitetest.Exec(t, path, "ALTER TABLE books_book DROP COLUMN description")
	c.DatabaseURL = url
	if rep := Run(context.Background(), c); rep.OK || rep.Database != nil {
		t.Errorf("schema check failed: report OK %v, database %v: want none kept", rep.OK, rep.Database)
	}
}

// An S3 storage that accepts connections and never answers a listing fails the storage check
// at the end of the walk's budget, naming it; it was taken for readable with "at least 0
// files", and the backup then waited on it for about twenty minutes.
func TestStorageSilentS3Fails(t *testing.T) {
	addr := proctest.SilentListener(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	c := goodConfig(t)
	c.StorageURL = "s3://media/site?endpoint=http://" + addr + "&path_style=true&region=us-east-1"
	c.WalkBudget = time.Second
	rep := Run(context.Background(), c)
	if ch := check(t, rep, CheckStorage); ch.Status != StatusFail || !strings.Contains(ch.Detail, "did not answer") {
		t.Errorf("storage check %+v: want a failure saying it did not answer", ch)
	}
}

// TestSchemaAdvice: a failed schema check advises migrations only when it read tables that
// differ; a check that could not read them (a server that stopped answering, a lock) says so.
func TestSchemaAdvice(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("check schema: %w: table books_book is missing", database.ErrSchemaMismatch), "migrate"},
		{fmt.Errorf("check schema: %w", database.ErrDatabaseSilent), "not overloaded"},
		{fmt.Errorf("check schema: %w", &database.LockError{Doing: "read the table list", Err: errors.New("lock timeout")}), "holds a lock"},
	}
	for _, tt := range tests {
		if got := schemaAdvice(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("schemaAdvice(%v) = %q; want it to say %q", tt.err, got, tt.want)
		}
	}
}
