// Package references is the database ↔ storage cross-check: every file path a row names in a
// file field of the model description (platform.Field.IsFile) is looked up among the files
// the storage (or a backup) holds. A row naming a file that is not there is a broken
// platform: the check reports it, naming the model, pk, field and path.
//
// It streams: the references are sorted by path through internal/extsort (runs spilled to
// disk past a memory budget) and merge-joined with the files, given in key order, so memory
// does not grow with the number of rows or files.
package references

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// Ref is one file path a row names.
type Ref struct {
	Model string `json:"m"`
	PK    string `json:"pk"`
	Field string `json:"f"`
	Path  string `json:"p"`
}

// String names the row, field and path, for warnings.
func (r Ref) String() string {
	return fmt.Sprintf("%s pk %s field %s names %q", r.Model, r.PK, r.Field, r.Path)
}

// FromObject calls fn for each file field of obj (a row of m) that names a file: a field left
// empty ("" or null) names none.
func FromObject(m platform.Model, obj *fixture.Object, fn func(Ref) error) error {
	var pk string
	for _, f := range m.FileFields() {
		raw, ok := obj.Field(f.Name)
		if !ok {
			continue
		}
		text := strings.TrimSpace(string(raw))
		if text == "null" || text == `""` {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s pk %s field %s: not a file name: %.40s", m.Label, pkText(obj.PK), f.Name, text)
		}
		if pk == "" {
			pk = pkText(obj.PK)
		}
		if err := fn(Ref{Model: m.Label, PK: pk, Field: f.Name, Path: s}); err != nil {
			return err
		}
	}
	return nil
}

// pkText is a pk as a warning shows it: an integer as is, a string without its quotes.
func pkText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// Scan reads a fixture of m from r (a whole file, or with chunk the objects of a chunk
// without brackets) and calls fn for every file path its rows name.
func Scan(ctx context.Context, m platform.Model, r io.Reader, chunk bool, fn func(Ref) error) error {
	if chunk {
		r = io.MultiReader(strings.NewReader("["), r, strings.NewReader("]"))
	}
	fr := fixture.NewReader(r)
	fr.AcceptNonFinite() // the export warns about such a value; it names no file
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		obj, err := fr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the file names of %s: %w", m.Label, err)
		}
		if err := FromObject(m, &obj, fn); err != nil {
			return err
		}
	}
}

// ListWriter writes references as JSON lines: what an export task leaves for the
// coordinator.
type ListWriter struct {
	bw *bufio.Writer
}

// NewListWriter writes to w; call Flush at the end.
func NewListWriter(w io.Writer) *ListWriter { return &ListWriter{bw: bufio.NewWriterSize(w, 64<<10)} }

// Add writes one reference.
func (w *ListWriter) Add(r Ref) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("reference list: %w", err)
	}
	data = append(data, '\n')
	_, err = w.bw.Write(data)
	return err
}

// Flush writes what is buffered.
func (w *ListWriter) Flush() error { return w.bw.Flush() }

// ReadList calls fn for each reference of a list ListWriter wrote.
func ReadList(r io.Reader, fn func(Ref) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var ref Ref
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			return fmt.Errorf("reference list line %d: %w", line, err)
		}
		if err := fn(ref); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reference list: %w", err)
	}
	return nil
}

// Checker gathers references in any order and checks them against the files.
type Checker struct {
	refs  *extsort.Sorter
	files *extsort.Sorter
}

// NewChecker returns an empty checker whose sorts spill runs of about budget bytes under dir
// (an existing folder; "" keeps everything in memory). Close removes them.
func NewChecker(dir string, budget int) *Checker {
	return &Checker{refs: extsort.New(dir, budget), files: extsort.New(dir, budget)}
}

// Add records one reference.
func (c *Checker) Add(r Ref) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("reference %s: %w", r, err)
	}
	return c.refs.Add(r.Path, data)
}

// AddFile records one file the storage (or backup) holds, by its storage key, in any order.
func (c *Checker) AddFile(key string) error { return c.files.Add(key, nil) }

// Close removes the sorts' run files.
func (c *Checker) Close() error { return errors.Join(c.refs.Close(), c.files.Close()) }

