package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// file is one generated storage file.
type file struct {
	key  string
	data []byte
	mode os.FileMode
}

// files calls f for every file the rows reference, in a fixed order, one at a time.
func (p *plan) files(ctx context.Context, f func(file) error) error {
	emit := func(key string, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return f(file{key: key, data: data, mode: fileMode(key)})
	}
	for u := 1; u <= p.users; u++ {
		if x := p.user(u); x.avatar != "" {
			if err := emit(x.avatar, p.binaryFile(x.avatar)); err != nil {
				return err
			}
		}
	}
	for b := 0; b < p.books; b++ {
		x := p.book(b + 1)
		if x.cover != "" {
			if err := emit(x.cover, p.binaryFile(x.cover)); err != nil {
				return err
			}
		}
		for j := range bookFormats(b) {
			bf := p.bookFile(b, j)
			if err := emit(bf.key, p.binaryFile(bf.key)); err != nil {
				return err
			}
		}
		lang := languageCode(int(x.language))
		for n := 1; n <= p.chapterCount(b); n++ {
			ch := p.chapter(b, n)
			data, err := p.content(ch, lang)
			if err != nil {
				return err
			}
			if err := emit(ch.key, data); err != nil {
				return err
			}
			for k := 0; k < p.media; k++ {
				m := p.mediaAt(ch, k)
				if err := emit(m.key, p.binaryFile(m.key)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fileMode is 0644, except book text exports and every third avatar, which are 0600 so that a
// backup and restore can be seen to keep permissions.
func fileMode(key string) os.FileMode {
	if strings.HasSuffix(key, ".txt") {
		return 0o600
	}
	var u int
	if n, _ := fmt.Sscanf(key, "images/avatars/user_%d.png", &u); n == 1 && u%3 == 0 {
		return 0o600
	}
	return 0o644
}

// modTime is the file's modification time: whole seconds, fixed by the seed and the key.
func (p *plan) modTime(key string) time.Time {
	r := newRNG(p.seed, sMtime, keyHash(key))
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.between(0, 365*86400)) * time.Second)
}

func languageCode(id int) string {
	if id >= 1 && id <= len(languages) {
		return languages[id-1].code
	}
	return fmt.Sprintf("x-%d", id)
}

// content is a chapter's content document, as the platform writes it (json.dump, indent 1,
// non-ASCII kept).
func (p *plan) content(ch chapter, lang string) ([]byte, error) {
	type footnote struct {
		N    int    `json:"n"`
		Text string `json:"text"`
	}
	doc := struct {
		Book       int64      `json:"book"`
		Chapter    int64      `json:"chapter"`
		Title      string     `json:"title"`
		Language   string     `json:"language"`
		WordCount  int64      `json:"word_count"`
		Paragraphs []string   `json:"paragraphs"`
		Footnotes  []footnote `json:"footnotes"`
	}{Book: ch.book, Chapter: ch.number, Title: ch.title, Language: lang, WordCount: ch.wordCount, Paragraphs: []string{}, Footnotes: []footnote{}}
	r := newRNG(p.seed, sFile, keyHash(ch.key))
	size := 0
	for size < p.fileBase || len(doc.Paragraphs) == 0 {
		var para strings.Builder
		for w := 20 + r.intn(60); w > 0; w-- {
			if para.Len() > 0 {
				para.WriteByte(' ')
			}
			para.WriteString(pick(&r, contentWords))
		}
		doc.Paragraphs = append(doc.Paragraphs, para.String())
		size += para.Len() + 8
	}
	if ch.i%2 == 0 {
		doc.Footnotes = append(doc.Footnotes, footnote{1, "Translator's note: \"qi\" 气"})
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.SetIndent("", " ")
	if err := e.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode %s: %w", ch.key, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeStorage writes every file under dir with its mode and modification time.
func (p *plan) writeStorage(ctx context.Context, dir string) (n int, size int64, err error) {
	err = p.files(ctx, func(f file) error {
		path := filepath.Join(dir, filepath.FromSlash(f.key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.key, err)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.key, err)
		}
		// WriteFile applies the umask and keeps the mode of an existing file.
		if err := os.Chmod(path, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.key, err)
		}
		mt := p.modTime(f.key)
		if err := os.Chtimes(path, mt, mt); err != nil {
			return fmt.Errorf("write %s: %w", f.key, err)
		}
		n++
		size += int64(len(f.data))
		return nil
	})
	return n, size, err
}
