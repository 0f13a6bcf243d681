package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/storage"
)

// verifyOptions are the flags of verify.
type verifyOptions struct {
	verify.Options
	asJSON bool
	push   pushOptions
	keys   decryptOptions
}

// AddFlags adds verify's flags to f.
func (o *verifyOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	o.push.AddFlags(f)
	f.BoolVar(&o.RequireChecksums, "require-checksums", false, "count a backup without SHA256SUMS as a problem even when the Python command wrote it")
	f.StringVar(&o.TempDir, "temp-dir", "", "`folder` where an archive is extracted to be checked (default: the system temporary folder)")
	f.BoolVar(&o.Decrypt, "decrypt", false, "also decrypt an encrypted backup and check its plaintext end to end (needs --identity or the passphrase); without it only the stored bytes are checked, which needs no key")
	o.keys.AddFlags(f, true)
}

func newVerifyCommand(g *globals) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify PATH",
		Short: "Check a backup folder or .tar.gz without restoring it: metadata, checksums, fixtures, counts",
		Long: `Check a backup folder or .tar.gz archive (local or s3://) without restoring it: backup_metadata.json is
complete, every file matches SHA256SUMS and SHA256SUMS lists every file, every fixture parses
and holds only its model's objects with no duplicate pk, and the row and file counts match the
metadata. A backup this tool wrote must have SHA256SUMS, tied to the metadata by its
manifest_sha256. Backups written by the Python command (no format_version, no SHA256SUMS, no
counts) verify with warnings, unless --require-checksums is given. An encrypted backup's stored
bytes are checked without its key; --decrypt with --identity (or the passphrase) also decrypts
every fixture and file and checks its plaintext against the backup's encrypted manifest of
plaintext sums.

The report shows the Django migrations the backup recorded; given a database (--database or
DATABASE_URL), it also compares them with that database's: migrations it lacks (a restore
would be refused) or has beyond the backup are warnings, not problems of the backup.

Exit status: 0 when the backup is good, 1 when a problem is found or the check cannot run.`,
		Example: `  webnovel-backup verify backups/backup_20241201_143022
  webnovel-backup verify backups/backup_20241201_143022.tar.gz --json
  webnovel-backup verify s3://bucket/backups/backup_20241201_143022`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("verify takes one PATH (a backup folder or .tar.gz), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.push.wrap(cmd, func() error {
				return runVerify(cmd.Context(), o, g, cmd.Flags().Changed("workers"), consoleOf(cmd), args[0])
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// verifyFailure is what verify --json prints when the backup could not be checked at all (no
// such backup, no key): a report, as backup and restore print one when they fail.
type verifyFailure struct {
	Path   string         `json:"path"`
	OK     bool           `json:"ok"`
	Status outcome.Status `json:"status"`
	Error  string         `json:"error"`
}

// runVerify checks the backup at path and reports it; a backup with problems is an error.
func runVerify(ctx context.Context, o verifyOptions, g *globals, workersSet bool, con console, path string) error {
	path = storage.LocalPath(path) // file:///srv/backups/backup_x is that folder
	err := verifyAndReport(ctx, o, g, workersSet, con, path)
	var checked verifyChecked
	if err != nil && o.asJSON && !errors.As(err, &checked) {
		if perr := printJSON(con.out, verifyFailure{Path: redact.URL(path), Status: outcome.Of(err).Status, Error: errText(err)}); perr != nil {
			return fmt.Errorf("verify: %w", perr)
		}
	}
	return err
}

// verifyChecked is the error of a backup checked and reported, with problems.
type verifyChecked struct{ error }

func (v verifyChecked) Unwrap() error { return v.error }

// verifyAndReport checks the backup at path and prints its report.
func verifyAndReport(ctx context.Context, o verifyOptions, g *globals, workersSet bool, con console, path string) error {
	// --workers means in-process pipeline workers elsewhere; here it is hashing
	// parallelism, taken only when given (else one per CPU).
	if workersSet {
		if g.workers < 1 {
			return usageErrorf("--workers must be 1 or more for verify")
		}
		o.Workers = g.workers
	}
	if o.Decrypt {
		var err error
		if o.Identities, err = o.keys.identities(); err != nil {
			return err
		}
		if o.Passphrase, err = o.keys.passphrase(); err != nil {
			return err
		}
	}
	rep, err := verify.At(ctx, path, o.Options)
	if err != nil {
		return err
	}
	compareVerifyMigrations(ctx, rep, verifyTargetURL(g))
	if o.asJSON {
		if err := printJSON(con.out, rep); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		// The text report lists warnings; with --json they also go to standard error.
		for _, w := range rep.Warnings {
			fmt.Fprintf(con.err, "warning: %s\n", w)
		}
	} else {
		printVerifyReport(con.out, rep)
	}
	if !rep.OK {
		return verifyChecked{fmt.Errorf("verify %s: %d problems found", redact.URL(path), len(rep.Problems))}
	}
	return nil
}

func printVerifyReport(out io.Writer, rep *verify.Report) {
	format := fmt.Sprintf("format %d", rep.Format)
	if rep.Format == 0 {
		format = "format 0 (Python backup)"
	}
	if rep.Format < 0 {
		format = "no metadata"
	}
	fmt.Fprintf(out, "Verifying %s (%s)\n", rep.Path, format)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		status := "OK"
		if !c.OK {
			status = "FAIL"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", status, c.Name, c.Detail)
	}
	tw.Flush()
	if rep.Migrations != nil {
		fmt.Fprintf(out, "  migrations: %s\n", rep.Migrations.Summary())
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(out, "Problems (%d):\n", len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintf(out, "  - %s\n", p)
		}
	}
	if len(rep.Warnings) > 0 {
		fmt.Fprintf(out, "Warnings (%d):\n", len(rep.Warnings))
		for _, w := range rep.Warnings {
			fmt.Fprintf(out, "  - %s\n", w)
		}
	}
	verdict := "OK"
	if !rep.OK {
		verdict = "FAILED"
	}
	var objects int64
	for _, m := range rep.Models {
		objects += m.Rows
	}
	fmt.Fprintf(out, "Backup %s: %d models, %d objects, %d files (%d bytes), checked in %s\n",
		verdict, len(rep.Models), objects, rep.Files, rep.Bytes, rep.Duration.Round(1e6))
}
