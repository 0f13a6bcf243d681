package django_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeBinary stands in for webnovel-backup: it records its arguments and environment
// (NUL-separated) in dir, writes a line to each output and exits 7.
const fakeBinary = `#!/bin/sh
for a in "$@"; do printf '%s\0' "$a"; done > "$WNB_FAKE_OUT/argv"
env -0 > "$WNB_FAKE_OUT/env"
echo "fake stdout line"
echo "fake stderr line" >&2
exit 7
`

// TestArgumentsAndEnvironment checks what the commands hand the binary: the arguments as
// typed minus Django's own options (other flags pass through, in order), the database and
// storage from the settings in the environment, every secret in the environment and none on
// the command line; the binary's output reaches the caller and its exit code is the command's.
func TestArgumentsAndEnvironment(t *testing.T) {
	_, python := tools(t)
	manage, _ := filepath.Abs(filepath.Join("tests", "project", "manage.py"))
	work := t.TempDir()
	fake := filepath.Join(work, "fake-webnovel-backup")
	if err := os.WriteFile(fake, []byte(fakeBinary), 0o755); err != nil {
		t.Fatal(err)
	}
	sqlitePath := filepath.Join(work, "db folder", "db.sqlite3")
	postgres := map[string]any{
		"ENGINE": "django.db.backends.postgresql", "NAME": "webnovel", "USER": "app user",
		"PASSWORD": "pg-secret-pw", "HOST": "db.internal", "PORT": "5433",
		"OPTIONS": map[string]any{"sslmode": "require", "isolation_level": 1},
	}
	s3 := `WNB_TEST_S3={"AWS_STORAGE_BUCKET_NAME": "platform-media", "AWS_LOCATION": "/media/",` +
		` "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_S3_REGION_NAME": "eu-west-1",` +
		` "AWS_ACCESS_KEY_ID": "AKIAFAKEKEY", "AWS_SECRET_ACCESS_KEY": "s3-secret-key"}`
	for _, tc := range []struct {
		name     string
		database map[string]any
		extraEnv []string
		args     []string
		wantCode int
		wantArgv []string
		wantEnv  []string // exact KEY=VALUE lines
		noEnv    []string // keys that must be absent
	}{{
		name: "postgres and S3", database: postgres, extraEnv: []string{s3},
		args:     []string{"backup_data", "--backup-dir", "/backups/daily", "--compress", "--json", "-v", "1", "--traceback", "--lock-timeout", "5s"},
		wantCode: 7,
		wantArgv: []string{"backup", "--backup-dir", "/backups/daily", "--compress", "--json", "--lock-timeout", "5s"},
		wantEnv: []string{
			"DATABASE_URL=postgres://app%20user@db.internal:5433/webnovel?sslmode=require",
			"PGPASSWORD=pg-secret-pw",
			"STORAGE_URL=s3://platform-media/media?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true",
			"AWS_ACCESS_KEY_ID=AKIAFAKEKEY", "AWS_SECRET_ACCESS_KEY=s3-secret-key",
		},
	}, {
		name:     "sqlite and MEDIA_ROOT, restore flags passed through",
		database: map[string]any{"ENGINE": "django.db.backends.sqlite3", "NAME": sqlitePath},
		args:     []string{"restore_data", "/backups/backup_20241201_143022", "--models", "books.Book", "books.Chapter", "--merge", "--settings=testsite.settings"},
		wantCode: 7,
		wantArgv: []string{"restore", "/backups/backup_20241201_143022", "--models", "books.Book", "books.Chapter", "--merge"},
		wantEnv:  []string{"DATABASE_URL=sqlite:///" + strings.ReplaceAll(sqlitePath, " ", "%20"), "STORAGE_URL=" + filepath.Join(work, "media")},
		noEnv:    []string{"PGPASSWORD"},
	}, {
		name: "abbreviations written out", database: postgres,
		args:     []string{"backup_data", "--backup", "/b", "--comp", "--verb", "2", "--mod", "books.Book"},
		wantCode: 7,
		wantArgv: []string{"backup", "--backup-dir", "/b", "--compress", "--models", "books.Book"},
	}, {
		name: "verbosity 0 is --quiet", database: postgres,
		args: []string{"test_backup_restore", "-v", "0"}, wantCode: 7,
		wantArgv: []string{"test-backup-restore", "--quiet"},
	}, {
		name: "call_command rebuilds the arguments", database: postgres,
		args: []string{"shell", "-c", "from django.core.management import call_command\n" +
			"call_command('backup_data', backup_dir='/b', compress=True, models=['books.Book', 'accounts.User'])"},
		wantCode: 7, // CommandError(returncode=7), which manage.py shell exits with
		wantArgv: []string{"backup", "--backup-dir", "/b", "--compress", "--models", "books.Book", "accounts.User"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			s := &site{t: t, bin: fake, python: python, manage: manage, work: work, media: filepath.Join(work, "media"), database: tc.database}
			env := s.env(append(tc.extraEnv, "WNB_FAKE_OUT="+out)...)
			r := run(t, work, env, nil, python, append([]string{manage}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.wantCode, r)
			}
			if tc.wantCode == 7 && (!strings.Contains(r.stdout, "fake stdout line") || !strings.Contains(r.stderr, "fake stderr line")) {
				t.Errorf("the binary's output was not passed on: %s", r)
			}
			argv := readNULs(t, filepath.Join(out, "argv"))
			if !slices.Equal(argv, tc.wantArgv) {
				t.Errorf("argv %q, want %q", argv, tc.wantArgv)
			}
			for _, a := range argv {
				for _, secret := range []string{"pg-secret-pw", "s3-secret-key", "AKIAFAKEKEY"} {
					if strings.Contains(a, secret) {
						t.Errorf("argument %q holds a secret", a)
					}
				}
			}
			got := readNULs(t, filepath.Join(out, "env"))
			for _, kv := range tc.wantEnv {
				if !slices.Contains(got, kv) {
					t.Errorf("environment lacks %s", kv)
				}
			}
			for _, k := range tc.noEnv {
				if slices.ContainsFunc(got, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }) {
					t.Errorf("environment has %s", k)
				}
			}
		})
	}
}

