package archive

import (
	"archive/tar"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// A pad is bytes that an archive's readers pass over without a trace: an empty gzip member
// whose header carries an extra field, a zstd skippable frame, or (plain tar) a pax extended
// header holding only a comment. It lets a part be brought to an exact length, e.g. a
// multiple of the file system's block, where blocks can be inserted into a file but bytes
// cannot.

// gzipPadMin is the smallest gzip pad: a 10-byte header, the extra field's length and one
// subfield header, an empty final block and the 8-byte trailer.
const gzipPadMin = 10 + 2 + 4 + 2 + 8

// gzipPadMax is the largest pad one gzip member makes (the extra field holds 65535 bytes).
const gzipPadMax = 10 + 2 + 65535 + 2 + 8

// zstdPadMin is a skippable frame's header: its magic and its length.
const zstdPadMin = 8

// PadMin is the fewest bytes a pad of the compression c can have; a pad of None is whole
// 512-byte blocks.
func PadMin(c Compression) int64 {
	switch c {
	case Zstd:
		return zstdPadMin
	case None:
		return tarBlock
	}
	return gzipPadMin
}

const tarBlock = 512

// PadFor is the length of the shortest pad of compression c that brings n bytes to a
// multiple of align (a multiple of 512).
func PadFor(c Compression, n, align int64) int64 {
	pad := (align - n%align) % align
	for pad < PadMin(c) {
		pad += align
	}
	return pad
}

// WritePad writes a pad of exactly n bytes for an archive of compression c (n at least
// PadMin; a multiple of 512 for None).
func WritePad(w io.Writer, c Compression, n int64) error {
	if n < PadMin(c) {
		return fmt.Errorf("archive: a %s pad of %d bytes: the least is %d", c, n, PadMin(c))
	}
	switch c {
	case Zstd:
		return zstdPad(w, n)
	case None:
		return tarPad(w, n)
	}
	return gzipPad(w, n)
}

// zstdPad writes skippable frames (magic 0x184D2A50, then the length of what follows).
func zstdPad(w io.Writer, n int64) error {
	for n > 0 {
		body := min(n-zstdPadMin, 1<<30)
		if rest := n - zstdPadMin - body; rest > 0 && rest < zstdPadMin {
			body -= zstdPadMin // leave the last frame room for its header
		}
		var hdr [zstdPadMin]byte
		binary.LittleEndian.PutUint32(hdr[0:], 0x184D2A50)
		binary.LittleEndian.PutUint32(hdr[4:], uint32(body))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		if err := writeZeros(w, body); err != nil {
			return err
		}
		n -= zstdPadMin + body
	}
	return nil
}

// gzipPad writes empty gzip members whose extra field holds one subfield "WP" (padding) of
// zeros.
func gzipPad(w io.Writer, n int64) error {
	for n > 0 {
		m := min(n, gzipPadMax)
		if rest := n - m; rest > 0 && rest < gzipPadMin {
			m -= gzipPadMin // leave the last member room for its frame
		}
		xlen := m - gzipPadMin + 4 // the subfield's header and data
		hdr := []byte{0x1f, 0x8b, 8, 4 /* FEXTRA */, 0, 0, 0, 0, 0, 255, byte(xlen), byte(xlen >> 8),
			'W', 'P', byte(xlen - 4), byte((xlen - 4) >> 8)}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if err := writeZeros(w, xlen-4); err != nil {
			return err
		}
		// An empty final block (fixed Huffman codes, end of block at once), then CRC-32 and
		// size, both 0.
		if _, err := w.Write([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// tarPad writes a pax extended header whose one record is a comment, n bytes with its
// header block. A comment changes nothing in the entry it precedes.
func tarPad(w io.Writer, n int64) error {
	if n%tarBlock != 0 {
		return fmt.Errorf("archive: a tar pad of %d bytes: not whole %d-byte blocks", n, tarBlock)
	}
	var rec []byte
	if size := n - tarBlock; size > 0 {
		rec = paxComment(size)
	}
	block := make([]byte, n)
	paxHeader(block[:tarBlock], int64(len(rec)))
	copy(block[tarBlock:], rec)
	_, err := w.Write(block)
	return err
}

// paxHeader fills a ustar header block for a pax extended header ('x') of size bytes
// (archive/tar writes these only for the entries it makes).
func paxHeader(b []byte, size int64) {
	copy(b[0:], "pad")
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = tar.TypeXHeader
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	var sum int64
	for _, c := range b[:tarBlock] {
		sum += int64(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
}

// paxComment is one pax record "LEN comment=…\n" of exactly size bytes (size ≥ 13).
func paxComment(size int64) []byte {
	const key = " comment=\n"
	digits := int64(len(strconv.FormatInt(size, 10)))
	value := size - digits - int64(len(key))
	rec := make([]byte, 0, size)
	rec = strconv.AppendInt(rec, size, 10)
	rec = append(rec, " comment="...)
	for range value {
		rec = append(rec, 'p')
	}
	return append(rec, '\n')
}

func writeZeros(w io.Writer, n int64) error {
	var zero [4096]byte
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := w.Write(zero[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
