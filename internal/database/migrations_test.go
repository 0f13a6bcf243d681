package database

import (
	"slices"
	"strings"
	"testing"
)

// CompareMigrations finds, app by app over the backup's record, what the target lacks and
// what it has beyond the record; apps outside the record are not compared.
func TestCompareMigrations(t *testing.T) {
	record := AppliedMigrations{"books": {"0001_initial", "0002_a"}, "accounts": {"0001_initial"}}
	tests := []struct {
		name           string
		target         AppliedMigrations
		missing, newer []string
	}{
		{"same", AppliedMigrations{"books": {"0001_initial", "0002_a"}, "accounts": {"0001_initial"}}, nil, nil},
		{"behind", AppliedMigrations{"books": {"0001_initial"}, "accounts": {}}, []string{"accounts.0001_initial", "books.0002_a"}, nil},
		{"ahead", AppliedMigrations{"books": {"0001_initial", "0002_a", "0003_b"}, "accounts": {"0001_initial"}, "sessions": {"0001_initial"}}, nil, []string{"books.0003_b"}},
		{"diverged", AppliedMigrations{"books": {"0001_initial", "0002_other"}, "accounts": {"0001_initial"}}, []string{"books.0002_a"}, []string{"books.0002_other"}},
		{"no table", AppliedMigrations{}, []string{"accounts.0001_initial", "books.0001_initial", "books.0002_a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CompareMigrations(record, tt.target)
			if !slices.Equal(d.Missing, tt.missing) && (len(d.Missing) > 0 || len(tt.missing) > 0) {
				t.Errorf("missing %v, want %v", d.Missing, tt.missing)
			}
			if !slices.Equal(d.Newer, tt.newer) && (len(d.Newer) > 0 || len(tt.newer) > 0) {
				t.Errorf("newer %v, want %v", d.Newer, tt.newer)
			}
			mc := &MigrationCheck{Recorded: true, Backup: record, Compared: true, Target: "T", MigrationDrift: d}
			if got := mc.Refusal(); (got != "") != (len(tt.missing) > 0) || (got != "" && !strings.Contains(got, "manage.py migrate")) {
				t.Errorf("refusal %q", got)
			}
			if got := mc.Warning(); (got != "") != (len(tt.newer) > 0) {
				t.Errorf("warning %q", got)
			}
		})
	}
	if mc := RecordedMigrations(nil); mc.Recorded || mc.Refusal() != "" || mc.Warning() != "" {
		t.Errorf("no record: %+v", mc)
	}
}
