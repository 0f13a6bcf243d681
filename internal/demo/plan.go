package demo

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// chapterGap leaves one unused chapter id after every chapterGap chapters, as deleted chapters
// do: primary keys are not dense, so nothing may assume that N rows have ids 1..N.
const chapterGap = 16

// plan is the normalized shape of a generated platform. Every row is a pure function of the
// plan and its index, so tables are produced one row at a time and files match their rows.
type plan struct {
	seed                  int64
	langs, authors, users int
	books                 int
	chapters              int64 // in all books
	perBook, extra        int   // books[b] has perBook chapters, +1 for b < extra
	media, logs           int   // per chapter
	assignments           bool
	fileBase              int // nominal file size
	writeFiles            bool
	empty                 string // the key of the one empty media file, if any
}

func newPlan(o Options) (*plan, error) {
	if o.Users < 0 || o.Authors < 0 || o.Languages < 0 || o.Books < 0 || o.ChaptersPerBook < 0 ||
		o.MediaPerChapter < 0 || o.ChangeLogsPerChapter < 0 || o.FileBytes < 0 || o.OnlyChapters < 0 {
		return nil, fmt.Errorf("demo options: counts must not be negative: %+v", o)
	}
	p := &plan{
		seed:        o.Seed,
		langs:       o.Languages,
		authors:     o.Authors,
		users:       o.Users,
		books:       o.Books,
		media:       o.MediaPerChapter,
		logs:        o.ChangeLogsPerChapter,
		assignments: true,
		fileBase:    o.FileBytes,
		writeFiles:  o.FileBytes > 0 && !o.NoFiles,
	}
	if p.fileBase == 0 {
		p.fileBase = 4096 // rows still record sizes and checksums of the files they would have
	}
	if o.OnlyChapters > 0 {
		// A single big table: a handful of books, no per-chapter rows, no files.
		if p.books == 0 || p.books > 10 {
			p.books = 10
		}
		if int64(p.books) > int64(o.OnlyChapters) {
			p.books = o.OnlyChapters
		}
		p.perBook, p.extra = o.OnlyChapters/p.books, o.OnlyChapters%p.books
		p.media, p.logs = 0, 0
		p.assignments = false
		p.writeFiles = false
	} else {
		p.perBook = o.ChaptersPerBook
	}
	p.chapters = int64(p.books)*int64(p.perBook) + int64(p.extra)
	if p.books > 0 && (p.authors == 0 || p.langs == 0) {
		return nil, fmt.Errorf("demo options: books need at least one author and one language (authors %d, languages %d)", p.authors, p.langs)
	}
	if p.users == 0 || p.langs == 0 {
		p.assignments = false // an assignment needs a translator and a target language
	}
	p.empty = p.emptyKey()
	return p, nil
}

func (p *plan) chapterCount(b int) int {
	if b < p.extra {
		return p.perBook + 1
	}
	return p.perBook
}

// chapterStart is the index of book b's first chapter (b counts from 0).
func (p *plan) chapterStart(b int) int64 {
	return int64(b)*int64(p.perBook) + int64(min(b, p.extra))
}

func chapterID(i int64) int64 { return i + 1 + i/chapterGap }

// bookFormats lists the BookFile formats of book b (from 0): 2, 1 or 3 files.
func bookFormats(b int) []string {
	switch b % 3 {
	case 0:
		return []string{"epub", "txt"}
	case 1:
		return []string{"epub"}
	default:
		return []string{"pdf", "epub", "txt"}
	}
}

func bookFileStart(b int) int { return b/3*6 + []int{0, 2, 3}[b%3] }

func collabCount(b, users int) int { return min(1+b%3, users) }

// assignPattern is the number of TranslationAssignments of chapter i, by i%5.
var assignPattern = [5]int{1, 0, 2, 0, 0}

func (p *plan) assignCount(i int64) int {
	if !p.assignments {
		return 0
	}
	return assignPattern[i%5]
}

func (p *plan) totalAssignments() int64 {
	if !p.assignments {
		return 0
	}
	n := p.chapters / 5 * 3
	for i := p.chapters / 5 * 5; i < p.chapters; i++ {
		n += int64(assignPattern[i%5])
	}
	return n
}

