package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/database"
)

func newInitDBCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init-db",
		Short: "Give an empty database the platform's schema, as `manage.py migrate` would",
		Long: `Create the platform's tables in an empty database (--database / DATABASE_URL; a missing SQLite
file is created, a PostgreSQL database must exist: createdb), with the rows migrate writes
(content types, permissions, applied migrations), so a backup can be restored into it on a
machine without Django. A database that has any table already is refused and left unchanged.

Exit status: 0 the schema was created, 1 it was not (the database has tables, or cannot be reached).`,
		Example: `  createdb webnovel && DATABASE_URL=postgres://app@db/webnovel webnovel-backup init-db
  webnovel-backup init-db --database sqlite:///restored.sqlite3`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runInitDB(cmd.Context(), g, consoleOf(cmd)) },
	}
}

// runInitDB applies the platform schema to the configured database.
func runInitDB(ctx context.Context, g *globals, con console) error {
	g.resolve()
	db, err := database.Create(ctx, g.database)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.InitSchema(ctx); err != nil {
		return err
	}
	fmt.Fprintf(con.out, "Created the platform schema in %s\n", db.Source().Redacted)
	return nil
}
