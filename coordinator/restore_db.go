package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/storage"
)

// checkJobsTarget refuses a parallel restore (--jobs) into tables that hold rows, before the
// confirmation and in a dry run too: it commits table by table and could not put them back.
// Without either, the load's preparation refuses it the same way, under its locks and before
// it changes anything, and this check's round trips are left out.
func checkJobsTarget(ctx context.Context, o RestoreOptions, chk *restoreCheck) error {
	if o.Jobs <= 1 || chk.db == nil || o.Confirm == nil && !o.DryRun {
		return nil
	}
	models := make([]platform.Model, len(chk.fixtures))
	for i, f := range chk.fixtures {
		models[i] = f.Model
	}
	return chk.db.CheckParallelTarget(ctx, models)
}

// weighFixtures gives each fixture its row count from the plan, which orders a parallel load
// (largest first).
func weighFixtures(chk *restoreCheck) []database.LoadFixture {
	rows := map[string]int64{}
	for _, m := range chk.plan.Models {
		rows[m.Label] = m.Rows
	}
	out := make([]database.LoadFixture, len(chk.fixtures))
	for i, f := range chk.fixtures {
		f.Weight = rows[f.Model.Label]
		out[i] = f
	}
	return out
}

// loadFailed words a failed load: a one-transaction load changed nothing; a parallel one
// that got past its first commit left the database half-restored, and says how to finish.
func loadFailed(err error) error {
	var half *database.HalfRestoredError
	if errors.As(err, &half) {
		return fmt.Errorf("restore: %w", err)
	}
	if errors.Is(err, database.ErrCommitUnknown) {
		return fmt.Errorf("restore: the database may hold the backup's rows or the old ones: check it (its row counts against `webnovel-backup list`) before using it: %w", err)
	}
	return fmt.Errorf("restore: database unchanged: %w", err)
}

// deferFixtureSums reports whether the fixtures' checksums are checked by the load rather
// than before it: a one-transaction load hashes them alongside its COPYs and commits once the
// check passed, a parallel one (--jobs) alongside its preparation, whose commit (its first)
// waits for the check; either way a failed check changes nothing. Only when nobody is asked to
// confirm (the plan shown is the checked one); a dry run checks them itself.
func deferFixtureSums(o RestoreOptions) bool {
	return !o.DryRun && o.Confirm == nil && !o.SkipDB
}

// sumsCheck checks now that each of paths is listed in SHA256SUMS, and returns the check that
// hashes them in parallel and compares them with SHA256SUMS and the metadata's per-model
// checksums, stopping at the first that does not match. Only paths outside files/ are looked
// up (sums.Top): the fixtures and the file index. The check keeps what it compares with, so
// it may run once sums is closed. It hashes what a one-transaction load read of each as it
// read it (the fixturePass, see loadOptions), or takes what early hashed before the restore,
// and the rest from the files.
func sumsCheck(dir string, sums *layout.Sums, meta *layout.Metadata, paths []string, workers int, early *EarlySums) (func(context.Context) error, *fixturePass, error) {
	modelSums := map[string]string{}
	for _, e := range meta.Models {
		if e.SHA256 != "" {
			modelSums[e.File] = e.SHA256
		}
	}
	want := make(map[string]string, len(paths))
	for _, p := range paths {
		sum, ok := sums.Top[p]
		if !ok {
			return nil, nil, fmt.Errorf("%s is not listed in %s: it cannot be verified", p, layout.FileSums)
		}
		want[p] = sum
	}
	pass := newFixturePass(dir, paths)
	hash := func(ctx context.Context, rel string) (string, int64, error) {
		if sum, size, ok, err := early.sum(ctx, dir, rel); ok || err != nil {
			return sum, size, err
		}
		return pass.sum(ctx, rel)
	}
	feed := func(send func(string, struct{}) error) error {
		for _, p := range paths {
			if err := send(p, struct{}{}); err != nil {
				return err
			}
		}
		return nil
	}
	return func(ctx context.Context) error {
		return layout.HashEachWith(ctx, hash, min(workers, len(paths)), feed, func(p string, _ struct{}, got string, _ int64, err error) error {
			switch {
			case err != nil:
				return fmt.Errorf("check %s: %w", p, err)
			case got != want[p]:
				return fmt.Errorf("%s is corrupt: its SHA-256 is %s, SHA256SUMS says %s", p, got, want[p])
			case modelSums[p] != "" && got != modelSums[p]:
				return fmt.Errorf("%s is corrupt: its SHA-256 is %s, %s says %s", p, got, layout.FileMetadata, modelSums[p])
			}
			return nil
		})
	}, pass, nil
}

