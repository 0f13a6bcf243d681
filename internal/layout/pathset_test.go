package layout

import (
	"fmt"
	"testing"
)

func TestPathSet(t *testing.T) {
	s := NewPathSet()
	if s.Has("files/a") {
		t.Fatal("an empty set has files/a")
	}
	for i := range 10000 {
		s.Add(fmt.Sprintf("files/%05d.bin", i))
	}
	s.Add("files/00001.bin") // added twice: one member
	for i := range 10000 {
		if p := fmt.Sprintf("files/%05d.bin", i); !s.Has(p) {
			t.Fatalf("%s was added but is not in the set", p)
		}
	}
	for _, p := range []string{"files/10000.bin", "files/0001.bin", "", "files/00001.bin "} {
		if s.Has(p) {
			t.Errorf("%q was never added but is in the set", p)
		}
	}
	if s.Len() != 10000 {
		t.Errorf("Len = %d, want 10000", s.Len())
	}
	s.Add("late") // an Add after Has is seen by the next Has
	if !s.Has("late") {
		t.Error("a path added after a lookup is not in the set")
	}
}
