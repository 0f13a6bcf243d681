package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// valueName is what --help may show as a flag's value: one word, no spaces or punctuation
// runs (pflag takes a backquoted word in the usage as the value's name).
var valueName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

// Every flag of every command shows a sensible value name in --help, and no bool flag shows
// one at all.
func TestHelpValueNames(t *testing.T) {
	root := newRootCommand()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			where := c.CommandPath() + " --" + f.Name
			switch {
			case f.Value.Type() == "bool" && name != "":
				t.Errorf("%s: a bool flag shows a value name %q", where, name)
			case f.Value.Type() != "bool" && !valueName.MatchString(name):
				t.Errorf("%s: value name %q is not a word (a backquote in its usage?)", where, name)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// The help of worker says how several workers share a host.
func TestWorkerHelpDocumentsCoexistence(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"worker", "--help"}, &out, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{"Several workers may run on one host", "--health-addr address", "warning"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("worker --help lacks %q:\n%s", want, out.String())
		}
	}
}