// fixturePass hashes the fixtures of a one-transaction load as the load reads them, so that
// each is read once: the check (sumsCheck) takes each hash once the load is done with it and
// hashes what the load did not read (all of a file it never opened, the tail after the last
// object of one it did) from the file, so it still covers every byte of every file.
type fixturePass struct {
	dir   string
	files map[string]*passHash // by path relative to dir, slash-separated
}

// passHash is one file's hash so far: of its first n bytes.
type passHash struct {
	mu    sync.Mutex
	h     hash.Hash
	n     int64
	taken bool // the check has it: reads no longer feed it
}

func newFixturePass(dir string, paths []string) *fixturePass {
	p := &fixturePass{dir: dir, files: make(map[string]*passHash, len(paths))}
	for _, rel := range paths {
		p.files[rel] = &passHash{h: sha256.New()}
	}
	return p
}

// wrap makes each fixture the check covers hash what the load reads of it.
func (p *fixturePass) wrap(fixtures []database.LoadFixture) {
	for i, f := range fixtures {
		path, open := filepath.Join(p.dir, f.Model.FixtureName()), f.Open
		rel, err := filepath.Rel(p.dir, path)
		ph := p.files[filepath.ToSlash(rel)]
		if err != nil || ph == nil {
			continue
		}
		fixtures[i].Open = func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return &passReader{ReadCloser: rc, ph: ph}, nil
		}
	}
}

// sum completes rel's hash from the file (past what the load read) and returns it and the
// file's size.
func (p *fixturePass) sum(ctx context.Context, rel string) (string, int64, error) {
	name := filepath.Join(p.dir, filepath.FromSlash(rel))
	ph := p.files[rel]
	if ph == nil {
		return layout.HashFile(ctx, name)
	}
	ph.mu.Lock()
	ph.taken = true // from here on only this goroutine touches h and n
	ph.mu.Unlock()
	f, err := storage.OpenRegular(name)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", name, err)
	}
	defer f.Close()
	if _, err := f.Seek(ph.n, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", name, err)
	}
	rest, err := layout.HashInto(ctx, ph.h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(ph.h.Sum(nil)), ph.n + rest, nil
}

// passReader feeds its file's hash with what the load reads, while the reads continue where
// the hash stopped (a second opening of the file, from its start, is not hashed twice).
type passReader struct {
	io.ReadCloser
	ph  *passHash
	off int64
}

// Read reads and hashes.
func (r *passReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	if n > 0 {
		r.ph.mu.Lock()
		if !r.ph.taken && r.off == r.ph.n {
			r.ph.h.Write(b[:n])
			r.ph.n += int64(n)
		}
		r.ph.mu.Unlock()
		r.off += int64(n)
	}
	return n, err
}

// loadOptions are the load's options; a one-transaction PostgreSQL load with the fixtures'
// check hashes them as it reads them (fixturePass) and runs the check once it has read them.
func loadOptions(o RestoreOptions, chk *restoreCheck, fixtures []database.LoadFixture) database.LoadOptions {
	lo := database.LoadOptions{Merge: o.Merge, Jobs: o.Jobs, Verify: chk.plan.verify}
	// (An encrypted backup's fixtures are checked as they are decrypted, before the load.)
	if lo.Verify != nil && chk.plan.pass != nil && chk.dec == nil && o.Jobs <= 1 && chk.db.Source().Engine == database.Postgres {
		chk.plan.pass.wrap(fixtures)
		lo.VerifyAfterRead = true
	}
	return lo
}
