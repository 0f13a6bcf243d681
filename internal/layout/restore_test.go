package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeBackupWithScript writes restore.sh for m into a folder whose name has
// a space, and returns the folder.
func writeBackupWithScript(t *testing.T, m *Metadata) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := filepath.Join(t.TempDir(), "my backups", Name(m.BackupTimestamp))
	if err := os.MkdirAll(filepath.Join(dir, FilesDir, "content"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRestoreScript(dir, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileRestore))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != ScriptMode {
		t.Errorf("restore.sh mode %v, want 0700", fi.Mode().Perm())
	}
	return dir
}

func TestRestoreScriptGolden(t *testing.T) {
	golden(t, "restore.golden.sh", RestoreScript(sampleMetadata()))
}

func TestRestoreScriptExecsTool(t *testing.T) {
	dir := writeBackupWithScript(t, sampleMetadata())
	bin := t.TempDir()
	record := filepath.Join(t.TempDir(), "args")
	fake := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + shQuote(record) + "\npwd >> " + shQuote(record) + "\n"
	if err := os.WriteFile(filepath.Join(bin, "webnovel-backup"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	// Run from another folder, by relative path, to check the script finds itself.
	cmd := exec.Command("sh", filepath.Join(filepath.Base(dir), FileRestore), "--force", "--skip-files")
	cmd.Dir = filepath.Dir(dir)
	cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore.sh: %v\n%s", err, out)
	}
	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	// Item 9: the tool runs in the caller's folder, where the caller's platform is.
	want := "restore\n" + dir + "\n--force\n--skip-files\n" + filepath.Dir(dir) + "\n"
	if string(data) != want {
		t.Errorf("webnovel-backup ran with\n%s\nwant\n%s", data, want)
	}
}

func TestRestoreScriptManual(t *testing.T) {
	m := sampleMetadata()
	m.Models = append(m.Models, ModelEntry{Label: "books.Language", File: "db_books_language.json"})
	dir := writeBackupWithScript(t, m)
	cmd := exec.Command("sh", filepath.Join(dir, FileRestore))
	cmd.Env = []string{"PATH=" + t.TempDir()} // no webnovel-backup, no other tools
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("restore.sh without the tool: %v, want exit 1\n%s", err, out)
	}
	var loads []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "loaddata") {
			loads = append(loads, strings.TrimSpace(l))
		}
	}
	want := []string{
		"python manage.py loaddata '" + dir + "/db_books_book.json'",
		"python manage.py loaddata '" + dir + "/db_books_chapter.json'",
		"python manage.py loaddata '" + dir + "/db_books_language.json'",
	}
	if !equalStrings(loads, want) {
		t.Errorf("loaddata lines\n%q\nwant\n%q\noutput:\n%s", loads, want, out)
	}
	if wantCp := "cp -a '" + dir + "/files/.' \"$MEDIA_ROOT\"/"; !strings.Contains(string(out), wantCp) {
		t.Errorf("output lacks %s:\n%s", wantCp, out)
	}
}

func TestRestoreScriptNoModels(t *testing.T) {
	m := sampleMetadata()
	m.Models = nil
	m.StorageBackend = StorageS3
	dir := writeBackupWithScript(t, m)
	cmd := exec.Command("sh", filepath.Join(dir, FileRestore))
	cmd.Env = []string{"PATH=" + t.TempDir()}
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "loaddata") || !strings.Contains(string(out), "no database fixtures") ||
		!strings.Contains(string(out), "aws s3 cp") {
		t.Errorf("output:\n%s", out)
	}
}

// Without the tool, restore.sh prints steps that work on what the backup holds: an encrypted
// backup's NAME.age decrypted with age first (its key unsealed first in passphrase mode), and
// the platform's permissions given back (the backup's own copies are private).
func TestRestoreScriptManualSteps(t *testing.T) {
	for _, tt := range []struct {
		name      string
		enc       *Encryption
		want, not []string
	}{
		{"plain", nil, []string{"loaddata", "cp -a", "chmod 0644"}, []string{"age -d"}},
		{"recipients", &Encryption{Format: "age", Mode: "recipients"},
			[]string{"age -d -i key.txt", ".json.age' > 'db_books_book.json' && python manage.py loaddata", "age -d -i \"$OLDPWD/key.txt\"", "chmod 0644"},
			[]string{"cp -a", "backup_key.age"}},
		{"passphrase", &Encryption{Format: "age", Mode: "passphrase", Key: "backup_key.age"},
			[]string{"/backup_key.age' > key.txt", "age -d -i key.txt"}, []string{"cp -a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMetadata()
			m.Encryption = tt.enc
			m.Files.DefaultMode = "0644"
			dir := writeBackupWithScript(t, m)
			cmd := exec.Command("sh", filepath.Join(dir, FileRestore))
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // no webnovel-backup
			out, _ := cmd.CombinedOutput()
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the steps do not say %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(string(out), w) {
					t.Errorf("the steps say %q:\n%s", w, out)
				}
			}
		})
	}
}
