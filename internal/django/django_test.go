// Package django_test runs the Django drop-in (the webnovel-backup-django package in this
// folder) as the platform runs it: pip-installed into a virtualenv over the system's Django,
// `python manage.py backup_data …` in a project with the platform's models, on SQLite and on
// PostgreSQL, against the real webnovel-backup binary.
package django_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to read the restored state
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// toolchain is what every test shares: a virtualenv with the package.
var toolchain struct {
	once   sync.Once
	dir    string
	python string // the virtualenv's python, with webnovel_backup_django installed
	skip   string // why the tests cannot run here
	err    error
}

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	proctest.RemoveBinaries()
	if toolchain.dir != "" {
		os.RemoveAll(toolchain.dir)
	}
	os.Exit(code)
}

// tools builds the binary and installs the package once per test process. Without a Python
// that has Django the test is skipped, unless WNB_REQUIRE_POSTGRES=1 (CI), where it fails.
func tools(t *testing.T) (bin, python string) {
	t.Helper()
	toolchain.once.Do(setUpToolchain)
	switch {
	case toolchain.skip != "" && os.Getenv(pgtest.EnvRequire) == "1":
		t.Fatalf("%s (required: %s=1; apt-get install python3-django python3-venv)", toolchain.skip, pgtest.EnvRequire)
	case toolchain.skip != "":
		t.Skip(toolchain.skip)
	case toolchain.err != nil:
		t.Fatal(toolchain.err)
	}
	return proctest.Binary(t), toolchain.python
}

func setUpToolchain() {
	system := djangoPython()
	if system == "" {
		toolchain.skip = "no python3 with Django (Debian: python3-django)"
		return
	}
	dir, err := os.MkdirTemp("", "wnb-django-")
	if err != nil {
		toolchain.err = err
		return
	}
	toolchain.dir = dir
	toolchain.python, toolchain.err = installPackage(system, dir)
}

// djangoPython is the distribution's python3 if it has Django (a pyenv python3 first on PATH
// often does not), else python3 on PATH if that has it.
func djangoPython() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import django").Run() == nil {
			return p
		}
	}
	return ""
}

// installPackage makes a virtualenv that sees the system's Django and pip-installs a copy of
// the package into it (a copy: setuptools writes build folders next to the sources). No
// index is used: Django is the only dependency, and it is the system's.
func installPackage(system, dir string) (string, error) {
	src := filepath.Join(dir, "src")
	for _, p := range []string{"pyproject.toml", "README.md", "webnovel_backup_django"} {
		if err := copyTree(p, filepath.Join(src, p)); err != nil {
			return "", err
		}
	}
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(system, "-m", "venv", "--system-site-packages", venv).CombinedOutput(); err != nil {
		return "", fmt.Errorf("python3 -m venv (Debian: python3-venv): %w\n%s", err, out)
	}
	python := filepath.Join(venv, "bin", "python")
	pip := exec.Command(python, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", src)
	pip.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1")
	if out, err := pip.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pip install ./internal/django: %w\n%s", err, out)
	}
	return python, nil
}

// copyTree copies a file or a folder (regular files only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
}

// result is what a command did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a command with a deadline; stdin is /dev/null unless given.
func run(t *testing.T, dir string, env []string, stdin *os.File, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, env, stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s %v: %v", name, args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// terminal gives a command a terminal on which "yes" has been typed, for the restore lines
// that ask for confirmation.
func terminal(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	if _, err := master.WriteString("yes\n"); err != nil {
		t.Fatalf("type yes: %v", err)
	}
	return tty
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newestEntry is the name of the entry of dir that is not in before.
func newEntry(t *testing.T, dir string, before []string) string {
	t.Helper()
	after := listDir(t, dir)
	for _, n := range after {
		if strings.HasPrefix(n, "backup_") && !slices.Contains(before, n) {
			return filepath.Join(dir, n)
		}
	}
	t.Fatalf("no new backup in %s (before %v, after %v)", dir, before, after)
	return ""
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// openDB opens a dj-database-url the way the tests read state back.
func openDB(t *testing.T, dbURL string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", dbURL
	if p, ok := strings.CutPrefix(dbURL, "sqlite:///"); ok {
		u, err := url.PathUnescape(p)
		if err != nil {
			t.Fatal(err)
		}
		driver, dsn = "sqlite", u
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
