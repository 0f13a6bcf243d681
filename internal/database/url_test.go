package database

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
)

func TestParseURL(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url      string
		engine   string
		dsn      string
		redacted string
		err      string // substring of the error; "" for success
	}{
		{url: "postgres://app:s3cret@db.example:5433/webnovel", engine: Postgres,
			dsn: "postgres://app:s3cret@db.example:5433/webnovel?connect_timeout=10", redacted: "postgres://app:xxxxx@db.example:5433/webnovel"},
		{url: "postgresql://app@localhost/webnovel?sslmode=disable", engine: Postgres,
			dsn: "postgres://app@localhost/webnovel?sslmode=disable&connect_timeout=10", redacted: "postgres://app@localhost/webnovel?sslmode=disable"},
		{url: "postgres://h/webnovel?user=app&password=s3cret", engine: Postgres,
			dsn: "postgres://h/webnovel?user=app&password=s3cret&connect_timeout=10", redacted: "postgres://h/webnovel?user=app&password=xxxxx"},
		{url: "postgres://app@h/webnovel?sslmode=verify-full&sslpassword=s3cret", engine: Postgres,
			dsn: "postgres://app@h/webnovel?sslmode=verify-full&sslpassword=s3cret&connect_timeout=10", redacted: "postgres://app@h/webnovel?sslmode=verify-full&sslpassword=xxxxx"},
		{url: "pgsql://u:p%40ss@h/d", engine: Postgres, dsn: "postgres://u:p%40ss@h/d?connect_timeout=10", redacted: "postgres://u:xxxxx@h/d"},
		// A connection attempt is bounded (DefaultConnectTimeout) unless the URL says otherwise.
		{url: "postgres://h/d?connect_timeout=0", engine: Postgres, dsn: "postgres://h/d?connect_timeout=0", redacted: "postgres://h/d?connect_timeout=0"},
		{url: "sqlite:////var/lib/app/db.sqlite3", engine: SQLite, dsn: "/var/lib/app/db.sqlite3", redacted: "sqlite:////var/lib/app/db.sqlite3"},
		{url: "sqlite:///db.sqlite3", engine: SQLite, dsn: filepath.Join(cwd, "db.sqlite3"), redacted: "sqlite:///db.sqlite3"},
		{url: "sqlite:///data/db.sqlite3", engine: SQLite, dsn: filepath.Join(cwd, "data/db.sqlite3"), redacted: "sqlite:///data/db.sqlite3"},
		{url: "sqlite://:memory:", err: "in-memory"},
		{url: "sqlite://", err: "in-memory"},
		{url: "sqlite:///", err: "in-memory"},
		{url: "sqlite://host/db.sqlite3", err: "host"},
		{url: "sqlite:///db.sqlite3?mode=ro", err: "options"},
		{url: "mysql://u:p@h/d", err: `unsupported scheme "mysql"`},
		{url: "postgres://u:p@h:5432/", err: "no database name"},
		{url: "postgres://u:p@h:port/d", err: "invalid port"},
		{url: "", err: "empty"},
		{url: "/var/db.sqlite3", err: "no scheme"},
		// A password holding "/", "?" or "#" unencoded: refused without quoting a piece of it.
		{url: "postgres://u:ab#tail@h/d", err: "percent-encoded"},
		{url: "postgres://u:1/tail@h/d", err: "percent-encoded"},
		{url: "postgres://u:1?tail@h/d", err: "percent-encoded"},
		{url: "postgres://u:ab/tail@h/d", err: "percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			src, err := ParseURL(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want error containing %q", tt.url, src, err, tt.err)
				}
				if strings.Contains(err.Error(), "p@h") || strings.Contains(err.Error(), ":p@") || strings.Contains(err.Error(), "tail") {
					t.Errorf("error %q leaks the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if src.Engine != tt.engine || src.DSN != tt.dsn || src.Redacted != tt.redacted {
				t.Errorf("ParseURL(%q) = %+v; want engine %s dsn %s redacted %s", tt.url, src, tt.engine, tt.dsn, tt.redacted)
			}
		})
	}
}

func TestDjangoEngine(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://h/d":      "django.db.backends.postgresql",
		"sqlite:////tmp/x.db": "django.db.backends.sqlite3",
	} {
		src, err := ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		if got := src.DjangoEngine(); got != want {
			t.Errorf("%s: DjangoEngine() = %s, want %s", url, got, want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"postgres://app:s3cret@db:5432/webnovel", "pgsql://u@h/d?sslmode=require", "sqlite:////abs/db.sqlite3",
		"sqlite:///rel.sqlite3", "sqlite://:memory:", "mysql://x", "postgres://u:p@[::1]:5432/d", "postgres://u:p@h:x/d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, url string) {
		src, err := ParseURL(url)
		if err != nil {
			return
		}
		switch src.Engine {
		case Postgres:
			if !strings.HasPrefix(src.DSN, "postgres://") {
				t.Errorf("postgres DSN %q", src.DSN)
			}
			if _, err := ParseURL(src.DSN); err != nil {
				t.Errorf("DSN %q of %q does not parse again: %v", src.DSN, url, err)
			}
			if strings.Contains(src.Redacted, ":") && strings.Contains(url, "@") {
				// The password, if any, must not survive redaction.
				if i := strings.Index(src.Redacted, "xxxxx"); i < 0 && strings.Contains(userinfo(src.DSN), ":") {
					t.Errorf("Redacted %q keeps a password", src.Redacted)
				}
			}
		case SQLite:
			if !filepath.IsAbs(src.DSN) {
				t.Errorf("sqlite DSN %q is not absolute", src.DSN)
			}
		default:
			t.Errorf("engine %q", src.Engine)
		}
	})
}

// userinfo returns the user[:password] part of a URL.
func userinfo(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		return host[:i]
	}
	return ""
}

// A PostgreSQL server that accepts the connection and never answers does not hold the caller
// for ever: the connection attempt ends after DefaultConnectTimeout, naming the database.
func TestOpenSilentServerTimesOut(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	addr := proctest.SilentListener(t)
	done := make(chan error, 1)
	go func() {
		db, err := Open(context.Background(), "postgres://app@"+addr+"/silent")
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "silent") {
			t.Fatalf("open a silent server: %v; want an error naming the database", err)
		}
	case <-time.After(3 * DefaultConnectTimeout * time.Second):
		t.Fatal("open still waiting on a silent server")
	}
}

// A SQLite database whose journal is a FIFO (SQLite opens a hot journal as it opens the
// database, and would wait on it for ever) is refused at once, naming it.
func TestOpenSQLiteSpecialJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.sqlite3")
	db, err := Create(context.Background(), "sqlite:///"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := syscall.Mkfifo(path+"-journal", 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() {
		db, err := Open(context.Background(), "sqlite:///"+path)
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), path+"-journal") || !strings.Contains(err.Error(), "fifo") {
			t.Fatalf("open with a FIFO journal: %v; want it refused naming the journal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open still waiting on the FIFO journal")
	}
}
