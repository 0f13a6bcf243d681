package workers

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// An export asked for its references lists the file paths its rows name (model, pk, field,
// path), whole or in a pk range; in an encrypted run the list is encrypted to the run key
// and holds no plaintext.
func TestExportListsReferences(t *testing.T) {
	path, url, redacted := emptySQLite(t)
	sqlitetest.Exec(t, path, `INSERT INTO books_language (id, code, name) VALUES (1, 'en', 'English');
		INSERT INTO books_author (id, name, bio, created_at) VALUES (1, 'a', '', '2024-01-01 00:00:00');
		INSERT INTO books_book (id, title, slug, description, author_id, language_id, status, cover_image, word_count, is_published, metadata, created_at, updated_at) VALUES
		(1, 't1', 's1', '', 1, 1, 'draft', 'images/covers/one.jpg', 0, 0, '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
		(2, 't2', 's2', '', 1, 1, 'draft', '', 0, 0, '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
		(3, 't3', 's3', '', 1, 1, 'draft', 'images/covers/three.jpg', 0, 0, '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00')`)
	key := enctest.NewKey(t)
	tests := []struct {
		name    string
		whole   bool
		hasLo   bool
		encrypt bool
		want    string
	}{
		{"whole", true, false, false, "books.book/1/cover_image/images/covers/one.jpg,books.book/3/cover_image/images/covers/three.jpg"},
		{"range", false, true, false, "books.book/3/cover_image/images/covers/three.jpg"},
		{"encrypted", true, false, true, "books.book/1/cover_image/images/covers/one.jpg,books.book/3/cover_image/images/covers/three.jpg"},
	}
	w := &Worker{cfg: Config{DatabaseURL: url}}
	defer func() {
		if w.db != nil {
			w.db.Close()
		}
	}()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			e := &messages.ExportTask{Database: redacted, Model: "books.book", Output: "book.json", Whole: tc.whole, Lo: 2, HasLo: tc.hasLo, References: "refs.jsonl"}
			if tc.encrypt {
				e.ReferencesRecipients = key.Recipients.Public()
			}
			task := &messages.Task{Version: messages.Version, Run: "run1", ID: "export-book", Kind: messages.KindExportModel, Dest: dest, Export: e}
			if _, err := w.export(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dest, "refs.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var r io.Reader = bytes.NewReader(data)
			if tc.encrypt {
				if bytes.Contains(data, []byte("covers")) {
					t.Fatalf("encrypted list holds plaintext: %q", data)
				}
				if r, err = key.Identities.Decrypt(r); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			err = references.ReadList(r, func(ref references.Ref) error {
				got = append(got, ref.Model+"/"+ref.PK+"/"+ref.Field+"/"+ref.Path)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("references %v, want %s", got, tc.want)
			}
		})
	}
}
