package layout

import (
	"fmt"
	"io/fs"
	"slices"
	"testing"
)

// A folder summary records empty folders and folders with permissions of their own, refuses a
// name JSON would not carry byte for byte, and stops at MaxRecordedFolders (the caller warns
// instead); Each gives them in the order a restore applies them: empty folders shallowest
// first, then permissions deepest first.
func TestFolderSummary(t *testing.T) {
	var f FolderSummary
	for _, r := range []struct {
		key       string
		empty     bool
		mode      fs.FileMode
		own, want bool
	}{
		{"a/", false, 0o700, true, true},
		{"a/b/", true, 0o500, true, true},
		{"c/", true, 0o755, false, true},
		{"bad\xff/", true, 0o755, false, false},
		{"tab\t/", true, 0o755, false, false},
		{"../up/", true, 0o755, false, false},
		{"x", true, 0o755, false, false},
	} {
		if got := f.Record(r.key, r.empty, r.mode, r.own); got != r.want {
			t.Errorf("Record(%q) = %v, want %v", r.key, got, r.want)
		}
	}
	if f.Len() != 4 || f.checkFolders() != nil {
		t.Fatalf("summary %+v: %d entries (want 4), check %v", f, f.Len(), f.checkFolders())
	}
	var order []string
	err := f.Each(func(k string) error {
		order = append(order, "mkdir "+k)
		return nil
	}, func(k string, m fs.FileMode) error {
		order = append(order, fmt.Sprintf("chmod %s %04o", k, m))
		return nil
	})
	want := []string{"mkdir a/b/", "mkdir c/", "chmod a/b/ 0500", "chmod a/ 0700"}
	if err != nil || !slices.Equal(order, want) {
		t.Fatalf("Each: %q (%v), want %q", order, err, want)
	}

	var full FolderSummary
	for i := range MaxRecordedFolders {
		if !full.Record(fmt.Sprintf("d%d/", i), true, 0o755, false) {
			t.Fatalf("folder %d not recorded below the bound", i)
		}
	}
	if full.Record("one-more/", true, 0o755, false) || full.Len() != MaxRecordedFolders {
		t.Fatalf("recorded past the bound: %d entries", full.Len())
	}
}
