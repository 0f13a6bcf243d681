// Package layout defines the on-disk format of a backup: the folder
// backup_YYYYMMDD_HHMMSS/ (or its .tar.gz), its backup_metadata.json,
// SHA256SUMS and restore.sh, and how a backup is staged and published so
// that an interrupted run never leaves anything named like a backup.
//
// The layout is compatible with the platform's Python backup_data command:
//
//	backup_YYYYMMDD_HHMMSS/
//	├── backup_metadata.json     written LAST: a backup without it is incomplete
//	├── SHA256SUMS               `sha256sum -c SHA256SUMS` passes with coreutils
//	├── restore.sh               mode 0755
//	├── db_<app>_<model>.json    Django fixtures
//	└── files/content/ files/images/ files/media/
package layout

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Names of the fixed entries of a backup folder.
const (
	FileMetadata = "backup_metadata.json"
	FileSums     = "SHA256SUMS"
	FileRestore  = "restore.sh"
	FilesDir     = "files"
)

// ArchiveExt is the file name extension of a compressed backup (gzip, the default).
const ArchiveExt = ".tar.gz"

// ArchiveExts are the file name extensions of a backup archive: gzip, zstd, or a plain tar,
// and each of them age-encrypted as a whole (EncryptedExt).
var ArchiveExts = []string{ArchiveExt, ".tar.zst", ".tar", ArchiveExt + EncryptedExt, ".tar.zst" + EncryptedExt, ".tar" + EncryptedExt}

// EncryptedExt ends the name of an age-encrypted archive ("backup_….tar.gz.age").
const EncryptedExt = ".age"

// SidecarExt ends the name of an encrypted archive's sidecar: its metadata in the clear
// ("backup_….tar.gz.age.json"), written after the archive, so an encrypted archive without
// one is incomplete.
const SidecarExt = ".json"

// SidecarName is the sidecar of the encrypted archive named archive.
func SidecarName(archive string) string { return archive + SidecarExt }

// ArchiveOfSidecar returns the encrypted archive a sidecar's name belongs to, and whether
// name is a sidecar of an archive named like a backup.
func ArchiveOfSidecar(name string) (string, bool) {
	a, ok := strings.CutSuffix(name, SidecarExt)
	if !ok {
		return "", false
	}
	p, ok := ParseName(a, time.UTC)
	return a, ok && p.Encrypted
}

// TrimArchiveExt returns name without its archive extension, and whether it had one.
func TrimArchiveExt(name string) (string, bool) {
	for _, ext := range ArchiveExts {
		if base, ok := strings.CutSuffix(name, ext); ok {
			return base, true
		}
	}
	return name, false
}

// nameLayout is the time layout of a backup name, as the Python command's
// strftime("backup_%Y%m%d_%H%M%S").
const nameLayout = "backup_20060102_150405"

// Name returns the backup name for t, "backup_20241201_143022". The time is
// formatted in t's own location; callers pass local time, as Python's
// datetime.now() does.
func Name(t time.Time) string {
	return t.Format(nameLayout)
}

// nameWithSeq returns Name(t) with the collision suffix seq ("-2") when seq > 1.
func nameWithSeq(t time.Time, seq int) string {
	if seq <= 1 {
		return Name(t)
	}
	return Name(t) + "-" + strconv.Itoa(seq)
}

// NextSeq is the collision suffix a backup named for t starts from, given the names in its
// destination: one past the highest suffix they use for that second (1 when none does). A
// backup deleted from the middle of a second's run of names then leaves a gap rather than a
// free name, and names keep the order in which the backups were taken.
func NextSeq(names []string, t time.Time) int {
	base, next := Name(t), 1
	for _, n := range names {
		m := nameRE.FindStringSubmatch(n)
		if m == nil || m[1] != base {
			continue
		}
		seq := 1
		if m[2] != "" {
			seq, _ = strconv.Atoi(m[2])
		}
		next = max(next, seq+1)
	}
	return next
}

var nameRE = regexp.MustCompile(`^(backup_[0-9]{8}_[0-9]{6})(?:-([1-9][0-9]{0,8}))?(?:(\.tar\.gz|\.tar\.zst|\.tar)(\.age)?)?$`)

// ParsedName is what ParseName finds in a backup name.
type ParsedName struct {
	Time       time.Time // in the location given to ParseName
	Seq        int       // 1 for no suffix, N for "-N"
	Compressed bool      // the name ends in an archive extension (ArchiveExts)
	Encrypted  bool      // the archive is age-encrypted as a whole (EncryptedExt)
}

// ParseName parses "backup_YYYYMMDD_HHMMSS", optionally followed by a
// collision suffix "-N" (N >= 2) and an archive extension (ArchiveExts). The time is read in loc
// (time.Local if nil). ok is false if s is not such a name.
func ParseName(s string, loc *time.Location) (p ParsedName, ok bool) {
	m := nameRE.FindStringSubmatch(s)
	if m == nil {
		return ParsedName{}, false
	}
	if loc == nil {
		loc = time.Local
	}
	t, err := time.ParseInLocation(nameLayout, m[1], loc)
	if err != nil {
		return ParsedName{}, false
	}
	p = ParsedName{Time: t, Seq: 1, Compressed: m[3] != "", Encrypted: m[4] != ""}
	if m[2] != "" {
		n, err := strconv.Atoi(m[2])
		if err != nil || n < 2 {
			return ParsedName{}, false
		}
		p.Seq = n
	}
	return p, true
}

// IsBackupName reports whether s names a backup folder or archive:
// backup_YYYYMMDD_HHMMSS with a valid date, an optional collision suffix
// ("-2", "-3", ...) and an optional archive extension (ArchiveExts).
func IsBackupName(s string) bool {
	_, ok := ParseName(s, time.UTC)
	return ok
}
