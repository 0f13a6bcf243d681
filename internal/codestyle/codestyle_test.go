package codestyle

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// module is this repository's module path: its imports form the last group.
const module = "github.com/webnovel/webnovel-backup"

// goFiles returns the repository's Go files (testdata and hidden folders left out).
func goFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != "../.." && (name == "testdata" || strings.HasPrefix(name, ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found %d Go files: not the repository", len(files))
	}
	return files
}

// Every Go file is as gofmt writes it.
func TestGofmt(t *testing.T) {
	for _, f := range goFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if !bytes.Equal(out, src) {
			t.Errorf("%s is not gofmt'd: run gofmt -w %s", f, f)
		}
	}
}

// importClass orders the import groups: the standard library, other modules, this module.
func importClass(path string) int {
	switch {
	case path == module || strings.HasPrefix(path, module+"/"):
		return 2
	case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
		return 1
	}
	return 0
}

// importsProblem says what is wrong with src's import groups ("" when nothing is): a group
// (imports between blank lines) that mixes classes, classes out of order, or this module's
// packages in more than one group.
func importsProblem(name string, src []byte) (string, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
	if err != nil {
		return "", err
	}
	prevLine, prevClass, groupClass, ownGroups := -2, -1, -1, 0
	for _, spec := range file.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return "", err
		}
		class, line := importClass(path), fset.Position(spec.Pos()).Line
		newGroup := line > prevLine+1
		prevLine = line
		if fset.Position(spec.End()).Line > line {
			prevLine = fset.Position(spec.End()).Line
		}
		if !newGroup {
			if class != groupClass {
				return "the import " + strconv.Quote(path) + " shares a group with imports of another kind", nil
			}
			continue
		}
		if class < prevClass {
			return "the import " + strconv.Quote(path) + " comes after a group it should precede", nil
		}
		if class == 2 {
			if ownGroups++; ownGroups > 1 {
				return "this module's packages are in more than one group", nil
			}
		}
		prevClass, groupClass = class, class
	}
	return "", nil
}

// Imports come in groups: the standard library, then other modules, then this module's own
// packages in one group, as goimports -local github.com/webnovel/webnovel-backup writes them.
func TestImportGroups(t *testing.T) {
	for _, f := range goFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		problem, err := importsProblem(f, src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if problem != "" {
			t.Errorf("%s: %s (goimports -local %s)", f, problem, module)
		}
	}
}

// The check itself: each kind of misplaced import is caught, and the house style passes.
func TestImportsProblem(t *testing.T) {
	tests := []struct {
		name, imports, want string
	}{
		{"house style", "\"fmt\"\n\"os\"\n\n\"filippo.io/age\"\n\n\"github.com/nats-io/nats.go\"\n\n\"" + module + "/messages\"\n\"" + module + "/storage\"", ""},
		{"only the standard library", "\"fmt\"", ""},
		{"own package among the standard library", "\"fmt\"\n\"" + module + "/messages\"\n\"os\"", "shares a group"},
		{"other module among the standard library", "\"fmt\"\n\"filippo.io/age\"", "shares a group"},
		{"own packages in two groups", "\"fmt\"\n\n\"" + module + "/messages\"\n\n\"" + module + "/storage\"", "more than one group"},
		{"own package first", "\"" + module + "/messages\"\n\n\"fmt\"", "should precede"},
		{"other module before the standard library", "\"filippo.io/age\"\n\n\"fmt\"", "should precede"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package x\n\nimport (\n" + tt.imports + "\n)\n"
			got, err := importsProblem("x.go", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("importsProblem = %q, want %q", got, tt.want)
			}
		})
	}
}
