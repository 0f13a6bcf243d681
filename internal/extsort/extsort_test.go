package extsort

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

func TestSorter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		budget int
		spills bool
		onDisk bool
	}{
		{"in memory", 1000, 0, false, false},
		{"few runs", 1000, 4 << 10, true, true},
		{"merge passes", 20000, 1 << 10, true, true}, // > maxFanIn runs
		{"empty", 0, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.onDisk {
				dir = t.TempDir()
			}
			s := New(dir, tc.budget)
			if tc.budget == 0 {
				s = New("", 1)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var want []string
			for i := range tc.n {
				k := fmt.Sprintf("k/%08d", rng.IntN(tc.n/2+1)) // duplicates on purpose
				want = append(want, k+"="+fmt.Sprint(i))
				if err := s.Add(k, []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if s.Spilled() != tc.spills {
				t.Errorf("Spilled() = %v, want %v", s.Spilled(), tc.spills)
			}
			if s.Len() != tc.n {
				t.Errorf("Len() = %d, want %d", s.Len(), tc.n)
			}
			var got []string
			var last string
			err := s.Each(func(k string, v []byte) error {
				if k < last {
					return fmt.Errorf("%q after %q", k, last)
				}
				last = k
				got = append(got, k+"="+string(v))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %d records, want %d (or different ones)", len(got), len(want))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if dir != "" {
				if left, _ := os.ReadDir(dir); len(left) > 0 {
					t.Errorf("Close left %d run files", len(left))
				}
			}
		})
	}
}

// A run file damaged on disk is an error, not a short or wrong listing.
func TestSorterDamagedRun(t *testing.T) {
	s := New(t.TempDir(), 64)
	defer s.Close()
	for i := range 100 {
		if err := s.Add(fmt.Sprintf("key-%03d", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Spilled() {
		t.Fatal("no run was spilled")
	}
	if err := os.WriteFile(s.runs[0], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Each(func(string, []byte) error { return nil }); err == nil {
		t.Fatal("a damaged run read without error")
	}
}
