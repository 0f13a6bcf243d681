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
// The command it prints reads the index in the form the backup has (gzipped or not).
func TestRestoreScriptObjectStore(t *testing.T) {
	for index, read := range map[string]string{FileIndex: "cat files_index.jsonl |", FileIndexGz: "gzip -dc files_index.jsonl.gz |"} {
		script := RestoreScript(&Metadata{Files: FilesSummary{Store: StoreObjects, Index: index}})
		dir := t.TempDir()
		p := filepath.Join(dir, FileRestore)
		if err := os.WriteFile(p, script, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", p)
		cmd.Env = []string{"PATH=" + dir} // no webnovel-backup
		out, _ := cmd.CombinedOutput()
		for _, want := range []string{read, `aws s3 cp "s3://BUCKET/PREFIX/$obj" "$MEDIA_ROOT/$key"`, "IFS=\"$(printf '\\t')\""} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: restore.sh output lacks %q:\n%s", index, want, out)
			}
		}
	}
	if strings.Contains(string(RestoreScript(&Metadata{})), "files_index.jsonl") {
		t.Error("a backup with its own files/ points at the object store")
	}
}
