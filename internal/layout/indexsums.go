package layout

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/webnovel/webnovel-backup/messages"
)

// SumsJoin fills in the sums a file index leaves out (FileIndexWriter.OmitSums) from the
// backup's SHA256SUMS, which lists the same paths in the same byte order: entries are
// asked for in increasing path order and the manifest is read forward once, and only when
// an entry lacks its sum (an index of an earlier version carries them all, and its backup's
// SHA256SUMS is never opened). An entry the manifest does not list keeps no sum, so it is
// never taken as unchanged. The manifest must be the one its metadata vouches for: the
// caller checks it, as it checks the index.
type SumsJoin struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	sc   *bufio.Scanner
	line int
	path string // the current line's path and sum
	sum  string
	done bool
	last string // the last path asked for
}

// NewSumsJoin returns a join that opens the manifest with open when it first needs it.
func NewSumsJoin(open func() (io.ReadCloser, error)) *SumsJoin {
	return &SumsJoin{open: open}
}

// Fill sets e.SHA256 from the manifest when the index left it out. Paths must come in
// increasing order.
func (j *SumsJoin) Fill(e *messages.FileEntry) error {
	if e.SHA256 != "" {
		return nil
	}
	if j.last != "" && e.Path <= j.last {
		return fmt.Errorf("%s: %q asked for after %q (the index must be sorted)", FileSums, e.Path, j.last)
	}
	j.last = e.Path
	if j.sc == nil && !j.done {
		rc, err := j.open()
		if err != nil {
			return fmt.Errorf("read %s: %w", FileSums, err)
		}
		j.rc = rc
		j.sc = bufio.NewScanner(rc)
		j.sc.Buffer(make([]byte, 0, 64<<10), maxSumsLine)
		if err := j.next(); err != nil {
			return err
		}
	}
	for !j.done && j.path < e.Path {
		if err := j.next(); err != nil {
			return err
		}
	}
	if !j.done && j.path == e.Path {
		e.SHA256 = j.sum
	}
	return nil
}

// next reads the manifest's next line, checking the order it relies on.
func (j *SumsJoin) next() error {
	if !j.sc.Scan() {
		j.done = true
		if err := j.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("parse %s: line longer than %d bytes", FileSums, maxSumsLine)
			}
			return fmt.Errorf("read %s: %w", FileSums, err)
		}
		return nil
	}
	j.line++
	p, sum, err := parseSumLine(j.sc.Text())
	if err != nil {
		return fmt.Errorf("parse %s line %d: %w", FileSums, j.line, err)
	}
	if j.line > 1 && p <= j.path {
		return fmt.Errorf("%s line %d: %q is not after %q (a manifest this tool wrote is sorted, each path once)", FileSums, j.line, p, j.path)
	}
	j.path, j.sum = p, sum
	return nil
}

// Close closes the manifest, if it was opened.
func (j *SumsJoin) Close() error {
	if j.rc == nil {
		return nil
	}
	return j.rc.Close()
}
