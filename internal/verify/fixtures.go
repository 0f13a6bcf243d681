package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/storage"
)

// maxListed bounds how many objects of one kind of problem are listed per fixture file: a
// wrong file may hold millions.
const maxListed = 5

// fixtureTarget is one fixture file to check.
type fixtureTarget struct {
	label    string // lower case; "" when the file's model is unknown (not checked)
	file     string
	metaRows int64 // -1: the metadata records none
}

// name is the file with its model, for messages.
func (t fixtureTarget) name() string {
	if t.label == "" {
		return t.file
	}
	return fmt.Sprintf("%s (%s)", t.file, t.label)
}

// fixtureResult is what reading one fixture found.
type fixtureResult struct {
	fixtureTarget
	rows     int64
	readable bool // present and read to its end
	problems []string
}

// targets lists the fixtures to check: the metadata's models, or for a Python backup (or
// without metadata) the db_*.json files found.
func (v *verifier) targets() (targets []fixtureTarget, problems []string) {
	fixtures := map[string]bool{}
	for rel := range v.top {
		if !strings.Contains(rel, "/") && strings.HasPrefix(rel, "db_") && strings.HasSuffix(rel, ".json") {
			fixtures[rel] = true
		}
	}
	if v.meta != nil && !v.python() {
		for _, m := range v.meta.Models {
			label := strings.ToLower(m.Label)
			if _, ok := platform.Default.Model(label); !ok {
				v.warn("%s (%s): not a model of this platform", m.File, m.Label)
			}
			targets = append(targets, fixtureTarget{label: label, file: m.File, metaRows: m.Rows})
			delete(fixtures, m.File)
		}
		for _, f := range slices.Sorted(maps.Keys(fixtures)) {
			problems = append(problems, fmt.Sprintf("%s: fixture not listed in %s models", f, layout.FileMetadata))
		}
		return targets, problems
	}
	for _, m := range platform.Default.Models {
		name := m.FixtureName()
		if fixtures[name] {
			targets = append(targets, fixtureTarget{label: m.Label, file: name, metaRows: -1})
			delete(fixtures, name)
		} else if v.pythonSelects(m.Label) {
			v.warn("%s (%s): missing, though %s selects the model", name, m.Label, layout.FileMetadata)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(fixtures)) {
		v.warn("%s: not the fixture of a known model: its model is not checked", f)
		targets = append(targets, fixtureTarget{file: f, metaRows: -1})
	}
	return targets, problems
}

// pythonSelects reports whether a Python backup's options select the model.
func (v *verifier) pythonSelects(label string) bool {
	if !v.python() || v.meta.BackupOptions.SkipDB {
		return false
	}
	sel := v.meta.BackupOptions.Models
	return sel.All() || slices.ContainsFunc(sel.Labels, func(l string) bool { return strings.EqualFold(l, label) })
}

// checkFixtures reads every fixture, o.Workers files at a time (an encrypted backup's: their
// plaintext, with --decrypt only). The error is ctx's.
func (v *verifier) checkFixtures(ctx context.Context) error {
	if v.encrypted() && !v.decrypting() {
		v.add(CheckFixtures, true, "not checked: the backup is encrypted (verify --decrypt with its key reads them)", nil)
		return nil
	}
	targets, problems := v.targets()
	results := make([]fixtureResult, len(targets))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(v.o.Workers, len(targets)) {
		wg.Go(func() {
			for i := range next {
				t := targets[i]
				switch {
				case v.nonRegular[t.file]:
					// Never read through a link or from a FIFO; the checksums check named it.
					results[i] = fixtureResult{fixtureTarget: t, problems: []string{t.name() + ": not a regular file"}}
				case !v.present(t.file):
					results[i] = fixtureResult{fixtureTarget: t, problems: []string{t.name() + ": missing"}}
				case v.decrypting():
					plain := t
					plain.file = strings.TrimSuffix(t.file, encryption.Ext)
					results[i] = readFixture(ctx, v.plainDir, plain)
					results[i].fixtureTarget = t
				default:
					results[i] = readFixture(ctx, v.dir, t)
				}
			}
		})
	}
feed:
	for i := range targets {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	var objects int64
	for _, r := range results {
		problems = append(problems, r.problems...)
		objects += r.rows
	}
	v.fixture = results
	v.add(CheckFixtures, true, fmt.Sprintf("%d fixtures, %d objects", len(results), objects), problems)
	return nil
}

// readFixture reads one fixture file to its end, checking each object's model and pk.
func readFixture(ctx context.Context, dir string, t fixtureTarget) fixtureResult {
	res := fixtureResult{fixtureTarget: t}
	name := t.name()
	f, err := storage.OpenRegular(filepath.Join(dir, t.file))
	if err != nil {
		res.problems = append(res.problems, fmt.Sprintf("%s: cannot read: %v", name, pathless(err)))
		return res
	}
	defer f.Close()

	r := fixture.NewReader(f)
	var (
		pks        pkSet
		wrongModel int64
	)
	for {
		if res.rows%1024 == 0 && ctx.Err() != nil {
			return res // checkFixtures returns ctx's error
		}
		obj, err := r.Next()
		if err == io.EOF {
			res.readable = true
			break
		}
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("%s: %v", name, err))
			break
		}
		if t.label != "" && strings.ToLower(obj.Model) != t.label {
			if wrongModel++; wrongModel <= maxListed {
				res.problems = append(res.problems, fmt.Sprintf("%s: object %d (pk %s) has model %q, want %q",
					t.file, res.rows, bytes.TrimSpace(obj.PK), obj.Model, t.label))
			}
		}
		pks.add(obj.PK)
		res.rows++
	}
	if wrongModel > maxListed {
		res.problems = append(res.problems, fmt.Sprintf("%s: %d more objects of another model than %q", t.file, wrongModel-maxListed, t.label))
	}
	dups := pks.duplicates()
	for i, d := range dups {
		if i == maxListed {
			res.problems = append(res.problems, fmt.Sprintf("%s: %d more duplicated pks", name, len(dups)-maxListed))
			break
		}
		res.problems = append(res.problems, fmt.Sprintf("%s: pk %s appears %d times", name, d.pk, d.n))
	}
	return res
}

