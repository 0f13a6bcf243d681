package layout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sumLines builds SHA256SUMS content from paths, in the order given.
func sumLines(paths ...string) string {
	var b strings.Builder
	for i, p := range paths {
		b.WriteString(sumLine(p, fmt.Sprintf("%064x", i+1)))
	}
	return b.String()
}

func writeSums(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), FileSums)
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func eachPath(t *testing.T, s *Sums) ([]string, error) {
	t.Helper()
	var got []string
	err := s.Each(func(p, _ string) error {
		got = append(got, p)
		return nil
	})
	return got, err
}

// OpenSums streams SHA256SUMS in path order, sorted or not (an unsorted one through runs on
// disk), keeps the paths outside files/ for lookups, and finds a path listed twice however
// far apart the two lines are.
func TestOpenSums(t *testing.T) {
	sorted := []string{"db_a.json", "files/a", "files/b\nnewline", "files/c", "restore.sh"}
	tests := []struct {
		name    string
		content string
		wantErr string // on open or on Each
	}{
		{"sorted", sumLines(sorted...), ""},
		{"reversed", sumLines("restore.sh", "files/c", "files/b\nnewline", "files/a", "db_a.json"), ""},
		{"twice, adjacent", sumLines("files/a", "files/a"), `"files/a" listed twice`},
		{"twice, far apart", sumLines("files/c", "files/a", "files/b", "files/c"), `"files/c" listed twice`},
		{"bad line", "not a sum line\n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenSums(writeSums(t, tt.content), t.TempDir())
			if err == nil {
				defer s.Close()
				var got []string
				got, err = eachPath(t, s)
				if err == nil && !slices.Equal(got, sorted) {
					t.Fatalf("Each: %q, want %q", got, sorted)
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			case tt.wantErr == "":
				if s.Len != len(sorted) || len(s.Top) != 2 || s.Top["restore.sh"] == "" {
					t.Fatalf("Len %d, Top %v", s.Len, s.Top)
				}
			}
		})
	}
	s, err := OpenSums(writeSums(t, sumLines("files/c", "files/a", "files/c")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := eachPath(t, s); !errors.Is(err, ErrListedTwice) {
		t.Fatalf("duplicate in an unsorted file: %v, want ErrListedTwice", err)
	}
}

// Join yields the union of two sorted streams in order, saying which holds each path, and an
// error from either side or from fn stops it.
func TestJoin(t *testing.T) {
	push := func(paths ...string) func(fn func(p string, v int) error) error {
		return func(fn func(p string, v int) error) error {
			for i, p := range paths {
				if err := fn(p, i+1); err != nil {
					return err
				}
			}
			return nil
		}
	}
	tests := []struct {
		name string
		a, b []string
		want string
	}{
		{"both empty", nil, nil, ""},
		{"a only", []string{"x", "y"}, nil, "x:A y:A"},
		{"b only", nil, []string{"x", "y"}, "x:B y:B"},
		{"interleaved", []string{"a", "c", "e"}, []string{"b", "c", "d", "f"}, "a:A b:B c:AB d:B e:A f:B"},
		{"b before and after", []string{"m"}, []string{"a", "z"}, "a:B m:A z:B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := Join(push(tt.a...), push(tt.b...), func(p string, a int, inA bool, b int, inB bool) error {
				w := p + ":"
				if inA {
					w += "A"
				}
				if inB {
					w += "B"
				}
				if inA != (a != 0) || inB != (b != 0) {
					t.Errorf("%s: values %d %d do not match the flags", p, a, b)
				}
				got = append(got, w)
				return nil
			})
			if err != nil || strings.Join(got, " ") != tt.want {
				t.Fatalf("Join: %q %v, want %q", got, err, tt.want)
			}
		})
	}
	stop := errors.New("stop")
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("k%05d", i)
	}
	n := 0
	err := Join(push("k00001"), push(many...), func(string, int, bool, int, bool) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("stopped join: %v after %d calls", err, n)
	}
	// An error of the second stream stops the join: the rest of the first is not taken for
	// paths the second lacks.
	failing := func(fn func(string, int) error) error {
		if err := fn("a", 1); err != nil {
			return err
		}
		return stop
	}
	var aOnly []string
	err = Join(push("a", "b", "c"), failing, func(p string, _ int, _ bool, _ int, inB bool) error {
		if !inB {
			aOnly = append(aOnly, p)
		}
		return nil
	})
	if !errors.Is(err, stop) || len(aOnly) > 0 {
		t.Fatalf("error of the second stream: %v, paths taken as missing from it: %q", err, aOnly)
	}
}
