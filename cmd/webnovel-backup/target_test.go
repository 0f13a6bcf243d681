package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// commandOnPath puts a webnovel-backup on a fresh PATH folder that runs this test binary as
// the command, and returns the folder.
func commandOnPath(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n" + envAsCommand + "=1 exec " + shellQuote(self) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "webnovel-backup"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// migratedSQLite creates an empty database with the platform's schema at path.
func migratedSQLite(t *testing.T, path string) string {
	t.Helper()
	url := "sqlite:///" + path
	db, err := database.Create(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	return url
}

// Item 9: the generated restore.sh, run with the defaults (./db.sqlite3, ./media) from the
// caller's folder, restores into the caller's platform, not into the backup.
func TestRestoreScriptTargetsCallersPlatform(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	want := rowCount(t, "sqlite:///"+filepath.Join(dir, "db.sqlite3"), "books.chapter")
	caller := t.TempDir()
	callerDB := migratedSQLite(t, filepath.Join(caller, "db.sqlite3"))

	cmd := exec.Command("sh", filepath.Join(backup, layout.FileRestore), "--force", "--skip-preflight")
	cmd.Dir = caller
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "STORAGE_URL=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PATH="+commandOnPath(t)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore.sh: %v\n%s", err, out)
	}
	if n := rowCount(t, callerDB, "books.chapter"); n != want {
		t.Errorf("caller's database has %d chapters, want %d", n, want)
	}
	if _, err := os.Stat(filepath.Join(caller, "media", "content")); err != nil {
		t.Errorf("caller's ./media not restored: %v", err)
	}
	for _, p := range []string{"db.sqlite3", "media"} {
		if _, err := os.Stat(filepath.Join(backup, p)); err == nil {
			t.Errorf("restore.sh wrote %s into the backup", p)
		}
	}
	if code, out := cli(t, dir, "verify", backup); code != 0 {
		t.Errorf("the backup no longer verifies:\n%s", out)
	}
}

// Item 9: a restore whose SQLite file or storage folder lies inside the backup it reads is
// refused, naming the flag, and nothing is created, also through a symlink.
func TestRestoreRefusesTargetInsideBackup(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(backup, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"database in the backup", []string{"--database", "sqlite:///" + filepath.Join(backup, "db.sqlite3")}, "--database"},
		{"database in a subfolder of the backup", []string{"--database", "sqlite:///" + filepath.Join(backup, "files", "x", "db.sqlite3")}, "--database"},
		{"storage in the backup", []string{"--storage", filepath.Join(backup, "media")}, "--storage"},
		{"storage is the backup", []string{"--storage", "file://" + backup}, "--storage"},
		{"storage through a symlink to the backup", []string{"--storage", filepath.Join(link, "media")}, "--storage"},
		{"relative storage from inside the backup", []string{"--storage", "./media"}, "--storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emptyTarget(t)
			wd := dir
			if strings.HasPrefix(tt.args[1], "./") {
				wd = backup
			}
			args := append([]string{"restore", backup, "--force"}, tt.args...)
			code, out := cli(t, wd, args...)
			if code != 2 || !strings.Contains(out, tt.flag+" ") || !strings.Contains(out, "inside the backup") {
				t.Fatalf("exit %d, want 2 naming %s:\n%s", code, tt.flag, out)
			}
			for _, p := range []string{"db.sqlite3", "media", "files/x"} {
				if _, err := os.Stat(filepath.Join(backup, p)); err == nil {
					t.Errorf("refused restore created %s in the backup", p)
				}
			}
		})
	}
	if code, out := cli(t, dir, "verify", backup); code != 0 {
		t.Errorf("the backup no longer verifies:\n%s", out)
	}
}