// Check joins the references with the files added by AddFile and returns what it found:
// counts and the first layout.MaxMissingListed missing references, in path order. missing,
// if set, is called for every missing reference.
func (c *Checker) Check(ctx context.Context, missing func(Ref) error) (*layout.References, error) {
	return Join(ctx, c.refs.Each, func(fn func(string) error) error {
		return c.files.Each(func(key string, _ []byte) error { return fn(key) })
	}, missing)
}

// ErrUnsorted is CheckSorted's failure when the files it is given are not in key order.
var ErrUnsorted = errors.New("files not in key order")

// CheckSorted is Check for files that come in key order already (byte order, duplicates
// allowed), as a sorted file index yields them: they are joined as they come, with no sort of
// their own, and read only as far as the last reference. Files out of order fail it with
// ErrUnsorted (then add them with AddFile and Check). It reports no missing reference one by
// one: a join cut short by ErrUnsorted would have reported some before the retry.
func (c *Checker) CheckSorted(ctx context.Context, files func(fn func(key string) error) error) (*layout.References, error) {
	return Join(ctx, c.refs.Each, func(fn func(string) error) error {
		prev, first := "", true
		return files(func(k string) error {
			if !first && k < prev {
				return fmt.Errorf("%w: %q after %q", ErrUnsorted, k, prev)
			}
			prev, first = k, false
			return fn(k)
		})
	}, nil)
}

// Join merge-joins references (sorted by path, as a Checker's sorter yields them: key the
// path, value the JSON of the Ref) with file keys in byte order (duplicates allowed).
func Join(ctx context.Context, refs func(fn func(path string, value []byte) error) error, files func(fn func(key string) error) error, missing func(Ref) error) (*layout.References, error) {
	keys := make(chan string, 256)
	stop := make(chan struct{})
	filesErr := make(chan error, 1)
	go func() {
		defer close(keys)
		filesErr <- files(func(k string) error {
			select {
			case keys <- k:
				return nil
			case <-stop:
				return errStopped
			}
		})
	}()
	rep := &layout.References{Checked: true}
	cur, ok := <-keys
	err := refs(func(p string, value []byte) error {
		if rep.Refs%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Refs++
		for ok && cur < p {
			cur, ok = <-keys
		}
		if ok && cur == p {
			return nil
		}
		return note(rep, value, missing)
	})
	close(stop)
	for range keys { // let the producer see stop and end
	}
	if ferr := <-filesErr; err == nil && ferr != nil && !errors.Is(ferr, errStopped) {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

var errStopped = errors.New("join stopped")

// note counts one missing reference and lists the first ones.
func note(rep *layout.References, value []byte, missing func(Ref) error) error {
	var r Ref
	if err := json.Unmarshal(value, &r); err != nil {
		return fmt.Errorf("sorted reference: %w", err)
	}
	rep.Missing++
	if len(rep.MissingList) < layout.MaxMissingListed {
		rep.MissingList = append(rep.MissingList, layout.MissingReference{Model: r.Model, PK: r.PK, Field: r.Field, Path: r.Path})
	} else {
		rep.Truncated = true
	}
	if missing != nil {
		return missing(r)
	}
	return nil
}

// Warnings are the warnings a run reports for rep: one per listed missing reference, up to
// max, then one counting the rest.
func Warnings(rep *layout.References, max int) []string {
	if rep == nil || rep.Missing == 0 {
		return nil
	}
	var out []string
	for i, m := range rep.MissingList {
		if i == max {
			break
		}
		out = append(out, fmt.Sprintf("%s pk %s field %s names file %q, which the storage does not hold (a broken reference on the platform)", m.Model, m.PK, m.Field, m.Path))
	}
	if rest := rep.Missing - int64(len(out)); rest > 0 {
		out = append(out, fmt.Sprintf("%d more rows name files the storage does not hold (%d in all; see references in the metadata)", rest, rep.Missing))
	}
	return out
}

// KeyOf is the storage key of a backed-up file as its index or sums entry gives it: its Key,
// or for an entry without one (an archive's) its path under files/, unescaped when the
// backup stores names escaped (layout.NamesEscaped).
func KeyOf(e messages.FileEntry, nameEncoding string) string {
	if e.Key != "" {
		return e.Key
	}
	key := strings.TrimPrefix(e.Path, layout.FilesDir+"/")
	if nameEncoding == layout.NamesEscaped {
		if k, err := storage.UnescapeKey(key); err == nil {
			key = k
		}
	}
	return key
}