func readNULs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the fake binary did not run: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

// stoppableBinary waits to be stopped: SIGTERM makes it record that and exit 143.
const stoppableBinary = `#!/bin/sh
trap 'echo terminated > "$WNB_FAKE_OUT/term"; exit 143' TERM
echo $$ > "$WNB_FAKE_OUT/started.tmp" && mv "$WNB_FAKE_OUT/started.tmp" "$WNB_FAKE_OUT/started"
while :; do sleep 0.1; done
`

// TestTerminateForwarded: a SIGTERM sent to manage.py alone (a supervisor, a CI timeout)
// reaches the binary, so it stops cleanly, and manage.py exits with its code.
func TestTerminateForwarded(t *testing.T) {
	_, python := tools(t)
	manage, _ := filepath.Abs(filepath.Join("tests", "project", "manage.py"))
	work, out := t.TempDir(), t.TempDir()
	fake := filepath.Join(work, "fake-webnovel-backup")
	if err := os.WriteFile(fake, []byte(stoppableBinary), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, bin: fake, python: python, manage: manage, work: work, media: filepath.Join(work, "media"),
		database: map[string]any{"ENGINE": "django.db.backends.sqlite3", "NAME": filepath.Join(work, "db.sqlite3")}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, manage, "backup_data")
	cmd.Dir, cmd.Env = work, s.env("WNB_FAKE_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := waitForFile(t, filepath.Join(out, "started"))
	t.Cleanup(func() { // the binary must not outlive a failed test
		if pid, err := strconv.Atoi(strings.TrimSpace(child)); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("manage.py exited %d (%v), want the binary's 143", code, cmd.ProcessState)
	}
	if _, err := os.Stat(filepath.Join(out, "term")); err != nil {
		t.Errorf("the binary did not get SIGTERM: %v", err)
	}
}

// waitForFile returns the file's content once it exists, failing after 30 s.
func waitForFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 30s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
