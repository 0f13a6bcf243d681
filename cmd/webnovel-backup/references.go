package main

import (
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// referencesLine sums up the database ↔ storage cross-check for a text report ("" when the
// run made none).
func referencesLine(r *layout.References) string {
	switch {
	case r == nil:
		return ""
	case !r.Checked && r.Refs == 0:
		return "not checked: " + r.Reason
	case r.Missing == 0:
		return fmt.Sprintf("%d file paths named by rows, all backed up", r.Refs)
	}
	return fmt.Sprintf("%d file paths named by rows, %d missing from the storage (see the warnings)", r.Refs, r.Missing)
}
