package platform

import (
	"strings"
	"testing"
)

func TestDefaultDescription(t *testing.T) {
	want := []string{"books.language", "books.author", "accounts.user", "books.book", "books.chapter",
		"books.chaptermedia", "books.bookfile", "books.changelog", "accounts.bookcollaborator",
		"accounts.translationassignment"}
	got := Default.Labels()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("dependency order = %v, want %v", got, want)
	}
	book, _ := Default.Model("books.Book")
	if book.Table != "books_book" || book.FixtureName() != "db_books_book.json" {
		t.Fatalf("book = %s %s", book.Table, book.FixtureName())
	}
	if m2m := book.ManyToMany(); len(m2m) != 1 || m2m[0].ThroughTable != "books_book_related_books" {
		t.Fatalf("book m2m = %+v", m2m)
	}
	cols := book.Columns()
	if cols[0] != "id" || strings.Contains(strings.Join(cols, ","), "related_books") {
		t.Fatalf("book columns = %v", cols)
	}
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		labels  []string
		want    string
		wantErr string
	}{
		{"all", nil, strings.Join(Default.Labels(), ","), ""},
		{"any case, dependency order", []string{"books.Chapter", "accounts.User", "books.Book", "BOOKS.BOOK"}, "accounts.user,books.book,books.chapter", ""},
		{"unknown", []string{"books.Book", "books.Nope"}, "", "unknown model books.Nope; known models: books.language"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Default.Select(tt.labels)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Label)
			}
			if strings.Join(got, ",") != tt.want {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRejectsInconsistentOrder(t *testing.T) {
	_, err := Parse([]byte(`{"dependency_order":["a.b"],"models":[]}`))
	if err == nil || !strings.Contains(err.Error(), `"a.b"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestFileFields checks that the description marks every field whose value names a storage
// file, and only those: the cross-check and a selective restore follow exactly these.
func TestFileFields(t *testing.T) {
	var got []string
	for _, m := range Default.Models {
		for _, f := range m.FileFields() {
			got = append(got, m.Label+"."+f.Name)
		}
	}
	want := "accounts.user.avatar,books.book.cover_image,books.chapter.content_file,books.chaptermedia.file,books.bookfile.file"
	if strings.Join(got, ",") != want {
		t.Fatalf("file fields = %v, want %s", got, want)
	}
	tests := []struct {
		f    Field
		want bool
	}{
		{Field{Type: FileField}, true},
		{Field{Type: ImageField}, true},
		{Field{Type: CharField, File: true}, true},
		{Field{Type: CharField}, false},
		{Field{Type: TextField}, false},
	}
	for _, tc := range tests {
		if got := tc.f.IsFile(); got != tc.want {
			t.Errorf("%+v.IsFile() = %v, want %v", tc.f, got, tc.want)
		}
	}
}
