package retention

import (
	"slices"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// Scope is what a backup holds, read from its metadata's backup_options: retention rules
// apply to each scope on its own, so a partial backup never protects or displaces a full one.
type Scope string

// Scopes of a backup. A model subset is its own scope, "models <labels>" (plus " + files"
// when it holds files), the labels sorted so that the same subset is the same scope.
const (
	// ScopeFull: every model and the file storage.
	ScopeFull Scope = "full"
	// ScopeDatabase: every model, no files (--skip-files).
	ScopeDatabase Scope = "database only"
	// ScopeFiles: the file storage only (--skip-db).
	ScopeFiles Scope = "files only"
	// ScopeUnknown: the metadata was not read (an incomplete backup, an archive not read).
	ScopeUnknown Scope = ""
)

// ScopeOf returns the scope a backup's options give it. Metadata written by the Python
// command records the same options, so its backups get a scope too.
func ScopeOf(o layout.BackupOptions) Scope {
	if o.SkipDB {
		return ScopeFiles
	}
	if o.Models.All() {
		if o.IncludeFiles {
			return ScopeFull
		}
		return ScopeDatabase
	}
	labels := slices.Clone(o.Models.Labels)
	slices.Sort(labels)
	labels = slices.Compact(labels)
	s := "models " + strings.Join(labels, ",")
	if o.IncludeFiles {
		s += " + files"
	}
	return Scope(s)
}
