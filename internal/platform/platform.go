// Package platform describes the webnovel platform being backed up: its ten Django models
// (tables, primary keys, fields in serialization order, foreign keys, many-to-many tables) and
// the schema Django creates for them on PostgreSQL and SQLite.
//
// The description is embedded from models.json, produced from the Django project itself, so the
// rest of the tool never hard-codes a table or a column.
package platform

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

//go:embed models.json
var modelsJSON []byte

// SchemaPostgres is the platform's schema as `manage.py migrate` creates it on PostgreSQL
// (pg_dump --schema-only): every table, including django_* and auth_*.
//
//go:embed schema.postgres.sql
var SchemaPostgres string

// SchemaSQLite is the same schema as Django creates it on SQLite.
//
//go:embed schema.sqlite.sql
var SchemaSQLite string

// Field types as Django names them.
const (
	AutoField            = "AutoField"
	BigAutoField         = "BigAutoField"
	BigIntegerField      = "BigIntegerField"
	BooleanField         = "BooleanField"
	CharField            = "CharField"
	DateField            = "DateField"
	DateTimeField        = "DateTimeField"
	DecimalField         = "DecimalField"
	DurationField        = "DurationField"
	FileField            = "FileField"
	ForeignKey           = "ForeignKey"
	ImageField           = "ImageField"
	IntegerField         = "IntegerField"
	JSONField            = "JSONField"
	ManyToManyField      = "ManyToManyField"
	PositiveIntegerField = "PositiveIntegerField"
	SlugField            = "SlugField"
	TextField            = "TextField"
	UUIDField            = "UUIDField"
)

// Field is one model field, in the order Django serializes it.
type Field struct {
	Name          string   `json:"name"`
	Column        string   `json:"column"`
	Type          string   `json:"type"`
	Null          bool     `json:"null"`
	MaxLength     int      `json:"max_length,omitempty"`
	Unique        bool     `json:"unique,omitempty"`
	MaxDigits     int      `json:"max_digits,omitempty"`
	DecimalPlaces int      `json:"decimal_places,omitempty"`
	Choices       []string `json:"choices,omitempty"`
	To            string   `json:"to,omitempty"`
	OnDelete      string   `json:"on_delete,omitempty"`
	// ThroughTable and ThroughColumns are set for many-to-many fields: the auto-created table
	// and its (owner id, target id) columns.
	ThroughTable   string   `json:"through_table,omitempty"`
	ThroughColumns []string `json:"through_columns,omitempty"`
	// File marks a field whose value names a file in the platform's storage (a storage key,
	// as Django's FileField stores it). FileField and ImageField are file fields whatever it
	// says; it marks those of other types (a custom storage field kept in a CharField).
	File bool `json:"file,omitempty"`
}

// IsFile reports whether the field's value names a file in the platform's storage: every
// part of the tool that follows rows to their files (a selective restore, the database ↔
// storage cross-check) asks this, never the type itself.
func (f Field) IsFile() bool {
	return f.File || f.Type == FileField || f.Type == ImageField
}

// IsManyToMany reports whether the field is stored in a through table rather than a column.
func (f Field) IsManyToMany() bool { return f.Type == ManyToManyField }

// PK describes a model's primary key.
type PK struct {
	Name   string `json:"name"`
	Column string `json:"column"`
	Type   string `json:"type"`
}

// Model is one Django model.
type Model struct {
	// Label is the lower-case "app.model" label Django writes in fixtures ("books.chapter").
	Label          string     `json:"model"`
	Table          string     `json:"db_table"`
	PK             PK         `json:"pk"`
	Fields         []Field    `json:"fields"`
	UniqueTogether [][]string `json:"unique_together"`
}

// FixtureName is the file the model's fixture has in a backup: db_<app>_<model>.json.
func (m Model) FixtureName() string {
	return "db_" + strings.ReplaceAll(m.Label, ".", "_") + ".json"
}

// Columns returns the model's own columns (pk first, then fields in serialization order),
// leaving out many-to-many fields, which have no column.
func (m Model) Columns() []string {
	cols := []string{m.PK.Column}
	for _, f := range m.Fields {
		if !f.IsManyToMany() {
			cols = append(cols, f.Column)
		}
	}
	return cols
}

// ManyToMany returns the model's many-to-many fields.
func (m Model) ManyToMany() []Field {
	var out []Field
	for _, f := range m.Fields {
		if f.IsManyToMany() {
			out = append(out, f)
		}
	}
	return out
}

// FileFields returns the model's file fields (Field.IsFile), in serialization order.
func (m Model) FileFields() []Field {
	var out []Field
	for _, f := range m.Fields {
		if f.IsFile() {
			out = append(out, f)
		}
	}
	return out
}

// Description is the whole platform: its models in dependency order.
type Description struct {
	Models []Model
}

// Default is the embedded description of the platform.
var Default = mustLoad(modelsJSON)

func mustLoad(data []byte) *Description {
	d, err := Parse(data)
	if err != nil {
		panic(fmt.Sprintf("embedded models.json: %v", err)) // a build-time fact, never user input
	}
	return d
}

// Parse reads a models.json description and orders its models by dependency_order.
func Parse(data []byte) (*Description, error) {
	var raw struct {
		DependencyOrder []string `json:"dependency_order"`
		Models          []Model  `json:"models"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse model description: %w", err)
	}
	byLabel := map[string]Model{}
	for _, m := range raw.Models {
		byLabel[m.Label] = m
	}
	d := &Description{}
	for _, label := range raw.DependencyOrder {
		m, ok := byLabel[label]
		if !ok {
			return nil, fmt.Errorf("parse model description: dependency_order names %q, which has no model", label)
		}
		d.Models = append(d.Models, m)
	}
	if len(d.Models) != len(raw.Models) {
		return nil, fmt.Errorf("parse model description: %d models but %d in dependency_order", len(raw.Models), len(d.Models))
	}
	return d, nil
}

// Labels returns every model label in dependency order.
func (d *Description) Labels() []string {
	out := make([]string, len(d.Models))
	for i, m := range d.Models {
		out[i] = m.Label
	}
	return out
}

// Model finds a model by label, in any letter case ("books.Chapter" finds books.chapter).
func (d *Description) Model(label string) (Model, bool) {
	l := strings.ToLower(strings.TrimSpace(label))
	for _, m := range d.Models {
		if m.Label == l {
			return m, true
		}
	}
	return Model{}, false
}

// Select returns the models named by labels (any case, any order, duplicates allowed) in
// dependency order; no labels selects every model. An unknown label is an error that lists the
// known ones.
func (d *Description) Select(labels []string) ([]Model, error) {
	if len(labels) == 0 {
		return append([]Model(nil), d.Models...), nil
	}
	want := map[string]bool{}
	var unknown []string
	for _, l := range labels {
		m, ok := d.Model(l)
		if !ok {
			unknown = append(unknown, l)
			continue
		}
		want[m.Label] = true
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown model %s; known models: %s", strings.Join(unknown, ", "), strings.Join(d.Labels(), ", "))
	}
	var out []Model
	for _, m := range d.Models {
		if want[m.Label] {
			out = append(out, m)
		}
	}
	return out, nil
}
