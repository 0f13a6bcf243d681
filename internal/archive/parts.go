package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// An archive is built from parts, each written on its own (by the workers as they copy, by
// the coordinator for the backup's own files) and concatenated as they are: a part is a run of
// tar entries (header, data, padding) without the end-of-archive blocks, compressed as one or
// more whole gzip members or zstd frames, which decompressors read through one after the
// other. The last part (WriteEnd) holds the end-of-archive blocks.

// class is how a member compresses what it holds.
type class int

const (
	classNone   class = iota // no member open
	classPacked              // compressed at a fast level
	classStored              // incompressible: stored as is, no CPU spent on it
)

// sampleSize is how much of a file decides whether it is compressible.
const sampleSize = 64 << 10

// estimateSize is how much of the sample the compressibility measures read.
const estimateSize = 16 << 10

// smallFile is the size below which a file goes into whatever member is open: switching
// members costs more than compressing it either way.
const smallFile = 4 << 10

// incompressibleExts are the extensions of formats that are compressed already.
var incompressibleExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true, ".avif": true,
	".heic": true, ".mp3": true, ".mp4": true, ".m4a": true, ".m4v": true, ".mov": true,
	".webm": true, ".ogg": true, ".opus": true, ".flac": true, ".zip": true, ".gz": true,
	".tgz": true, ".zst": true, ".xz": true, ".bz2": true, ".7z": true, ".rar": true,
	".br": true, ".lz4": true, ".woff": true, ".woff2": true, ".epub": true, ".docx": true,
	".xlsx": true, ".pptx": true, ".odt": true,
}

// minSaving is the share of a sample a compressor must be able to save for its file to be
// compressed. Random bytes fall far short of it (4 KiB of them: 0.6% by entropy coding, nothing
// by matches).
const minSaving = 0.02

// Incompressible reports whether a file is not worth compressing: by its name's extension, or
// because neither way a compressor saves works on the first bytes of it (sample). It codes
// frequent bytes short (the sample's order-0 entropy says how much that saves) and replaces
// repeats with references (a fast LZ pass, s2's estimate, finds them). Both measures are
// exact counts with little noise; a statistical score (compress.Estimate) called one random
// sample in fifty compressible.
func Incompressible(name string, sample []byte) bool {
	if incompressibleExts[strings.ToLower(path.Ext(name))] {
		return true
	}
	if len(sample) < smallFile {
		return false
	}
	s := sample[:min(len(sample), estimateSize)]
	keep := (1 - minSaving) * float64(len(s))
	if float64(compress.ShannonEntropyBits(s))/8 < keep {
		return false
	}
	d := s2.EstimateBlockSize(s) // -1: matches save nothing
	return d < 0 || float64(d) >= keep
}

// PartWriter writes one part of an archive: tar entries under the top folder top, each
// compressed or stored as its content deserves, without the end-of-archive blocks.
type PartWriter struct {
	// w is the destination, buffered: a compressor writes a few hundred bytes at a time, a
	// system call each on a file.
	w   *bufio.Writer
	c   Compression
	top string
	cur class
	// enc is the open member's compressor (nil with None or no member open).
	enc io.WriteCloser
	sw  switchWriter
	tw  *tar.Writer
	gz  [3]*gzip.Writer
	zs  *zstd.Encoder
	// pipe compresses a packed member's bytes on a goroutine of its own.
	pipe pipe
	buf  []byte
	// Stored and Packed count the file bytes written into stored and compressed members.
	Stored, Packed int64
	// through, when set, reads the entries' content (WithEntryReader).
	through EntryReader
}

// switchWriter is what the tar writer writes into: the open member, changed between entries.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// partBuffer is how much of a part's output is written at once.
const partBuffer = 256 << 10

// NewPartWriter starts a part written to w. buf (any size; nil: one is made) is what file
// contents stream through.
func NewPartWriter(w io.Writer, c Compression, top string, buf []byte) (*PartWriter, error) {
	if err := checkTop(top); err != nil {
		return nil, err
	}
	if c == "" {
		c = Gzip
	}
	if len(buf) < sampleSize {
		buf = make([]byte, sampleSize)
	}
	p := &PartWriter{w: bufio.NewWriterSize(w, partBuffer), c: c, top: top, buf: buf}
	p.sw.w = p.w
	p.tw = tar.NewWriter(&p.sw)
	return p, nil
}

func checkTop(top string) error {
	if top == "" || top == "." || top == ".." || strings.ContainsAny(top, "/\\\x00") {
		return fmt.Errorf("archive: top folder %q must be one path component", top)
	}
	return nil
}

