package archive

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// EndSize is how much of an archive's end EndsWhole needs: more than the last part WriteEnd
// writes, in any compression.
const EndSize = 4 << 10

// HeadSize is how much of an archive's start EndsWhole needs: a gzip member's header up to
// its extra field.
const HeadSize = 16

// partsMark is the extra field of every gzip member of a part (RFC 1952: one subfield "WB",
// no data). A .tar.gz whose first member carries it was built from parts, and so ends with
// the end part: a cut one is told from a one-stream archive, whose only sign of a whole end
// is its trailer.
var partsMark = []byte{'W', 'B', 0, 0}

// EndsWhole tells whether an archive of kind c and size bytes is whole, from head, its first
// HeadSize bytes, and tail, its last EndSize (either all of a shorter archive):
//   - an archive this tool builds from parts ends with a member (gzip) or frame (zstd) that
//     ends exactly at the end of the file and holds the two zero blocks that end a tar;
//   - a .tar.gz of one gzip stream (an earlier version's, the Python command's, none whose
//     head has the parts mark) ends with a trailer whose size field is a whole number of tar
//     blocks, as a tar's length is: one cut short ends in whatever bytes it held there, a
//     multiple of 512 one time in 512;
//   - a plain .tar ends with the two zero blocks, a whole number of blocks long.
//
// It compares no compressor's output byte for byte, so another version of the compressor does
// not matter. A .tar.zst that does not end as this tool ends one may be another tool's: the
// caller tells them apart.
func EndsWhole(head, tail []byte, size int64, c Compression) bool {
	const endBlocks = 2 * 512
	if c == None {
		return size%512 == 0 && len(tail) >= endBlocks && allZero(tail[len(tail)-endBlocks:])
	}
	magic := []byte{0x1f, 0x8b, 0x08}
	if c == Zstd {
		magic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	}
	for i := bytes.LastIndex(tail, magic); i >= 0; i = bytes.LastIndex(tail[:i], magic) {
		if out, ok := lastMember(tail[i:], c); ok {
			// The end part, or a whole one-stream archive short enough to be all in tail.
			return len(out) >= endBlocks && allZero(out[len(out)-endBlocks:])
		}
	}
	const trailer = 8 // CRC-32 and ISIZE, the uncompressed size modulo 2^32
	return c == Gzip && !builtFromParts(head) && len(tail) >= trailer &&
		binary.LittleEndian.Uint32(tail[len(tail)-4:])%512 == 0
}

// builtFromParts tells whether head starts with a gzip member that has the parts mark.
func builtFromParts(head []byte) bool {
	const fextra = 1 << 2
	if len(head) < 12+len(partsMark) || head[0] != 0x1f || head[1] != 0x8b || head[3]&fextra == 0 {
		return false
	}
	return binary.LittleEndian.Uint16(head[10:12]) == uint16(len(partsMark)) && bytes.Equal(head[12:12+len(partsMark)], partsMark)
}

// lastMember decompresses b, which must be exactly one gzip member or zstd frame.
func lastMember(b []byte, c Compression) ([]byte, bool) {
	r := bytes.NewReader(b)
	var out []byte
	var err error
	if c == Zstd {
		var d *zstd.Decoder
		if d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<20)); err != nil {
			return nil, false
		}
		defer d.Close()
		out, err = io.ReadAll(io.LimitReader(d, 1<<20))
	} else {
		var g *gzip.Reader
		if g, err = gzip.NewReader(r); err != nil {
			return nil, false
		}
		g.Multistream(false)
		out, err = io.ReadAll(io.LimitReader(g, 1<<20))
	}
	return out, err == nil && r.Len() == 0
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
