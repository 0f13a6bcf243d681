package layout

import (
	"hash/maphash"
	"slices"
)

// PathSet is a set of paths held as 8 bytes each, a 64-bit hash under a key drawn at random
// for the set: it answers "does the manifest list this path" for millions of paths without
// holding them in memory. Has may say yes for a path never added, with a probability of
// about Len/2^64; the key is secret and new each time, so no path can be crafted to aim for
// that. It serves early refusals; whatever must be exact is checked against the paths
// themselves. Not safe for concurrent use.
type PathSet struct {
	seed   maphash.Seed
	hashes []uint64
	sorted bool
}

// NewPathSet returns an empty set with a fresh key.
func NewPathSet() *PathSet { return &PathSet{seed: maphash.MakeSeed(), sorted: true} }

// Add adds p.
func (s *PathSet) Add(p string) {
	s.hashes = append(s.hashes, maphash.String(s.seed, p))
	s.sorted = false
}

// Has reports whether p was added (see PathSet for the one-sided error).
func (s *PathSet) Has(p string) bool {
	if !s.sorted {
		slices.Sort(s.hashes)
		s.hashes = slices.Compact(s.hashes)
		s.sorted = true
	}
	_, ok := slices.BinarySearch(s.hashes, maphash.String(s.seed, p))
	return ok
}

// Len is the number of distinct paths added (or, before the first Has, of paths added).
func (s *PathSet) Len() int { return len(s.hashes) }