// File is one file's header in a part.
type File struct {
	// Name is the path under the top folder ("files/content/1.json").
	Name    string
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
}

// Added is what Add wrote of one file.
type Added struct {
	// Read is the bytes read from the source; when it is less than File.Size the source
	// ended early and the entry was padded with zeros to its header's size.
	Read int64
	// SHA256 is the hex digest of the entry's content as archived (padding included).
	SHA256 string
}

// Add writes one file: its header, then File.Size bytes of r (at most; zeros if r ends
// early, as tar does with a file that shrank). Its first bytes decide whether it goes into a
// compressed or a stored member. count, if set, is told the bytes as they are written.
func (p *PartWriter) Add(ctx context.Context, f File, r io.Reader, count func(int64)) (Added, error) {
	var a Added
	hdr, err := p.header(f)
	if err != nil {
		return a, err
	}
	k, err := io.ReadFull(ctxReader{ctx, r}, p.buf[:min(int64(sampleSize), f.Size)])
	if err != nil && err != io.ErrUnexpectedEOF {
		return a, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	want := classPacked
	switch {
	case f.Size < smallFile && p.cur != classNone:
		want = p.cur
	case p.c != None && Incompressible(f.Name, p.buf[:k]):
		want = classStored
	}
	if err := p.member(want); err != nil {
		return a, err
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return a, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	h := sha256.New()
	out := io.MultiWriter(p.tw, h)
	n, err := p.content(ctx, out, r, k, f.Size, count)
	a.Read = n
	if err != nil {
		return a, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	if want == classStored {
		p.Stored += f.Size
	} else {
		p.Packed += f.Size
	}
	a.SHA256 = hex.EncodeToString(h.Sum(nil))
	return a, p.tw.Flush()
}

// content writes the k sampled bytes in p.buf and the rest of r, size bytes in all, padding
// with zeros if r ends early; it returns the bytes read.
func (p *PartWriter) content(ctx context.Context, out io.Writer, r io.Reader, k int, size int64, count func(int64)) (int64, error) {
	if _, err := out.Write(p.buf[:k]); err != nil {
		return 0, err
	}
	if count != nil {
		count(int64(k))
	}
	rest := size - int64(k)
	var n int64
	if rest > 0 {
		var err error
		cw := io.Writer(out)
		if count != nil {
			cw = progressWriter{out, count}
		}
		n, err = io.CopyBuffer(cw, ctxReader{ctx, io.LimitReader(r, rest)}, p.buf)
		if err != nil {
			return int64(k) + n, err
		}
	}
	read := int64(k) + n
	if read < size {
		clear(p.buf)
		for left := size - read; left > 0; {
			m := min(left, int64(len(p.buf)))
			if _, err := out.Write(p.buf[:m]); err != nil {
				return read, err
			}
			left -= m
		}
	}
	return read, nil
}

type progressWriter struct {
	w     io.Writer
	count func(int64)
}

func (c progressWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.count(int64(n))
	return n, err
}

// AddDir writes a folder entry (name under the top folder; "" or "." is the top folder).
func (p *PartWriter) AddDir(name string, mode fs.FileMode, mtime time.Time) error {
	full := p.top + "/"
	if name != "" && name != "." {
		full = p.top + "/" + strings.TrimSuffix(name, "/") + "/"
	}
	if err := p.member(max(p.cur, classPacked)); err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: full, Mode: int64(mode.Perm()), ModTime: mtime.Truncate(time.Second)}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", full, err)
	}
	return p.tw.Flush()
}

func (p *PartWriter) header(f File) (*tar.Header, error) {
	if _, err := cleanName(f.Name); err != nil {
		return nil, fmt.Errorf("archive: entry name %q: %w", f.Name, err)
	}
	if f.Size < 0 {
		return nil, fmt.Errorf("archive %s: negative size %d", f.Name, f.Size)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o600 // a backup's files are private
	}
	return &tar.Header{Typeflag: tar.TypeReg, Name: p.top + "/" + f.Name, Size: f.Size, Mode: int64(mode),
		ModTime: f.ModTime.Truncate(time.Second)}, nil
}

// member makes sure the open member is of class want, closing the other one.
func (p *PartWriter) member(want class) error {
	if p.c == None || p.cur == want {
		p.cur = want
		return nil
	}
	if err := p.closeMember(); err != nil {
		return err
	}
	var err error
	p.enc, err = p.open(want)
	if err != nil {
		return err
	}
	p.sw.w, p.cur = p.enc, want
	if want == classPacked {
		// Stored members cost little CPU: only compression is worth a goroutine.
		p.pipe.start(p.enc)
		p.sw.w = &p.pipe
	}
	return nil
}

// open starts a member of class c on p.w.
func (p *PartWriter) open(c class) (io.WriteCloser, error) {
	if p.c == Zstd {
		if c == classStored {
			return newRawFrame(p.w), nil
		}
		if p.zs == nil {
			zs, err := zstd.NewWriter(p.w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
				zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			if err != nil {
				return nil, err
			}
			p.zs = zs
		} else {
			p.zs.Reset(p.w)
		}
		return p.zs, nil
	}
	level := gzip.BestSpeed
	if c == classStored {
		level = gzip.NoCompression
	}
	gz := p.gz[c]
	if gz != nil {
		gz.Reset(p.w)
	} else {
		var err error
		if gz, err = gzip.NewWriterLevel(p.w, level); err != nil {
			return nil, err
		}
		p.gz[c] = gz
	}
	gz.Header.Extra = partsMark // Reset clears the header
	return gz, nil
}

func (p *PartWriter) closeMember() error {
	if p.enc == nil {
		return nil
	}
	err := p.pipe.stop()
	if cerr := p.enc.Close(); err == nil {
		err = cerr
	}
	p.enc, p.sw.w, p.cur = nil, p.w, classNone
	if err != nil {
		return fmt.Errorf("archive: close a compressed member: %w", err)
	}
	return nil
}

// Close ends the part (its last member); it writes no end-of-archive blocks, and does not
// close the underlying writer.
func (p *PartWriter) Close() error {
	if err := p.tw.Flush(); err != nil {
		return err
	}
	if err := p.closeMember(); err != nil {
		return err
	}
	return p.w.Flush()
}

// Abort ends the part's compressing goroutine without finishing the part: for a part given
// up after an error (after Close, a no-op). What was written is left incomplete.
func (p *PartWriter) Abort() {
	p.pipe.stop() //nolint:errcheck // the part is given up: its first error was returned already
}

// WriteEnd writes the last part of an archive: the end-of-archive blocks (two zero blocks),
// compressed as the archive is.
func WriteEnd(w io.Writer, c Compression) error {
	p, err := NewPartWriter(w, c, "end", nil)
	if err != nil {
		return err
	}
	defer p.Abort()
	if err := p.member(classPacked); err != nil {
		return err
	}
	zero := make([]byte, 2*512)
	if _, err := p.sw.Write(zero); err != nil {
		return err
	}
	if err := p.closeMember(); err != nil {
		return err
	}
	return p.w.Flush()
}

// rawFrame writes one zstd frame of raw (stored) blocks: what zstd itself writes for data it
// cannot compress, without spending any CPU on trying.
type rawFrame struct {
	w       io.Writer
	buf     []byte
	started bool
	err     error
}

// rawBlockMax is the largest raw block: the 128 KiB window the frame header declares.
const rawBlockMax = 128 << 10

func newRawFrame(w io.Writer) *rawFrame {
	return &rawFrame{w: w, buf: make([]byte, 0, rawBlockMax)}
}

func (f *rawFrame) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for len(p) > 0 {
		if len(f.buf) == rawBlockMax {
			if f.err = f.block(false); f.err != nil {
				return n, f.err
			}
		}
		k := min(len(p), rawBlockMax-len(f.buf))
		f.buf = append(f.buf, p[:k]...)
		p, n = p[k:], n+k
	}
	return n, nil
}

// block writes the buffered bytes as one raw block (the frame header first).
func (f *rawFrame) block(last bool) error {
	if !f.started {
		// Magic, a descriptor with no content size, checksum or dictionary, and a window
		// descriptor of 2^17 bytes (exponent 7, mantissa 0).
		if _, err := f.w.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3}); err != nil {
			return err
		}
		f.started = true
	}
	h := uint32(len(f.buf))<<3 | 0<<1 // block type 0: raw
	if last {
		h |= 1
	}
	if _, err := f.w.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)}); err != nil {
		return err
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

// Close writes the last block, ending the frame.
func (f *rawFrame) Close() error {
	if f.err != nil {
		return f.err
	}
	f.err = f.block(true)
	return f.err
}

// WriteHead writes the first part of an archive from the staged folder dir: the top folder,
// backup_metadata.json and SHA256SUMS first (a reader checks every later entry against them at
// its header), then the rest of dir in walk order, except what skip says (relative,
// slash-separated paths; a skipped folder is skipped whole).
func WriteHead(ctx context.Context, w io.Writer, c Compression, dir, top string, skip func(rel string) bool, opts ...Option) (Stats, error) {
	var st Stats
	p, err := NewPartWriter(w, c, top, nil)
	if err != nil {
		return st, err
	}
	p.through = headOptions(opts).entry
	defer p.Abort()
	root, err := os.Stat(dir)
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := p.AddDir(".", root.Mode(), root.ModTime()); err != nil {
		return st, err
	}
	st.Dirs++
	first := map[string]bool{}
	for _, name := range leading {
		info, err := os.Lstat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("archive %s: %w", dir, err)
		}
		if err := p.addLocal(ctx, filepath.Join(dir, name), name, info, &st); err != nil {
			return st, err
		}
		first[name] = true
	}
	err = filepath.WalkDir(dir, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, fp)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == "." || first[rel]:
			return nil
		case skip != nil && skip(rel):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return p.addLocal(ctx, fp, rel, info, &st)
	})
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	return st, p.Close()
}

