// Package preflight checks, before a backup or restore starts, that everything it needs is
// there: the database answers and has the platform's schema, the storage can be read, the
// destination can be written and has room, and the NATS cluster (if any) runs JetStream.
//
// Each check says what failed and what to do about it: these are the troubleshooting cases of
// the Python commands' documentation, answered by the tool.
package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// Names of the checks, in the order a Report lists them.
const (
	CheckDatabase    = "database"
	CheckSchema      = "schema"
	CheckStorage     = "storage"
	CheckDestination = "destination"
	CheckNATS        = "nats"
	CheckSpace       = "free space"
)

// Status is a check's outcome.
type Status string

// Outcomes of a check. Skipped counts as passing: the check does not apply.
const (
	StatusOK      Status = "OK"
	StatusFail    Status = "FAIL"
	StatusSkipped Status = "SKIP"
)

// Config says what to check. Empty locations skip their checks.
type Config struct {
	DatabaseURL string // dj-database-url; "" skips the database and schema checks
	StorageURL  string // the platform's storage; "" skips the storage check
	BackupDir   string // the destination, a folder or s3://…; "" skips destination and space
	NATSURL     string // "" means the embedded server: nothing to check
	NATSOptions []nats.Option

	// Models are what the schema must hold (default platform.Default.Models).
	Models []platform.Model
	// Compress: an archive is written next to its staging folder, so the destination needs
	// room for the backup twice (at worst, an incompressible one).
	Compress bool
	// EstimateBytes, when positive, replaces the estimate of the backup's size.
	EstimateBytes int64
	// WalkBudget caps the time spent summing the storage's sizes (default 5s): past it, the
	// estimate counts what was seen and says so.
	WalkBudget time.Duration
	// Timeout bounds each network check (default 10s).
	Timeout time.Duration
	// SpaceAfterPlan leaves the storage's share of the space check to the caller, who knows
	// it after planning (see Space): the storage check then reads one file instead of summing
	// every size, which at millions of files is a second walk of the whole storage. The
	// space check here covers the database only.
	SpaceAfterPlan bool
	// NoDatabaseSize leaves the database out of the estimate (a restore, which checks no
	// space): measuring it took a connection of its own.
	NoDatabaseSize bool
	// References adds the database ↔ storage cross-check (doctor --references): every file
	// path a row names must be in the storage. It reads every row with a file field and
	// lists the whole storage, so it is not bounded by WalkBudget.
	References bool
	// KeepDatabase opens the database with DatabaseOptions and, when its checks pass, hands
	// it to the caller in Report.Database instead of closing it: a restore loads over it
	// rather than opening the database and reading its schema a second time.
	KeepDatabase    bool
	DatabaseOptions database.Options
}

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Advice says what to do when the check fails.
	Advice   string   `json:"advice,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Report is the outcome of every check.
type Report struct {
	// OK is true when no check failed.
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	// Estimate is the backup's expected size in bytes; EstimatePartial is set when the
	// storage walk stopped at WalkBudget, so the real size is larger.
	Estimate        int64 `json:"estimate_bytes"`
	EstimatePartial bool  `json:"estimate_partial"`
	// References is the cross-check's outcome, with References only.
	References *layout.References `json:"references,omitempty"`
	// Database is, with KeepDatabase, the database the checks opened when both its checks
	// passed (its schema holds Config.Models); the caller uses and closes it.
	Database *database.DB `json:"-"`
}

// Failed returns the checks that failed.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			out = append(out, c)
		}
	}
	return out
}

// Err returns nil when every check passed, else an error naming the failed checks and their
// advice: what a backup or restore returns when its preflight fails.
func (r Report) Err() error {
	failed := r.Failed()
	if len(failed) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(failed))
	for _, c := range failed {
		msgs = append(msgs, fmt.Sprintf("%s: %s (%s)", c.Name, c.Detail, c.Advice))
	}
	return fmt.Errorf("preflight: %s", strings.Join(msgs, "; "))
}

// Run runs every check that applies to c and reports them all; it never stops at the first
// failure, so one run shows everything to fix.
func Run(ctx context.Context, c Config) Report {
	if c.Models == nil {
		c.Models = platform.Default.Models
	}
	if c.WalkBudget <= 0 {
		c.WalkBudget = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	var (
		rep      Report
		dbBytes  int64
		stBytes  int64
		partial  bool
		estKnown = true
	)
	add := func(ch Check) { rep.Checks = append(rep.Checks, ch) }

	if c.DatabaseURL == "" {
		add(Check{Name: CheckDatabase, Status: StatusSkipped, Detail: "no database to check"})
	} else {
		dbCheck, schemaCheck, size, ok := checkDatabase(ctx, c, &rep.Database)
		add(dbCheck)
		add(schemaCheck)
		dbBytes, estKnown = size, ok
	}
	if c.StorageURL == "" {
		add(Check{Name: CheckStorage, Status: StatusSkipped, Detail: "no storage to check"})
	} else {
		ch, size, cut, ok := checkStorage(ctx, c)
		add(ch)
		stBytes, partial, estKnown = size, cut, estKnown && ok
	}
	if c.BackupDir == "" {
		add(Check{Name: CheckDestination, Status: StatusSkipped, Detail: "no destination to check"})
	} else {
		add(checkDestination(ctx, c))
	}
	add(checkNATS(ctx, c))
	if c.References {
		ch, refs := checkReferences(ctx, c)
		add(ch)
		rep.References = refs
	}

	rep.Estimate, rep.EstimatePartial = dbBytes+stBytes, partial
	if c.EstimateBytes > 0 {
		rep.Estimate, rep.EstimatePartial, estKnown = c.EstimateBytes, false, true
	}
	if c.BackupDir != "" {
		add(checkSpace(c, rep.Estimate, dbBytes, stBytes, partial, estKnown))
	}
	rep.OK = len(rep.Failed()) == 0
	return rep
}

func fail(name, detail, advice string) Check {
	return Check{Name: name, Status: StatusFail, Detail: detail, Advice: advice}
}

// schemaAdvice is what to do about a failed schema check: migrate a database whose tables
// differ; look at the server when the check could not read them.
func schemaAdvice(err error) string {
	var locked *database.LockError
	switch {
	case errors.As(err, &locked):
		return "another session holds a lock on the platform's tables: retry when it is done (the error names it)"
	case errors.Is(err, database.ErrSchemaMismatch):
		return "the database is not at the schema this tool backs up: run the platform's migrations (`python manage.py migrate`), or use the webnovel-backup release that matches the platform's version"
	}
	return "the database answered the connection but not the schema check: check that the server is running and not overloaded, and that no proxy or firewall between here and it stopped forwarding"
}

// checkDatabase opens the database, checks its schema and measures it. ok is false when the
// size could not be measured. With c.KeepDatabase, a database whose checks passed is left
// open in *keep.
func checkDatabase(ctx context.Context, c Config, keep **database.DB) (dbCheck, schemaCheck Check, size int64, ok bool) {
	skippedSchema := Check{Name: CheckSchema, Status: StatusSkipped, Detail: "the database cannot be opened"}
	src, err := database.ParseURL(c.DatabaseURL)
	if err != nil {
		return fail(CheckDatabase, err.Error(),
			"set --database or DATABASE_URL to postgres://user:password@host:5432/name or sqlite:////absolute/path.sqlite3"), skippedSchema, 0, false
	}
	tctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	// A lock held by another process fails, naming it, before the check's own deadline. A
	// database kept for the caller has the caller's options (its lock timeout is the load's).
	dbo := database.Options{LockTimeout: c.Timeout / 2}
	if c.KeepDatabase {
		dbo = c.DatabaseOptions
	}
	db, err := database.OpenWith(tctx, c.DatabaseURL, dbo)
	if err != nil {
		advice := "check the host, port, user and password in --database / DATABASE_URL, that the server accepts connections from this host (pg_hba.conf, firewall), and that the database exists; `psql URL` should connect"
		if src.Engine == database.SQLite {
			advice = "the SQLite file must exist and be readable: check the path in --database / DATABASE_URL (sqlite:////absolute/path or sqlite:///relative-to-the-working-directory)"
		}
		return fail(CheckDatabase, err.Error(), advice), skippedSchema, 0, false
	}
	dbCheck = Check{Name: CheckDatabase, Status: StatusOK, Detail: src.Redacted + " answers"}
	warnings, err := db.CheckSchema(tctx, c.Models)
	if c.KeepDatabase && err == nil {
		*keep = db
	} else {
		defer db.Close()
	}
	if err != nil {
		schemaCheck = fail(CheckSchema, err.Error(), schemaAdvice(err))
		schemaCheck.Warnings = warnings
	} else {
		schemaCheck = Check{Name: CheckSchema, Status: StatusOK, Detail: fmt.Sprintf("%d models match the platform's description", len(c.Models)), Warnings: warnings}
	}

	if c.NoDatabaseSize {
		return dbCheck, schemaCheck, 0, true
	}
	size, err = databaseSize(tctx, src)
	if err != nil {
		dbCheck.Warnings = append(dbCheck.Warnings, "size unknown: "+err.Error())
		return dbCheck, schemaCheck, 0, false
	}
	dbCheck.Detail += fmt.Sprintf(", %s", humanBytes(size))
	return dbCheck, schemaCheck, size, true
}

// databaseSize is pg_database_size, or the SQLite file with its write-ahead log: fixtures are
// text, usually a little larger than the pages they come from, but of the same order.
func databaseSize(ctx context.Context, src database.Source) (int64, error) {
	if src.Engine == database.SQLite {
		fi, err := os.Stat(src.DSN)
		if err != nil {
			return 0, err
		}
		n := fi.Size()
		if wal, err := os.Stat(src.DSN + "-wal"); err == nil {
			n += wal.Size()
		}
		return n, nil
	}
	conn, err := pgx.Connect(ctx, src.DSN)
	if err != nil {
		return 0, fmt.Errorf("measure database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		return 0, fmt.Errorf("measure database: %w", err)
	}
	return n, nil
}

// checkStorage opens the storage, reads its first file and sums its sizes for up to
// WalkBudget. cut is set when the walk was stopped; ok is false when it failed.
func checkStorage(ctx context.Context, c Config) (ch Check, size int64, cut, ok bool) {
	const advice = "check --storage / STORAGE_URL (the platform's MEDIA_ROOT, or s3://bucket/prefix with AWS credentials), that it exists, and that the user running webnovel-backup can read it"
	if !storage.IsS3(c.StorageURL) {
		dir := storage.LocalPath(c.StorageURL)
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fail(CheckStorage, fmt.Sprintf("storage folder %s does not exist", dir), advice), 0, false, false
		case err != nil:
			return fail(CheckStorage, err.Error(), advice), 0, false, false
		case !fi.IsDir():
			return fail(CheckStorage, fmt.Sprintf("storage %s is not a folder", dir), advice), 0, false, false
		}
	}
	b, err := storage.Open(ctx, c.StorageURL)
	if err != nil {
		return fail(CheckStorage, err.Error(), advice), 0, false, false
	}
	defer b.Close()
	wctx, cancel := context.WithTimeout(ctx, c.WalkBudget)
	defer cancel()
	var (
		files int64
		first string
	)
	err = b.Walk(wctx, "", func(o storage.Object) error {
		if first == "" {
			first = o.Key
		}
		files++
		size += o.Size
		if c.SpaceAfterPlan {
			return errStopWalk
		}
		return nil
	})
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		if files == 0 && storage.IsS3(c.StorageURL) {
			// Not one page of the listing in the whole budget: the service is not answering
			// (a listing page holds up to 1,000 keys, or says the prefix is empty).
			return fail(CheckStorage, fmt.Sprintf("%s did not answer a listing within %s: %v", b, c.WalkBudget, err), advice), 0, false, false
		}
		cut, err = true, nil
	}
	if errors.Is(err, errStopWalk) {
		err = nil
	}
	if err != nil {
		return fail(CheckStorage, err.Error(), advice), size, false, false
	}
	if first != "" {
		// Listing needs only the folders' permissions; a backup reads every file.
		rctx, rcancel := context.WithTimeout(ctx, c.Timeout)
		defer rcancel()
		r, _, err := b.Open(rctx, first)
		if err == nil {
			_, err = r.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) {
				err = nil
			}
			r.Close()
		}
		if err != nil {
			return fail(CheckStorage, fmt.Sprintf("listed, but cannot read %s: %v", first, err), advice), size, cut, false
		}
	}
	detail := fmt.Sprintf("%s readable: %d files, %s", b, files, humanBytes(size))
	if cut {
		detail = fmt.Sprintf("%s readable: at least %d files, %s (stopped counting after %s)", b, files, humanBytes(size), c.WalkBudget)
	}
	if files == 0 && !cut {
		detail = fmt.Sprintf("%s readable, but empty", b)
	}
	if c.SpaceAfterPlan && files > 0 {
		detail = fmt.Sprintf("%s readable (sized after planning)", b)
		size = 0
	}
	return Check{Name: CheckStorage, Status: StatusOK, Detail: detail}, size, cut, true
}

// errStopWalk ends a walk that has seen what it needs.
var errStopWalk = errors.New("preflight: walk stopped")

// checkDestination creates and removes a probe file in the destination. A local folder that
// does not exist yet passes if it can be created: the backup creates it.
func checkDestination(ctx context.Context, c Config) Check {
	const advice = "give the user running webnovel-backup write access to the destination (e.g. `chown -R backup: DIR` or `chmod -R u+w DIR`), or choose another --backup-dir"
	var b [8]byte
	rand.Read(b[:])
	probe := ".wnb-doctor-" + hex.EncodeToString(b[:])
	if storage.IsS3(c.BackupDir) {
		tctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		if err := probeBucket(tctx, c.BackupDir, probe); err != nil {
			return fail(CheckDestination, err.Error(),
				"check the bucket exists, the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or an IAM role) allow s3:PutObject, s3:GetObject, s3:ListBucket and s3:DeleteObject on the prefix, and the endpoint and region in the URL")
		}
		return Check{Name: CheckDestination, Status: StatusOK, Detail: "wrote and removed a probe object in " + storage.Join(c.BackupDir, "")}
	}
	dir := storage.LocalPath(c.BackupDir)
	existing, err := nearestExisting(dir)
	if err != nil {
		return fail(CheckDestination, err.Error(), advice)
	}
	fi, err := os.Stat(existing)
	if err != nil {
		return fail(CheckDestination, err.Error(), advice)
	}
	if !fi.IsDir() {
		return fail(CheckDestination, fmt.Sprintf("%s cannot be created: %s is not a folder", dir, existing), "choose a --backup-dir whose parents are folders")
	}
	f, err := os.CreateTemp(existing, probe+"-*")
	if err != nil {
		return fail(CheckDestination, fmt.Sprintf("cannot write in %s: %v", existing, err), advice)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fail(CheckDestination, fmt.Sprintf("cannot remove a probe file from %s: %v", existing, err), advice)
	}
	if existing != filepath.Clean(dir) {
		return Check{Name: CheckDestination, Status: StatusOK, Detail: fmt.Sprintf("%s does not exist yet; it will be created in %s, which is writable", dir, existing)}
	}
	return Check{Name: CheckDestination, Status: StatusOK, Detail: dir + " is writable"}
}

func probeBucket(ctx context.Context, location, probe string) error {
	b, err := storage.Open(ctx, location)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Put(ctx, probe, strings.NewReader("webnovel-backup doctor probe\n"), storage.Object{}); err != nil {
		return err
	}
	return b.Remove(ctx, probe)
}

// nearestExisting returns dir, or its nearest ancestor that exists.
func nearestExisting(dir string) (string, error) {
	p := filepath.Clean(dir)
	for {
		_, err := os.Lstat(p)
		if err == nil {
			return p, nil
		}
		// ENOTDIR: a parent is a file; walk up to it, the caller says it is not a folder.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("no part of %s exists", dir)
		}
		p = parent
	}
}

// checkNATS connects to the cluster and asks JetStream for the account's limits.
func checkNATS(ctx context.Context, c Config) Check {
	if c.NATSURL == "" {
		return Check{Name: CheckNATS, Status: StatusOK, Detail: "embedded: nothing to check"}
	}
	opts := append([]nats.Option{nats.NoReconnect(), nats.Timeout(c.Timeout)}, c.NATSOptions...)
	nc, err := queue.Connect(c.NATSURL, "webnovel-backup doctor", opts...)
	if err != nil {
		return fail(CheckNATS, err.Error(),
			"check --nats / NATS_URL (nats://host:4222; list every server of a cluster, comma-separated), that nats-server runs and the port is open, and the credentials (--nats-creds, NATS_USER/NATS_PASSWORD, NATS_TOKEN)")
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(CheckNATS, err.Error(), "check the NATS client options")
	}
	tctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	info, err := js.AccountInfo(tctx)
	if err != nil {
		advice := "enable JetStream on every server (`nats-server -js`, or a `jetstream {}` block in its configuration) and make sure this account may use it"
		if !errors.Is(err, jetstream.ErrJetStreamNotEnabled) && !errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			advice = "JetStream did not answer: check the cluster has a meta leader (`nats server report jetstream`), and " + advice
		}
		return fail(CheckNATS, "JetStream: "+err.Error(), advice)
	}
	return Check{Name: CheckNATS, Status: StatusOK, Detail: fmt.Sprintf("%s: JetStream enabled (%d streams, %s stored)", redact.URL(nc.ConnectedUrlRedacted()), info.Streams, humanBytes(int64(info.Store)))}
}

// checkSpace compares the destination's free space with the estimate.
func checkSpace(c Config, estimate, dbBytes, stBytes int64, partial, known bool) Check {
	how := fmt.Sprintf("estimate: database %s + storage %s", humanBytes(dbBytes), humanBytes(stBytes))
	if c.SpaceAfterPlan {
		how = fmt.Sprintf("estimate: database %s; the files are checked once planned", humanBytes(dbBytes))
	}
	if c.EstimateBytes > 0 {
		how = "estimate given"
	}
	if partial {
		how += ", storage not fully counted: more is needed"
	}
	ch := spaceCheck(c.BackupDir, estimate, c.Compress, how)
	if ch.Status == StatusOK && !known && c.EstimateBytes <= 0 {
		ch.Detail += "; parts of the estimate are unknown"
	}
	return ch
}

// Space checks that the local destination backupDir has room for need bytes (twice with
// compress: staging folder and archive); how says what need is made of. It is the space
// check of a backup whose size is known once planned (Config.SpaceAfterPlan), made before
// anything is copied. An S3 destination, or one whose free space cannot be read, passes.
func Space(backupDir string, need int64, compress bool, how string) error {
	ch := spaceCheck(backupDir, need, compress, how)
	if ch.Status == StatusFail {
		return fmt.Errorf("%s: %s (%s)", ch.Name, ch.Detail, ch.Advice)
	}
	return nil
}

// spaceCheck compares the free space at backupDir with need.
func spaceCheck(backupDir string, need int64, compress bool, how string) Check {
	if storage.IsS3(backupDir) {
		return Check{Name: CheckSpace, Status: StatusSkipped, Detail: "S3 destination: no free space to check"}
	}
	existing, err := nearestExisting(storage.LocalPath(backupDir))
	if err != nil {
		return Check{Name: CheckSpace, Status: StatusSkipped, Detail: "destination unusable: see " + CheckDestination}
	}
	free, err := freeBytes(existing)
	if err != nil {
		return Check{Name: CheckSpace, Status: StatusSkipped, Detail: "free space unknown: " + err.Error()}
	}
	if compress {
		need *= 2
		how += ", twice for --compress (staging folder and archive)"
	}
	detail := fmt.Sprintf("%s free at %s; the backup needs about %s = %d bytes (%s)", humanBytes(free), existing, humanBytes(need), need, how)
	if need > free {
		return fail(CheckSpace, detail,
			"free space at the destination (`df -h "+existing+"`): prune old backups (`webnovel-backup prune --keep-daily 7 --keep-weekly 4`), move them elsewhere, or choose another --backup-dir")
	}
	return Check{Name: CheckSpace, Status: StatusOK, Detail: detail}
}

// humanBytes prints a size in binary units for people ("1.5 KiB").
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
