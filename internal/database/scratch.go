package database

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// Scratch is a temporary database made for a test restore, dropped by Drop.
type Scratch struct {
	// URL opens the scratch database.
	URL  string
	drop func(context.Context) error
}

// Drop removes the scratch database.
func (s *Scratch) Drop(ctx context.Context) error { return s.drop(ctx) }

// CreateScratch makes an empty database with the platform's schema beside the one at like:
// for PostgreSQL a new database named name on the same server; for SQLite a file name+".sqlite3"
// in dir. It never writes to the database at like.
func CreateScratch(ctx context.Context, like, name, dir string) (*Scratch, error) {
	src, err := ParseURL(like)
	if err != nil {
		return nil, err
	}
	var s *Scratch
	switch src.Engine {
	case SQLite:
		p := filepath.Join(dir, name+".sqlite3")
		s = &Scratch{URL: "sqlite:///" + p, drop: func(context.Context) error { return nil }}
	case Postgres:
		conn, err := pgx.Connect(ctx, src.DSN)
		if err != nil {
			return nil, fmt.Errorf("scratch database beside %s: %w", src.Redacted, err)
		}
		defer conn.Close(ctx)
		ident := pgx.Identifier{name}.Sanitize()
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
			return nil, fmt.Errorf("create scratch database %s beside %s: %w", name, src.Redacted, err)
		}
		u, err := url.Parse(src.DSN)
		if err != nil {
			return nil, err
		}
		u.Path = "/" + name
		s = &Scratch{URL: u.String(), drop: func(ctx context.Context) error {
			c, err := pgx.Connect(ctx, src.DSN)
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
			return err
		}}
	}
	db, err := Create(ctx, s.URL)
	if err == nil {
		err = db.ApplySchema(ctx)
		db.Close()
	}
	if err != nil {
		s.Drop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("scratch database: %w", err)
	}
	return s, nil
}