// addLocal adds one local file or folder.
func (p *PartWriter) addLocal(ctx context.Context, fp, rel string, info fs.FileInfo, st *Stats) error {
	switch {
	case info.IsDir():
		st.Dirs++
		return p.AddDir(rel, info.Mode(), info.ModTime())
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file or folder (%v)", rel, info.Mode().Type())
	}
	f, err := os.Open(fp)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := p.addStored(ctx, File{Name: rel, Size: info.Size(), Mode: info.Mode(), ModTime: info.ModTime()}, f, "file")
	if err != nil {
		return err
	}
	st.Files++
	st.Bytes += n
	return nil
}

// EntryReader, given the path of an entry under the top folder and its content as stored,
// returns the content to archive instead and its exact size (ok false: archive it as stored).
// It lets a staged file kept encrypted be decrypted into the archive as it is written.
type EntryReader func(name string, stored io.Reader) (content io.Reader, size int64, ok bool, err error)

// WithEntryReader (WriteHead, WriteObjectsHead) reads every entry's content through fn.
func WithEntryReader(fn EntryReader) Option { return func(o *options) { o.entry = fn } }

// headOptions applies opts.
func headOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// addStored adds a file from its stored content, through p.through if that takes it, and
// returns the bytes archived. The content must hold exactly the entry's size: what it was
// when listed (what, "file" or "object", says which), or what p.through said.
func (p *PartWriter) addStored(ctx context.Context, f File, stored io.Reader, what string) (int64, error) {
	r, through := stored, false
	if p.through != nil {
		content, size, ok, err := p.through(f.Name, stored)
		if err != nil {
			return 0, fmt.Errorf("archive %s: %w", f.Name, err)
		}
		if ok {
			r, f.Size, through = content, size, true
		}
	}
	a, err := p.Add(ctx, f, r, nil)
	if err != nil {
		return 0, err
	}
	if a.Read != f.Size {
		return 0, fmt.Errorf("%s: %s shrank from %d to %d bytes while archived", f.Name, what, f.Size, a.Read)
	}
	if through {
		// Reading to the end also lets a decrypting reader check the content's last chunk.
		var one [1]byte
		if k, err := io.ReadFull(r, one[:]); k > 0 {
			return 0, fmt.Errorf("archive %s: the content holds more than its %d bytes", f.Name, f.Size)
		} else if err != io.EOF {
			return 0, fmt.Errorf("archive %s: %w", f.Name, err)
		}
	}
	return f.Size, nil
}

// WriteObjectsHead writes the first part of an archive from objects (e.g. a staging area on
// S3), like WriteHead: backup_metadata.json and SHA256SUMS first, the rest sorted by key,
// content read through open.
func WriteObjectsHead(ctx context.Context, w io.Writer, c Compression, top string, objs []Object, open func(key string) (io.ReadCloser, error), opts ...Option) (Stats, error) {
	var st Stats
	p, err := NewPartWriter(w, c, top, nil)
	if err != nil {
		return st, err
	}
	p.through = headOptions(opts).entry
	defer p.Abort()
	for _, obj := range sortLeading(objs) {
		r, err := open(obj.Key)
		if err != nil {
			return st, fmt.Errorf("archive %s: %w", obj.Key, err)
		}
		n, err := p.addStored(ctx, File{Name: obj.Key, Size: obj.Size, Mode: obj.Mode, ModTime: obj.ModTime}, r, "object")
		r.Close()
		if err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += n
	}
	return st, p.Close()
}
