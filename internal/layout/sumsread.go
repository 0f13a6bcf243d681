package layout

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/storage"
)

// Sums is a SHA256SUMS file opened for streaming: its lines are read from the file in path
// order each time Each is called, never held in memory all at once (a backup of millions of
// files has a manifest of hundreds of MB). A file that is not sorted (one written by the
// Python command) is sorted once through an external sort spilling into a folder.
type Sums struct {
	name string
	// Manifest is the hex SHA-256 of the whole file, the metadata's manifest_sha256.
	Manifest string
	// Len is the number of lines.
	Len int
	// Top holds the checksums of the paths outside files/ (fixtures, the file index,
	// restore.sh): a handful, looked up by path.
	Top map[string]string
	// sorted is set when the file was not in path order, and holds its lines sorted.
	sorted *extsort.Sorter
}

// OpenSums reads the SHA256SUMS file at name once, checking every line (see ParseSums) and
// hashing it; spillDir, an existing folder, receives the sorted runs of a file that is not
// in path order ("" keeps them in memory). A path listed twice is an error naming it.
// Close removes the runs.
func OpenSums(name, spillDir string) (*Sums, error) {
	f, err := storage.OpenRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Sums{name: name, Top: map[string]string{}}
	h := sha256.New()
	inOrder := true
	prev := ""
	err = scanSums(io.TeeReader(f, h), func(line int, p, sum string) error {
		if s.Len > 0 && p <= prev {
			if p == prev {
				return fmt.Errorf("parse %s line %d: %q listed twice", FileSums, line, p)
			}
			inOrder = false
		}
		prev = p
		s.Len++
		if !strings.HasPrefix(p, FilesDir+"/") {
			if _, dup := s.Top[p]; dup {
				return fmt.Errorf("parse %s line %d: %q listed twice", FileSums, line, p)
			}
			s.Top[p] = sum
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(h, f); err != nil { // what the scanner left unread, if anything
		return nil, fmt.Errorf("read %s: %w", FileSums, err)
	}
	s.Manifest = hex.EncodeToString(h.Sum(nil))
	if !inOrder {
		if err := s.sortLines(spillDir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// sortLines reads the file again into an external sort.
func (s *Sums) sortLines(spillDir string) error {
	f, err := storage.OpenRegular(s.name)
	if err != nil {
		return err
	}
	defer f.Close()
	s.sorted = extsort.New(spillDir, 8<<20)
	return scanSums(f, func(_ int, p, sum string) error { return s.sorted.Add(p, []byte(sum)) })
}

// Close removes the sorted runs of a file that was not in path order.
func (s *Sums) Close() error {
	if s == nil || s.sorted == nil {
		return nil
	}
	return s.sorted.Close()
}

// Each calls fn with every path and its hex checksum (lower case), in path order (byte
// order). A path listed twice is an error.
func (s *Sums) Each(fn func(p, sum string) error) error {
	if s.sorted != nil {
		first, prev := true, ""
		return s.sorted.Each(func(p string, sum []byte) error {
			if !first && p == prev {
				return fmt.Errorf("parse %s: %q %w", FileSums, p, ErrListedTwice)
			}
			first, prev = false, p
			return fn(p, string(sum))
		})
	}
	f, err := storage.OpenRegular(s.name)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanSums(f, func(_ int, p, sum string) error { return fn(p, sum) })
}

// scanSums parses r line by line, calling fn with each line's number, path and checksum.
func scanSums(r io.Reader, fn func(line int, p, sum string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSumsLine)
	for line := 1; sc.Scan(); line++ {
		p, sum, err := parseSumLine(sc.Text())
		if err != nil {
			return fmt.Errorf("parse %s line %d: %w", FileSums, line, err)
		}
		if err := fn(line, p, sum); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("parse %s: line longer than %d bytes", FileSums, maxSumsLine)
		}
		return fmt.Errorf("parse %s: %w", FileSums, err)
	}
	return nil
}

// Join calls fn with the union of two streams of paths, each in path order without
// duplicates, in path order: inA and inB say which stream holds the path, a and b are the
// values found there. Each stream is pushed by its own function, so neither is held in
// memory; the second runs in a goroutine of its own.
func Join[A, B any](eachA func(fn func(p string, a A) error) error, eachB func(fn func(p string, b B) error) error,
	fn func(p string, a A, inA bool, b B, inB bool) error) error {
	type item struct {
		p string
		b B
	}
	items := make(chan item, 256)
	stop := make(chan struct{})
	bErr := make(chan error, 1)
	go func() {
		defer close(items)
		bErr <- eachB(func(p string, b B) error {
			select {
			case items <- item{p, b}:
				return nil
			case <-stop:
				return errJoinStopped
			}
		})
	}()
	var zeroB B
	var zeroA A
	var next item
	ok, bDone := false, false
	var bResult error
	// recv takes the next item of B; at its end, B's error (sent before the channel closed)
	// stops the join rather than let the rest of A pass for paths B does not hold.
	recv := func() error {
		next, ok = <-items
		if !ok && !bDone {
			bDone, bResult = true, <-bErr
			return bResult
		}
		return nil
	}
	err := recv()
	if err == nil {
		err = eachA(func(p string, a A) error {
			for ok && next.p < p {
				if err := fn(next.p, zeroA, false, next.b, true); err != nil {
					return err
				}
				if err := recv(); err != nil {
					return err
				}
			}
			if ok && next.p == p {
				b := next.b
				if err := recv(); err != nil {
					return err
				}
				return fn(p, a, true, b, true)
			}
			return fn(p, a, true, zeroB, false)
		})
	}
	for err == nil && ok {
		if err = fn(next.p, zeroA, false, next.b, true); err == nil {
			err = recv()
		}
	}
	close(stop)
	for range items { // let the producer see stop and end
	}
	if !bDone {
		bResult = <-bErr
	}
	if err == nil && !errors.Is(bResult, errJoinStopped) {
		err = bResult
	}
	return err
}

// ErrListedTwice is the error of a SHA256SUMS file that lists a path twice.
var ErrListedTwice = errors.New("listed twice")

var errJoinStopped = errors.New("join stopped")
