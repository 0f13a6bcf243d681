package archive

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Padding writes exactly n bytes that decompressors read as nothing: an empty gzip member
// whose header carries an extra field of the right length, or a zstd skippable frame. It
// lets a part end on a boundary (n from MinPadding up to 65 KiB; 0 writes nothing). A plain
// tar has no such thing and is refused.
func Padding(w io.Writer, c Compression, n int) error {
	if n == 0 {
		return nil
	}
	if n < MinPadding(c) || n > 65<<10 {
		return fmt.Errorf("archive: padding of %d bytes for %s: out of range", n, c)
	}
	b := make([]byte, n)
	switch c {
	case Zstd:
		binary.LittleEndian.PutUint32(b, 0x184D2A50) // a skippable frame's magic
		binary.LittleEndian.PutUint32(b[4:], uint32(n-8))
	case Gzip:
		// ID1 ID2 CM=deflate FLG=FEXTRA, MTIME 0, XFL 0, OS unknown; XLEN; one subfield "WB"
		// of zeros; an empty deflate stream (a final fixed-Huffman block); CRC32 0, ISIZE 0.
		copy(b, []byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff})
		xlen := n - 22
		binary.LittleEndian.PutUint16(b[10:], uint16(xlen))
		b[12], b[13] = 'W', 'B'
		binary.LittleEndian.PutUint16(b[14:], uint16(xlen-4))
		copy(b[12+xlen:], []byte{0x03, 0x00})
	default:
		return fmt.Errorf("archive: no padding for compression %s", c)
	}
	_, err := w.Write(b)
	return err
}

// MinPadding is the smallest Padding of c (0: c has none).
func MinPadding(c Compression) int {
	switch c {
	case Zstd:
		return 8
	case Gzip:
		return 26
	}
	return 0
}

// PaddingTo is the padding that takes size to the next multiple of align (align well above
// MinPadding): 0 when size is a multiple already.
func PaddingTo(size int64, align int, c Compression) int {
	pad := int((int64(align) - size%int64(align)) % int64(align))
	if pad != 0 && pad < MinPadding(c) {
		pad += align
	}
	return pad
}
