package layout

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxRecordedFolders bounds the folders a backup's metadata records (FolderSummary), which is
// read whole: beyond it, a folder is a warning naming it, as when nothing was recorded.
const MaxRecordedFolders = 10000

// FolderSummary records what the files of a local storage do not bring back of its folders:
// the empty ones, which hold no file, and those whose permissions differ from the storage
// folder's (a private 0700 folder under a 0755 storage), which a restore would otherwise make
// with the storage folder's own. Keys are storage keys ending in "/".
type FolderSummary struct {
	// Empty lists the empty folders, sorted.
	Empty []string `json:"empty,omitempty"`
	// Modes lists, by permissions (octal, "0700"), the folders that have their own.
	Modes map[string][]string `json:"modes,omitempty"`
}

// Record notes folder key (ending in "/"): empty, and with permissions mode of its own when
// own. It returns false, recording nothing, when the folder cannot be recorded: its name is no
// text JSON can carry as it is, or the summary is full (MaxRecordedFolders); the caller warns
// of it instead.
func (f *FolderSummary) Record(key string, empty bool, mode fs.FileMode, own bool) bool {
	if !recordableFolder(key) || f.Len() >= MaxRecordedFolders {
		return false
	}
	if empty {
		f.Empty = append(f.Empty, key)
	}
	if own {
		if f.Modes == nil {
			f.Modes = map[string][]string{}
		}
		k := FormatMode(mode)
		f.Modes[k] = append(f.Modes[k], key)
	}
	return true
}

// recordableFolder: a folder key JSON keeps byte for byte (valid UTF-8, no control
// character), whose name checkFolders accepts.
func recordableFolder(key string) bool {
	if !utf8.ValidString(key) || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	return checkFolderKey(key) == nil
}

// Len is the number of entries recorded.
func (f *FolderSummary) Len() int {
	if f == nil {
		return 0
	}
	n := len(f.Empty)
	for _, keys := range f.Modes {
		n += len(keys)
	}
	return n
}

// Each calls empty for each empty folder, shallowest first, then owned for each folder with
// permissions of its own, deepest first, stopping at the first error: the order a restore
// makes and changes them in (a folder made unwritable last, after what goes in it).
func (f *FolderSummary) Each(empty func(key string) error, owned func(key string, mode fs.FileMode) error) error {
	if f == nil {
		return nil
	}
	for _, k := range slices.Sorted(slices.Values(f.Empty)) {
		if err := empty(k); err != nil {
			return err
		}
	}
	type folderMode struct {
		key  string
		mode fs.FileMode
	}
	var all []folderMode
	for m, keys := range f.Modes {
		mode, _ := parseMode(m) // checked by checkFolders
		for _, k := range keys {
			all = append(all, folderMode{k, mode})
		}
	}
	slices.SortFunc(all, func(a, b folderMode) int { return strings.Compare(b.key, a.key) })
	for _, o := range all {
		if err := owned(o.key, o.mode); err != nil {
			return err
		}
	}
	return nil
}

// checkFolders refuses a folder summary a restore could not apply as it says: a key that is
// not a clean relative folder name ending in "/" (it could name a place outside the storage),
// or permissions that are not an octal mode of at most 0777.
func (f *FolderSummary) checkFolders() error {
	if f == nil {
		return nil
	}
	for i, k := range f.Empty {
		if err := checkFolderKey(k); err != nil {
			return fmt.Errorf("files.folders.empty[%d]: %w", i, err)
		}
	}
	for m, keys := range f.Modes {
		if _, ok := parseMode(m); !ok {
			return fmt.Errorf("files.folders.modes: key %q: want an octal mode from 0000 to 0777", m)
		}
		for i, k := range keys {
			if err := checkFolderKey(k); err != nil {
				return fmt.Errorf("files.folders.modes[%q][%d]: %w", m, i, err)
			}
		}
	}
	return nil
}

// checkFolderKey accepts "a/b/": a clean relative path and a slash.
func checkFolderKey(k string) error {
	p, ok := strings.CutSuffix(k, "/")
	if !ok {
		return fmt.Errorf("folder %q does not end in /", k)
	}
	return checkSumPath(p)
}
