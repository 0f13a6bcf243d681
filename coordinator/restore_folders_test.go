package coordinator

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// The recorded folders are planned for a whole restore into a local storage; into S3, which
// has no folders, they are a warning that says none is made; with --skip-files, nothing.
func TestPlanFolders(t *testing.T) {
	folders := &layout.FolderSummary{}
	folders.Record("empty/", true, 0o755, false)
	folders.Record("private/", false, 0o700, true)
	for _, tt := range []struct {
		name    string
		o       RestoreOptions
		planned int
		warning string
	}{
		{"local", RestoreOptions{StorageURL: "/srv/media"}, 2, ""},
		{"s3", RestoreOptions{StorageURL: "s3://bucket/media/"}, 0, "2 folders of its storage"},
		{"skip files", RestoreOptions{StorageURL: "/srv/media", SkipFiles: true}, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := &RestorePlan{Metadata: &layout.Metadata{}}
			plan.Metadata.Files.Folders = folders
			planFolders(tt.o, plan)
			warned := strings.Join(plan.Warnings, "\n")
			if plan.Folders != tt.planned || (tt.warning == "") != (warned == "") || !strings.Contains(warned, tt.warning) {
				t.Fatalf("planned %d folders, warnings %q; want %d and %q", plan.Folders, warned, tt.planned, tt.warning)
			}
		})
	}
}

// A second restore into a storage whose recorded folders are read-only (as the first one made
// them) opens them to their owner while the files are written, and gives the recorded
// permissions back after; a folder its owner may write into is left as it is, and a storage
// that does not exist yet is no error.
func TestOpenFoldersThenRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	plan := &RestorePlan{Metadata: &layout.Metadata{}, Folders: 2}
	plan.Metadata.Files.Folders = &layout.FolderSummary{}
	plan.Metadata.Files.Folders.Record("frozen/", false, 0o555, true)
	plan.Metadata.Files.Folders.Record("private/", false, 0o700, true)
	o := RestoreOptions{StorageURL: dir}
	if err := openFolders(o, plan); err != nil {
		t.Fatalf("open the folders of a storage that does not exist: %v", err)
	}
	for name, mode := range map[string]fs.FileMode{"frozen": 0o555, "private": 0o700} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "frozen"), 0o755) })
	modes := func() string {
		var out []string
		for _, name := range []string{"frozen", "private"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %04o", name, fi.Mode().Perm()))
		}
		return strings.Join(out, ", ")
	}
	if err := openFolders(o, plan); err != nil {
		t.Fatal(err)
	}
	if got, want := modes(), "frozen 0755, private 0700"; got != want {
		t.Fatalf("while the files are written: %s, want %s", got, want)
	}
	if err := restoreFolders(o, plan); err != nil {
		t.Fatal(err)
	}
	if got, want := modes(), "frozen 0555, private 0700"; got != want {
		t.Fatalf("after the restore: %s, want %s", got, want)
	}
}

// nearestFolder finds the folder a missing storage folder is made in, and the path to make.
func TestNearestFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ p, above, rel string }{
		{dir, dir, ""},
		{dir + "/", dir, ""},
		{filepath.Join(dir, "media"), dir, "media"},
		{filepath.Join(dir, "srv/app/media"), dir, "srv/app/media"},
		{filepath.Join(dir, "file"), filepath.Join(dir, "file"), ""}, // exists: the restore reports it is no folder
	} {
		above, rel := nearestFolder(tt.p)
		if above != tt.above || rel != tt.rel {
			t.Errorf("nearestFolder(%q) = %q, %q; want %q, %q", tt.p, above, rel, tt.above, tt.rel)
		}
	}
}
