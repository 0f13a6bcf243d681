package layout

// A backup's file index and the content-addressed object store.
//
// FileIndex lists a backup's storage files, one messages.FileEntry per JSON line, sorted by
// Path (byte order, as SHA256SUMS): Path ("files/…"), Size, ModTime (local source) or ETag
// (S3 source), SHA256, Mode, and Stored when the file is stored under another name. It is
// listed in SHA256SUMS like every other file, so a verified manifest vouches for it. The next
// backup reads it to find the files that have not changed.
//
// On an S3 destination a backup's files are not under its own files/ but in the destination's
// object store, each content once, under ObjectKey(sum): backups share what did not change,
// and a backup's FileIndex says where each of its files is (FilesSummary.Store is
// StoreObjects).

// FileIndex is the name of a backup's file index as earlier versions wrote it, uncompressed.
const FileIndex = "files_index.jsonl"

// FileIndexGz is the name of a backup's file index as it is written now: FileIndex gzipped,
// a third of its size (the index is most of what an incremental backup adds besides the
// changed files). Every reader accepts both (DecompressIndex).
const FileIndexGz = FileIndex + ".gz"

// IsFileIndexName tells whether a backup's metadata may name its file index name.
func IsFileIndexName(name string) bool { return name == FileIndex || name == FileIndexGz }

// ObjectsDir is the object store's prefix under an S3 destination's root.
const ObjectsDir = "objects"

// StoreObjects is FilesSummary.Store for a backup whose files are in the object store.
const StoreObjects = "objects"

// ObjectKey is where the object store keeps content of hex sha256 sum, relative to the
// destination's root: objects/sha256/ab/abcdef….
func ObjectKey(sum string) string {
	if len(sum) < 2 {
		return ObjectsDir + "/sha256/" + sum
	}
	return ObjectsDir + "/sha256/" + sum[:2] + "/" + sum
}
