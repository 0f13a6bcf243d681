package references

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

func model(t *testing.T, label string) platform.Model {
	t.Helper()
	m, ok := platform.Default.Model(label)
	if !ok {
		t.Fatalf("no model %s", label)
	}
	return m
}

// TestScan reads the file paths of whole fixtures and of chunks, skipping empty fields.
func TestScan(t *testing.T) {
	tests := []struct {
		name  string
		label string
		in    string
		chunk bool
		want  string
	}{
		{"whole", "books.book", `[{"model":"books.book","pk":7,"fields":{"title":"x","cover_image":"images/a.jpg"}},
{"model":"books.book","pk":8,"fields":{"cover_image":""}}]`, false, "books.book/7/cover_image/images/a.jpg"},
		{"chunk", "books.chaptermedia", `{"model":"books.chaptermedia","pk":1,"fields":{"file":"media/x.png"}},
{"model":"books.chaptermedia","pk":2,"fields":{"file":"media/y.png"}}`, true, "books.chaptermedia/1/file/media/x.png,books.chaptermedia/2/file/media/y.png"},
		{"empty chunk", "books.bookfile", ``, true, ""},
		{"no file field", "books.author", `[{"model":"books.author","pk":1,"fields":{"name":"n"}}]`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := Scan(context.Background(), model(t, tc.label), strings.NewReader(tc.in), tc.chunk, func(r Ref) error {
				got = append(got, r.Model+"/"+r.PK+"/"+r.Field+"/"+r.Path)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("refs = %v, want %s", got, tc.want)
			}
		})
	}
}

// TestCheckerFindsMissing joins references (several naming one file, spilled to disk) with
// files given out of order, and lists exactly the missing ones.
func TestCheckerFindsMissing(t *testing.T) {
	for _, budget := range []int{1 << 20, 200} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			c := NewChecker(t.TempDir(), budget)
			defer c.Close()
			for i := 0; i < 50; i++ {
				if err := c.AddFile(fmt.Sprintf("content/%03d.txt", 49-i)); err != nil {
					t.Fatal(err)
				}
			}
			var buf bytes.Buffer
			lw := NewListWriter(&buf)
			for i := 0; i < 60; i++ {
				lw.Add(Ref{Model: "books.chapter", PK: fmt.Sprint(i), Field: "content_file", Path: fmt.Sprintf("content/%03d.txt", i)})
			}
			lw.Add(Ref{Model: "books.bookfile", PK: "3", Field: "file", Path: "content/007.txt"})
			if err := lw.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := ReadList(&buf, c.Add); err != nil {
				t.Fatal(err)
			}
			var seen int
			rep, err := c.Check(context.Background(), func(Ref) error { seen++; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if rep.Refs != 61 || rep.Missing != 10 || seen != 10 || len(rep.MissingList) != 10 {
				t.Fatalf("refs %d missing %d seen %d listed %d, want 61 10 10 10", rep.Refs, rep.Missing, seen, len(rep.MissingList))
			}
			if m := rep.MissingList[0]; m.Model != "books.chapter" || m.PK != "50" || m.Field != "content_file" || m.Path != "content/050.txt" {
				t.Fatalf("first missing = %+v", m)
			}
			if w := Warnings(rep, 3); len(w) != 4 || !strings.Contains(w[0], "books.chapter pk 50 field content_file") || !strings.Contains(w[3], "7 more") {
				t.Fatalf("warnings = %q", w)
			}
		})
	}
}

// TestCheckSorted joins files given in key order without sorting them, with the report
// Check gives, and refuses files out of order with ErrUnsorted.
func TestCheckSorted(t *testing.T) {
	c := NewChecker(t.TempDir(), 200)
	defer c.Close()
	for i := 0; i < 60; i++ {
		if err := c.Add(Ref{Model: "books.chapter", PK: fmt.Sprint(i), Field: "content_file", Path: fmt.Sprintf("content/%03d.txt", i)}); err != nil {
			t.Fatal(err)
		}
	}
	files := func(order func(i int) int) func(fn func(string) error) error {
		return func(fn func(string) error) error {
			for i := 0; i < 50; i++ {
				if err := fn(fmt.Sprintf("content/%03d.txt", order(i))); err != nil {
					return err
				}
			}
			return nil
		}
	}
	rep, err := c.CheckSorted(context.Background(), files(func(i int) int { return i }))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Refs != 60 || rep.Missing != 10 || rep.MissingList[0].Path != "content/050.txt" {
		t.Fatalf("refs %d missing %d (%+v), want 60 10 from content/050.txt", rep.Refs, rep.Missing, rep.MissingList)
	}
	if _, err := c.CheckSorted(context.Background(), files(func(i int) int { return 49 - i })); !errors.Is(err, ErrUnsorted) {
		t.Fatalf("files out of order: %v, want ErrUnsorted", err)
	}
}