// relatedBooks calls f for every (from, to) row of books_book_related_books: pairs of books
// pointing at each other, and some pointing one way only.
func (p *plan) relatedBooks(f func(from, to int)) {
	for b := 1; b <= p.books; b++ {
		if b%2 == 1 && b+1 <= p.books {
			f(b, b+1)
			f(b+1, b)
		}
		if b%5 == 0 && b+2 <= p.books {
			f(b, b+2)
		}
	}
}

// userPerms returns the auth_permission ids given to user u (from 1), not sorted.
func (p *plan) userPerms(u int) []int64 {
	if u%3 != 2 {
		return nil
	}
	r := newRNG(p.seed, sPerm, int64(u))
	seen := map[int64]bool{}
	var out []int64
	for len(out) < 4 {
		id := int64(1 + r.intn(len(platform.Permissions())))
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// user is one accounts.User (id from 1).
type user struct {
	id                           int64
	password                     string
	lastLogin                    time.Time
	hasLogin                     bool
	superuser, staff, active     bool
	username, first, last, email string
	joined                       time.Time
	display, bio                 string
	language                     int64 // 0: NULL
	avatar                       string
}

func (p *plan) user(u int) user {
	r := newRNG(p.seed, sUser, int64(u))
	x := user{id: int64(u)}
	if u%3 == 0 {
		// An unusable password, as set_unusable_password() writes it.
		const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, 40)
		for i := range b {
			b[i] = alnum[r.intn(len(alnum))]
		}
		x.password = "!" + string(b)
	} else {
		var h [32]byte
		r.fill(h[:])
		x.password = fmt.Sprintf("pbkdf2_sha256$260000$seed%duser%d$%s", p.seed, u, base64.StdEncoding.EncodeToString(h[:]))
	}
	x.joined = r.ts()
	if u%2 == 1 {
		x.lastLogin, x.hasLogin = r.after(x.joined, 400), true
	}
	x.superuser = u == 1
	x.staff = u <= 2
	x.active = u%4 != 3
	switch u % 5 {
	case 1:
		x.username = fmt.Sprintf("reader_%d", u)
	case 2:
		x.username = fmt.Sprintf("writer.%d", u)
	case 3:
		x.username = fmt.Sprintf("trans-%d", u)
	case 4:
		x.username = fmt.Sprintf("유저%d", u)
	default:
		x.username = fmt.Sprintf("user+%d@wn", u)
	}
	x.first = firstNames[u%len(firstNames)]
	x.last = lastNames[u%len(lastNames)]
	x.email = fmt.Sprintf("user%d@example.com", u)
	if u%7 == 6 {
		x.email = ""
	}
	x.display = displayNames[u%len(displayNames)]
	x.bio = bios[(u+1)%len(bios)]
	if u%3 != 1 && p.langs > 0 {
		x.language = int64(1 + r.intn(p.langs))
	}
	if u%4 != 2 {
		x.avatar = fmt.Sprintf("images/avatars/user_%d.png", u)
	}
	return x
}

// book is one books.Book (id from 1).
type book struct {
	id                       int64
	title, slug, description string
	author, language, owner  int64 // owner 0: NULL
	status, cover            string
	rating                   string // "": NULL
	wordCount                int64
	published                bool
	publishedAt              time.Time
	metadata                 string
	created, updated         time.Time
}

func (p *plan) book(b int) book {
	r := newRNG(p.seed, sBook, int64(b))
	x := book{id: int64(b)}
	x.title = bookTitles[(b-1)%len(bookTitles)]
	if b > len(bookTitles) {
		x.title += fmt.Sprintf(" (Vol. %d)", (b-1)/len(bookTitles)+1)
	}
	x.slug = truncate(slugify(x.title), 280) + fmt.Sprintf("-%d", b)
	x.description = descriptions[(b-1)%len(descriptions)]
	x.author = int64(1 + (b-1+r.intn(2))%p.authors)
	x.language = int64(1 + r.intn(p.langs))
	if b%3 != 2 && p.users > 0 {
		x.owner = int64(1 + r.intn(p.users))
	}
	x.status = bookStatuses[(b+r.intn(2))%len(bookStatuses)]
	if b%3 != 2 {
		x.cover = fmt.Sprintf("images/covers/book_%d.png", b)
	}
	switch b % 5 {
	case 1:
		x.rating = "4.25"
	case 2:
		x.rating = "" // NULL
	case 3:
		x.rating = "5.00"
	case 4:
		x.rating = "0.00"
	default:
		x.rating = fmt.Sprintf("%d.%02d", r.intn(10), r.intn(100))
	}
	switch b % 7 {
	case 2:
		x.wordCount = 0
	case 3:
		x.wordCount = 2147483647 // PositiveIntegerField's maximum
	default:
		x.wordCount = int64(r.between(1000, 2000000))
	}
	x.created = r.ts()
	if b%4 == 0 {
		x.created = x.created.Truncate(time.Second) // no fraction at all
	}
	x.updated = r.after(x.created, 300)
	x.published = b%4 != 2 // whatever the status, as in the reference sample
	if x.published {
		x.publishedAt = r.after(x.created, 30)
		if b == 3 {
			x.publishedAt = leapEdge
		}
	}
	x.metadata = pyJSON(bookMetadata(b, &r))
	return x
}

func bookMetadata(b int, r *rng) any {
	switch b % 4 {
	case 1:
		// Every JSON shape the fixture format has to carry through.
		return obj{
			{"tags", []any{"修仙", "romance", "système"}},
			{"text", "line1\nline2\t\"quoted\" \\ back 🐉 \u2028 ctl\x01"},
			{"flags", obj{{"mature", false}, {"featured", true}}},
			{"notes", nil},
			{"stats", obj{
				{"big", num("9007199254740993")},
				{"neg", -42},
				{"tiny", num("1.5e-07")},
				{"likes", 0},
				{"ratio", num("0.1")},
				{"whole", num("1.0")},
				{"views", int64(r.between(0, 10000000))},
			}},
			{"source", obj{{"ids", []any{3, 1, 2}}, {"none", []any{}}, {"site", "wn"}, {"empty", obj{}}}},
			{"alt_titles", obj{{"ja", "竜王の帰還"}, {"ko", "용왕의 귀환"}, {"zh", "龙王归来"}, {"ar", "عودة ملك التنين"}}},
			{"key with spaces.and.dots", "ok"},
			{"", "empty key"},
			{"nested", []any{[]any{}, obj{{"deep", []any{obj{{"deeper", []any{nil, true, "𝔘"}}}}}}}},
		}
	case 2:
		return obj{
			{"tags", []any{}},
			{"stats", obj{{"ratio", num(fmt.Sprintf("0.%03d", 1+r.intn(998)))}, {"views", int64(r.between(0, 10000000))}}},
			{"schedule", obj{{"days", []any{"mon", "thu"}}}},
		}
	case 3:
		return obj{}
	default:
		return obj{{"tags", []any{pick(r, contentWords)}}, {"rank", -int64(r.between(1, 500))}}
	}
}

// chapter is one books.Chapter; i is its index over all books (from 0).
type chapter struct {
	i, id          int64
	book           int64
	number         int64
	title, key     string
	wordCount      int64
	status         string
	translatedFrom int64 // 0: NULL
	publishedAt    time.Time
	published      bool
	created        time.Time
	updated        time.Time
}

// chapter returns chapter number n (from 1) of book b (from 0).
func (p *plan) chapter(b, n int) chapter {
	i := p.chapterStart(b) + int64(n-1)
	r := newRNG(p.seed, sChapter, i)
	x := chapter{i: i, id: chapterID(i), book: int64(b + 1), number: int64(n)}
	x.title = fmt.Sprintf(chapterTitles[(n-1)%len(chapterTitles)], n)
	x.key = fmt.Sprintf("content/%d/%d.json", b+1, n)
	x.wordCount = r.between(200, 6000)
	x.status = chapterStatuses[r.intn(len(chapterStatuses))]
	if i%3 == 0 {
		x.status = "published"
	}
	// Translations of the same chapter number in a neighbouring book: one direction points to
	// a higher id, which a loader must accept before the target row exists.
	switch {
	case i%5 == 0 && b+1 < p.books && n <= p.chapterCount(b+1):
		x.translatedFrom = chapterID(p.chapterStart(b+1) + int64(n-1))
	case i%5 == 3 && b > 0 && n <= p.chapterCount(b-1):
		x.translatedFrom = chapterID(p.chapterStart(b-1) + int64(n-1))
	}
	x.created = r.ts()
	x.updated = r.after(x.created, 60)
	if x.status == "published" || x.status == "archived" {
		x.publishedAt, x.published = r.after(x.created, 10), true
	}
	if i == 2 {
		x.created = x.created.Truncate(time.Second)
	}
	return x
}

// media is one books.ChapterMedia; m is its index (id m+1).
type media struct {
	id, chapter int64
	typ, key    string
	caption     string
	fileSize    int64 // the stored file
	sizeBytes   int64 // the row: the file size, or the full video's size
	created     time.Time
}

func (p *plan) mediaAt(ch chapter, k int) media {
	m := ch.i*int64(p.media) + int64(k)
	r := newRNG(p.seed, sMedia, m)
	x := media{id: m + 1, chapter: ch.id}
	x.typ = mediaTypes[m%4]
	x.key = fmt.Sprintf("media/ch%d_%d.%s", ch.id, k+1, mediaExts[x.typ])
	if m == 0 {
		// Django keeps Unicode letters in upload names: storage keys are not ASCII.
		x.key = fmt.Sprintf("media/ch%d_%d_地图.%s", ch.id, k+1, mediaExts[x.typ])
	}
	x.caption = captions[m%int64(len(captions))]
	x.fileSize = p.fileSize(x.key)
	if m == 3 {
		x.fileSize = 0 // an empty file
	}
	x.sizeBytes = x.fileSize
	if x.typ == "video" {
		x.sizeBytes = 1<<31 + 1 + int64(r.u64()%(1<<33))
	}
	x.created = r.after(ch.created, 20)
	return x
}

// fileSize is the size of a generated binary file: around the nominal size, never the same.
func (p *plan) fileSize(key string) int64 {
	r := newRNG(p.seed, sFile, keyHash(key))
	return int64(p.fileBase/2 + r.intn(p.fileBase+1))
}

func keyHash(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int64(h.Sum64())
}

// bookFile is one books.BookFile.
type bookFile struct {
	id, book    int64
	key, format string
	checksum    string
	uploaded    time.Time
}

func (p *plan) bookFile(b, j int) bookFile {
	format := bookFormats(b)[j]
	id := int64(bookFileStart(b) + j + 1)
	r := newRNG(p.seed, sBookFile, id)
	x := bookFile{id: id, book: int64(b + 1), format: format}
	x.key = fmt.Sprintf("media/books/book_%d.%s", b+1, format)
	sum := sha256.Sum256(p.binaryFile(x.key))
	x.checksum = hex.EncodeToString(sum[:])
	x.uploaded = r.ts()
	return x
}

// Magic numbers, so generated files look like what their names say.
var magic = map[string][]byte{
	".png":  []byte("\x89PNG\r\n\x1a\n"),
	".mp3":  []byte("ID3\x04\x00"),
	".mp4":  []byte("\x00\x00\x00\x18ftypmp42"),
	".pdf":  []byte("%PDF-1.7\n"),
	".epub": []byte("PK\x03\x04"),
}

// binaryFile returns the content of a generated media, image or book file.
func (p *plan) binaryFile(key string) []byte {
	n := p.fileSize(key)
	if key == p.empty {
		n = 0
	}
	b := make([]byte, n)
	r := newRNG(p.seed, sFile, keyHash(key))
	r.u64() // the draw fileSize used
	ext := ""
	if i := lastDot(key); i >= 0 {
		ext = key[i:]
	}
	if ext == ".txt" {
		// A plain text export of the book: words, newlines, CRLF.
		var out []byte
		for int64(len(out)) < n {
			w := pick(&r, contentWords)
			out = append(out, w...)
			switch r.intn(12) {
			case 0:
				out = append(out, '\n')
			case 1:
				out = append(out, '\r', '\n')
			default:
				out = append(out, ' ')
			}
		}
		return out[:n]
	}
	r.fill(b)
	copy(b, magic[ext])
	return b
}

// emptyKey is the key of the one empty media file (media index 3), or "".
func (p *plan) emptyKey() string {
	if p.media == 0 || p.chapters*int64(p.media) < 4 {
		return ""
	}
	ch := p.chapterAt(3 / int64(p.media))
	return fmt.Sprintf("media/ch%d_%d.%s", ch.id, 3%p.media+1, mediaExts[mediaTypes[3]])
}

// chapterAt returns the chapter with index i.
func (p *plan) chapterAt(i int64) chapter {
	// Books hold perBook+1 chapters up to extra, perBook after.
	big := int64(p.extra) * int64(p.perBook+1)
	if i < big {
		b := int(i / int64(p.perBook+1))
		return p.chapter(b, int(i-p.chapterStart(b))+1)
	}
	b := p.extra + int((i-big)/int64(p.perBook))
	return p.chapter(b, int(i-p.chapterStart(b))+1)
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0 && s[i] != '/'; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}
