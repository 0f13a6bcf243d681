package database

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// Engines.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Source is a parsed dj-database-url.
type Source struct {
	Engine string // Postgres or SQLite
	// DSN is what the driver opens: the postgres URL, or the SQLite file path (absolute).
	DSN string
	// Redacted is the URL with any password replaced by "xxxxx", safe for logs and metadata.
	Redacted string
}

// DjangoEngine is the ENGINE setting Django uses for the source ("django.db.backends.postgresql").
func (s Source) DjangoEngine() string {
	if s.Engine == Postgres {
		return "django.db.backends.postgresql"
	}
	return "django.db.backends.sqlite3"
}

// ParseURL parses postgres://user:pass@host:port/db (also postgresql://, pgsql://),
// sqlite:////absolute/path.sqlite3 and sqlite:///relative.sqlite3 (relative to the working
// directory). An in-memory SQLite database (sqlite://:memory:, sqlite://) is refused: there
// would be nothing to back up or restore.
func ParseURL(raw string) (Source, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Source{}, errors.New("parse database URL: empty URL")
	}
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return Source{}, errors.New("parse database URL: no scheme (want postgres://... or sqlite:///path)")
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql", "pgsql":
		return parsePostgres(raw)
	case "sqlite":
		return parseSQLite(raw)
	}
	return Source{}, fmt.Errorf("parse database URL: unsupported scheme %q (want postgres, postgresql, pgsql or sqlite)", scheme)
}

func parsePostgres(raw string) (Source, error) {
	u, err := redact.ParseURL(raw)
	if err != nil {
		return Source{}, fmt.Errorf("parse database URL: %w", err)
	}
	// pgx knows postgres:// and postgresql:// only; dj-database-url also accepts pgsql://.
	u.Scheme = "postgres"
	if u.Opaque != "" {
		return Source{}, errors.New("parse database URL: want postgres://[user[:password]@]host[:port]/database")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return Source{}, errors.New("parse database URL: no database name in the path")
	}
	if strings.Contains(name, "/") {
		return Source{}, fmt.Errorf("parse database URL: database name %q contains a slash", name)
	}
	if u.Fragment != "" {
		return Source{}, errors.New("parse database URL: unexpected #fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Source{}, fmt.Errorf("parse database URL: query: %w", err)
	}
	redacted := redact.URL(u.String())
	if !q.Has("connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		// Without one, pgx waits for ever on a server that accepts the connection and never
		// answers; libpq's users set one the same way.
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += "connect_timeout=" + strconv.Itoa(DefaultConnectTimeout)
	}
	return Source{Engine: Postgres, DSN: u.String(), Redacted: redacted}, nil
}

// DefaultConnectTimeout is the seconds a PostgreSQL connection may take to be established
// when the URL (connect_timeout) or PGCONNECT_TIMEOUT sets no limit.
const DefaultConnectTimeout = 10

func parseSQLite(raw string) (Source, error) {
	u, err := redact.ParseURL(raw)
	if err != nil {
		return Source{}, fmt.Errorf("parse database URL: %w", err)
	}
	if u.Host == ":memory:" || u.Path == ":memory:" || (u.Host == "" && (u.Path == "" || u.Path == "/")) {
		return Source{}, errors.New("parse database URL: in-memory SQLite databases cannot be backed up or restored; give a file, sqlite:////absolute/path.sqlite3")
	}
	if u.Host != "" || u.User != nil {
		return Source{}, fmt.Errorf("parse database URL: sqlite URL with a host %q: want sqlite:////absolute/path or sqlite:///relative/path", u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return Source{}, errors.New("parse database URL: sqlite URL options are not supported")
	}
	// dj-database-url: sqlite:///rel -> "rel", sqlite:////abs -> "/abs".
	path := strings.TrimPrefix(u.Path, "/")
	if path == "" || strings.HasSuffix(path, "/") {
		return Source{}, fmt.Errorf("parse database URL: sqlite path %q is not a file", path)
	}
	if strings.ContainsRune(path, 0) {
		return Source{}, errors.New("parse database URL: sqlite path contains a NUL byte")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Source{}, fmt.Errorf("parse database URL: %w", err)
	}
	return Source{Engine: SQLite, DSN: abs, Redacted: u.String()}, nil
}
