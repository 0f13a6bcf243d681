package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An object-store backup's restore.sh says, when webnovel-backup is missing, where each file
// is (files_index.jsonl and the objects beside the backup), and stays a valid shell script.
func TestRestoreScriptObjectStore(t *testing.T) {
	script := RestoreScript(&Metadata{Files: FilesSummary{Store: StoreObjects, Index: FileIndex}})
	dir := t.TempDir()
	p := filepath.Join(dir, FileRestore)
	if err := os.WriteFile(p, script, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", p)
	cmd.Env = []string{"PATH=" + dir} // no webnovel-backup
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{"files_index.jsonl", `aws s3 cp "s3://BUCKET/PREFIX/$obj" "$MEDIA_ROOT/$key"`, "IFS=\"$(printf '\\t')\""} {
		if !strings.Contains(string(out), want) {
			t.Errorf("restore.sh output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(RestoreScript(&Metadata{})), "files_index.jsonl") {
		t.Error("a backup with its own files/ points at the object store")
	}
}
