package demo

import (
	"fmt"
	"time"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// table is one table to fill: its columns and a row source producing values in columns order.
type table struct {
	name    string
	columns []string
	// rows starts a new pass over the table's rows.
	rows func(e enc) func() ([]any, bool)
}

// seededBySchema are the tables database.ApplySchema fills as migrate does; Fill does not.
var seededBySchema = map[string]bool{"django_content_type": true, "auth_permission": true, "django_migrations": true}

// list turns a slice into a row source.
func list[T any](xs []T, f func(i int, x T) []any) func() ([]any, bool) {
	i := 0
	return func() ([]any, bool) {
		if i >= len(xs) {
			return nil, false
		}
		row := f(i, xs[i])
		i++
		return row, true
	}
}

// count is a row source over 1..n.
func count(n int, f func(i int) []any) func() ([]any, bool) {
	i := 0
	return func() ([]any, bool) {
		if i >= n {
			return nil, false
		}
		i++
		return f(i), true
	}
}

func null(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// chapters is a row source calling f for every chapter, in id order, with a running row
// counter for tables that hang several rows off one chapter.
func (p *plan) chapterRows(perChapter func(ch chapter) int, f func(ch chapter, k int) []any) func() ([]any, bool) {
	b, n, k := 0, 1, 0
	var ch chapter
	loaded := false
	return func() ([]any, bool) {
		for b < p.books {
			if n > p.chapterCount(b) {
				b, n = b+1, 1
				continue
			}
			if !loaded {
				ch, loaded = p.chapter(b, n), true
			}
			if k < perChapter(ch) {
				k++
				return f(ch, k-1), true
			}
			n, k, loaded = n+1, 0, false
		}
		return nil, false
	}
}

// tables returns every table Fill writes, in an order that satisfies foreign keys at each
// commit (each table is its own transaction).
func (p *plan) tables() []table {
	return []table{
		{"books_language", []string{"id", "code", "name"}, func(e enc) func() ([]any, bool) {
			return count(p.langs, func(id int) []any {
				if id <= len(languages) {
					l := languages[id-1]
					return []any{int64(id), l.code, l.name}
				}
				return []any{int64(id), fmt.Sprintf("x-%d", id), fmt.Sprintf("Language %d", id)}
			})
		}},
		{"books_author", []string{"id", "name", "bio", "created_at"}, func(e enc) func() ([]any, bool) {
			return count(p.authors, func(id int) []any {
				r := newRNG(p.seed, sAuthor, int64(id))
				name := authorNames[(id-1)%len(authorNames)]
				if id > len(authorNames) {
					name = fmt.Sprintf("%s %d", name, id)
				}
				created := r.ts()
				if id == 1 {
					created = created.Truncate(time.Second)
				}
				return []any{int64(id), name, bios[id%len(bios)], e.time(created)}
			})
		}},
		{"accounts_user", []string{"id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined", "display_name", "bio", "preferred_language_id", "avatar"}, func(e enc) func() ([]any, bool) {
			return count(p.users, func(u int) []any {
				x := p.user(u)
				return []any{x.id, x.password, e.timeOrNil(x.lastLogin, x.hasLogin), e.bool(x.superuser), x.username, x.first, x.last, x.email,
					e.bool(x.staff), e.bool(x.active), e.time(x.joined), x.display, x.bio, null(x.language), x.avatar}
			})
		}},
		{"accounts_user_user_permissions", []string{"id", "user_id", "permission_id"}, func(e enc) func() ([]any, bool) {
			u, j, id := 1, 0, int64(0)
			var perms []int64
			return func() ([]any, bool) {
				for u <= p.users {
					if j == 0 {
						perms = p.userPerms(u)
					}
					if j < len(perms) {
						j++
						id++
						return []any{id, int64(u), perms[j-1]}, true
					}
					u, j = u+1, 0
				}
				return nil, false
			}
		}},
		{"books_book", []string{"id", "title", "slug", "description", "author_id", "language_id", "owner_id", "status", "cover_image", "rating", "word_count", "is_published", "published_at", "metadata", "created_at", "updated_at"}, func(e enc) func() ([]any, bool) {
			return count(p.books, func(b int) []any {
				x := p.book(b)
				var rating any
				if x.rating != "" {
					rating = x.rating
				}
				return []any{x.id, x.title, x.slug, x.description, x.author, x.language, null(x.owner), x.status, x.cover, rating,
					x.wordCount, e.bool(x.published), e.timeOrNil(x.publishedAt, x.published), x.metadata, e.time(x.created), e.time(x.updated)}
			})
		}},
		{"books_book_related_books", []string{"id", "from_book_id", "to_book_id"}, func(e enc) func() ([]any, bool) {
			// Small (a few rows per book): collected, not streamed.
			var rows [][]any
			p.relatedBooks(func(from, to int) {
				rows = append(rows, []any{int64(len(rows) + 1), int64(from), int64(to)})
			})
			return list(rows, func(_ int, r []any) []any { return r })
		}},
		{"books_chapter", []string{"id", "book_id", "number", "title", "content_file", "word_count", "status", "translated_from_id", "published_at", "created_at", "updated_at"}, func(e enc) func() ([]any, bool) {
			return p.chapterRows(func(chapter) int { return 1 }, func(x chapter, _ int) []any {
				return []any{x.id, x.book, x.number, x.title, x.key, x.wordCount, x.status, null(x.translatedFrom),
					e.timeOrNil(x.publishedAt, x.published), e.time(x.created), e.time(x.updated)}
			})
		}},
		{"books_chaptermedia", []string{"id", "chapter_id", "media_type", "file", "caption", "size_bytes", "created_at"}, func(e enc) func() ([]any, bool) {
			return p.chapterRows(func(chapter) int { return p.media }, func(ch chapter, k int) []any {
				x := p.mediaAt(ch, k)
				return []any{x.id, x.chapter, x.typ, x.key, x.caption, x.sizeBytes, e.time(x.created)}
			})
		}},
		{"books_bookfile", []string{"id", "book_id", "file", "format", "checksum", "uploaded_at"}, func(e enc) func() ([]any, bool) {
			b, j := 0, 0
			return func() ([]any, bool) {
				for b < p.books {
					if j < len(bookFormats(b)) {
						x := p.bookFile(b, j)
						j++
						return []any{x.id, x.book, x.key, x.format, x.checksum, e.time(x.uploaded)}, true
					}
					b, j = b+1, 0
				}
				return nil, false
			}
		}},
		{"books_changelog", []string{"id", "chapter_id", "user_id", "change_id", "action", "diff", "created_at"}, func(e enc) func() ([]any, bool) {
			return p.chapterRows(func(chapter) int { return p.logs }, func(ch chapter, k int) []any {
				id := ch.i*int64(p.logs) + int64(k) + 1
				r := newRNG(p.seed, sChangeLog, id)
				var uid any
				if p.users > 0 && id%3 != 1 {
					uid = int64(1 + r.intn(p.users))
				}
				var diff any
				if d, ok := changeDiff(id, ch, &r); ok {
					diff = pyJSON(d)
				}
				return []any{id, ch.id, uid, e.uuid(r.uuid4()), changeActions[r.intn(len(changeActions))], diff, e.time(r.after(ch.created, 90))}
			})
		}},
		{"accounts_bookcollaborator", []string{"id", "book_id", "user_id", "role", "permissions", "added_at"}, func(e enc) func() ([]any, bool) {
			b, j, id := 0, 0, int64(0)
			return func() ([]any, bool) {
				for b < p.books {
					if j < collabCount(b, p.users) {
						id++
						r := newRNG(p.seed, sCollab, id)
						// Distinct users per book: (book, user) is unique.
						u := int64((b+j)%p.users + 1)
						var perms []any
						for _, pm := range collabPerms {
							if r.intn(3) == 0 {
								perms = append(perms, pm)
							}
						}
						if perms == nil {
							perms = []any{}
						}
						j++
						return []any{id, int64(b + 1), u, pick(&r, collabRoles), pyJSON(perms), e.time(r.ts())}, true
					}
					b, j = b+1, 0
				}
				return nil, false
			}
		}},
		{"accounts_translationassignment", []string{"id", "chapter_id", "translator_id", "assigned_by_id", "target_language_id", "status", "due_date", "time_spent", "completed_at", "created_at"}, func(e enc) func() ([]any, bool) {
			id := int64(0)
			return p.chapterRows(func(ch chapter) int { return p.assignCount(ch.i) }, func(ch chapter, k int) []any {
				id++
				r := newRNG(p.seed, sAssign, id)
				translator := int64((int(ch.i)+k)%p.users + 1)
				var by any
				if id%2 == 0 {
					by = int64(1 + r.intn(p.users))
				}
				status := assignStatuses[r.intn(len(assignStatuses))]
				var due any
				switch id % 4 {
				case 1:
					due = "2024-02-29"
				case 2:
					due = r.ts().Format("2006-01-02")
				}
				var spent any
				switch id % 5 {
				case 1:
					spent = int64(93784000500) // 1 day, 02:03:04.000500
				case 2:
					spent = int64(18000000000) // 05:00:00
				case 3:
					spent = int64(0)
				case 4:
					spent = r.between(1, 10*86400) * 1e6
				case 0:
					if id%10 == 0 {
						spent = r.between(1, 40*86400*1e6)
					}
				}
				created := r.after(ch.created, 30)
				var completed any
				if status == "done" {
					completed = e.time(r.after(created, 30))
				}
				return []any{id, ch.id, translator, by, int64(1 + r.intn(p.langs)), status, due, spent, completed, e.time(created)}
			})
		}},
	}
}

// changeDiff returns a ChangeLog's diff, or false for SQL NULL.
func changeDiff(id int64, ch chapter, r *rng) (any, bool) {
	switch id % 9 {
	case 1:
		return nil, false
	case 2:
		return obj{{"title", obj{{"new", ch.title + " (rev)"}, {"old", ch.title}}}}, true
	case 3:
		return "minor typo fix ✏️ \"quoted\"", true
	case 4:
		return []any{
			obj{{"op", "replace"}, {"path", fmt.Sprintf("/paragraphs/%d", r.intn(50))}, {"value", "night"}},
			obj{{"op", "remove"}, {"path", "/footnotes/0"}},
		}, true
	case 5:
		return obj{}, true
	case 6:
		a := r.between(100, 5000)
		return obj{{"note", nil}, {"status", obj{{"new", "published"}, {"old", "draft"}}}, {"word_count", []any{a - 50, a}}}, true
	case 7:
		return []any{}, true
	case 8:
		return num("-12.5"), true
	default:
		return obj{{"content", obj{{"added", r.intn(500)}, {"removed", r.intn(500)}}}, {"by_editor", r.intn(2) == 0}}, true
	}
}

// expectedRows counts the rows tables() produces, without producing them.
func (p *plan) expectedRows() map[string]int64 {
	var perms, related, files, collabs int64
	for u := 1; u <= p.users; u++ {
		perms += int64(len(p.userPerms(u)))
	}
	p.relatedBooks(func(int, int) { related++ })
	for b := 0; b < p.books; b++ {
		files += int64(len(bookFormats(b)))
		collabs += int64(collabCount(b, p.users))
	}
	return map[string]int64{
		"django_content_type":            int64(len(platform.ContentTypes)),
		"auth_permission":                int64(len(platform.Permissions())),
		"django_migrations":              int64(len(platform.Migrations)),
		"books_language":                 int64(p.langs),
		"books_author":                   int64(p.authors),
		"accounts_user":                  int64(p.users),
		"accounts_user_user_permissions": perms,
		"books_book":                     int64(p.books),
		"books_book_related_books":       related,
		"books_chapter":                  p.chapters,
		"books_chaptermedia":             p.chapters * int64(p.media),
		"books_bookfile":                 files,
		"books_changelog":                p.chapters * int64(p.logs),
		"accounts_bookcollaborator":      collabs,
		"accounts_translationassignment": p.totalAssignments(),
	}
}