// pkSet finds duplicated primary keys. Integer keys, the common case, cost 8 bytes each and
// are only sorted if they came out of order; other keys go in a map by canonical JSON.
type pkSet struct {
	ints       []int64
	unordered  bool
	others     map[string]int
	otherOrder []string
}

type duplicate struct {
	pk string
	n  int
}

func (s *pkSet) add(raw []byte) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return // natural keys: no pk to compare
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if k := len(s.ints); k > 0 && n <= s.ints[k-1] {
			s.unordered = true
		}
		s.ints = append(s.ints, n)
		return
	}
	key := string(raw)
	if c, err := fixture.Canonical(raw); err == nil {
		key = string(c)
	}
	if s.others == nil {
		s.others = map[string]int{}
	}
	if s.others[key] == 0 {
		s.otherOrder = append(s.otherOrder, key)
	}
	s.others[key]++
}

// duplicates returns the pks seen more than once: integers in increasing order, then the
// others in the order first seen.
func (s *pkSet) duplicates() []duplicate {
	var out []duplicate
	if s.unordered {
		slices.Sort(s.ints)
		for i := 0; i < len(s.ints); {
			j := i + 1
			for j < len(s.ints) && s.ints[j] == s.ints[i] {
				j++
			}
			if j-i > 1 {
				out = append(out, duplicate{strconv.FormatInt(s.ints[i], 10), j - i})
			}
			i = j
		}
	}
	for _, k := range s.otherOrder {
		if n := s.others[k]; n > 1 {
			out = append(out, duplicate{k, n})
		}
	}
	return out
}

// checkRows compares each fixture's objects with the metadata's rows.
func (v *verifier) checkRows() {
	for _, r := range v.fixture {
		v.rep.Models = append(v.rep.Models, ModelCheck{
			Label: r.label, File: r.file, Rows: r.rows, MetadataRows: r.metaRows,
			OK: r.readable && len(r.problems) == 0 && (r.metaRows < 0 || r.metaRows == r.rows),
		})
	}
	switch {
	case v.meta == nil:
		v.add(CheckRows, false, "not checked: no metadata", nil)
		return
	case v.encrypted() && !v.decrypting():
		v.add(CheckRows, true, "not checked: the backup is encrypted", nil)
		return
	case v.python():
		v.warn("%s: Python backup records no row counts or file totals: they are counted, not compared", layout.FileMetadata)
		var objects int64
		for _, r := range v.fixture {
			objects += r.rows
		}
		v.add(CheckRows, true, fmt.Sprintf("%d objects counted (not recorded in the metadata)", objects), nil)
		return
	}
	var problems []string
	compared := 0
	for _, r := range v.fixture {
		if !r.readable {
			continue // the fixtures check reported it
		}
		compared++
		if r.rows != r.metaRows {
			problems = append(problems, fmt.Sprintf("%s (%s): %d objects, %s says %d rows", r.file, r.label, r.rows, layout.FileMetadata, r.metaRows))
		}
	}
	detail := fmt.Sprintf("%d of %d models compared", compared, len(v.fixture))
	v.add(CheckRows, compared == len(v.fixture), detail, problems)
}

// present reports whether the walk found the regular file rel outside files/.
func (v *verifier) present(rel string) bool {
	_, ok := v.top[rel]
	return ok
}

// checkFiles compares the files under files/ (or in the object store's index) with the metadata's count and bytes.
func (v *verifier) checkFiles() {
	v.rep.Files, v.rep.Bytes = v.files, v.bytes
	found := fmt.Sprintf("%d files, %s", v.rep.Files, humanBytes(v.rep.Bytes))
	switch {
	case v.meta == nil:
		v.add(CheckFiles, false, "not checked: no metadata ("+found+" found)", nil)
		return
	case v.python():
		v.add(CheckFiles, true, found+" (not recorded in the metadata)", nil)
		return
	}
	plainUnknown := false
	if v.encrypted() && !v.objectStore() {
		// Stored bytes are ciphertext; the metadata counts plaintext.
		v.rep.Bytes, plainUnknown = v.plainBytes, !v.decrypting()
		found = fmt.Sprintf("%d files, %s of plaintext", v.rep.Files, humanBytes(v.rep.Bytes))
		if plainUnknown {
			v.rep.Bytes = v.bytes // as stored: the plaintext's size is unknown without the key
			found = fmt.Sprintf("%d files, %s as stored (encrypted: their plaintext size is checked with --decrypt)", v.rep.Files, humanBytes(v.rep.Bytes))
		}
	}
	var problems []string
	if v.rep.Files != v.meta.Files.Count {
		problems = append(problems, fmt.Sprintf("%s/: %d files, %s says %d", layout.FilesDir, v.rep.Files, layout.FileMetadata, v.meta.Files.Count))
	}
	if !plainUnknown && v.rep.Bytes != v.meta.Files.Bytes {
		problems = append(problems, fmt.Sprintf("%s/: %d bytes, %s says %d", layout.FilesDir, v.rep.Bytes, layout.FileMetadata, v.meta.Files.Bytes))
	}
	v.add(CheckFiles, true, found, problems)
}
