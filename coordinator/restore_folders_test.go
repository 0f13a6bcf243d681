package coordinator

import (
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
