package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A compressed backup is built from parts: each copy task writes its files as one part of the
// archive (tar entries compressed as whole gzip members or zstd frames, no end blocks) into
// the staging area's .wnb/parts/; the publish writes a first part (the top folder, metadata,
// SHA256SUMS, restore.sh, fixtures) and a last one (the end-of-archive blocks) and
// concatenates them all: locally by copies between files (copy_file_range), on S3 by a
// multipart upload of server-side part copies. Every file is read once, by a worker.
//
// The entries carry the backup's name (their top folder), so the name is chosen when the
// files are planned, kept in every copy task (and so in the saved plan, for a resume), and
// recorded in the archive manifest the assembly writes.

// archiveManifestFile lists, once the backup is assembled, the parts to concatenate.
const archiveManifestFile = internalDir + "/archive.json"

// archiveManifest is what a publish concatenates: the copy tasks' parts in plan order, under
// the top folder they were written with.
type archiveManifest struct {
	Top         string   `json:"top"`
	Compression string   `json:"compression"`
	Parts       []string `json:"parts"`
}

// compression is the run's archive compression.
func (r *backupRun) compression() archive.Compression {
	c, err := archive.ParseCompression(r.o.Compression)
	if err != nil {
		return archive.Gzip // checked when the options were read
	}
	return c
}

// archiveParts makes the copy tasks of a compressed backup write archive parts: the top
// folder is the name the backup will be published under, chosen now (or kept from the plan a
// resumed run saved); a task still to run writes its part under its own id.
func (r *backupRun) archiveParts(ctx context.Context, copies []*messages.Task) error {
	if !r.o.Compress {
		return nil
	}
	for _, t := range copies {
		if a := t.Copy.Archive; a != nil && a.Top != "" {
			r.archiveTop = a.Top
			break
		}
	}
	if r.archiveTop == "" && len(copies) > 0 {
		top, err := r.chooseArchiveName(ctx)
		if err != nil {
			return err
		}
		r.archiveTop = top
	}
	if err := r.sealParts(copies); err != nil {
		return err
	}
	for _, t := range copies {
		if t.Copy.Archive == nil {
			t.Copy.Archive = &messages.ArchivePart{Top: r.archiveTop, Compression: string(r.compression())}
		}
		if r.done[t.ID] == nil {
			t.Copy.Archive.Output = path.Join(internalDir, "parts", t.ID+r.compression().Ext())
		}
	}
	return nil
}

// chooseArchiveName is the name the run's archive will have (its entries carry it).
func (r *backupRun) chooseArchiveName(ctx context.Context) (string, error) {
	root, err := storage.Open(ctx, r.o.BackupDir)
	if err != nil {
		return "", fmt.Errorf("backup: choose the archive's name: %w", err)
	}
	defer root.Close()
	name, err := freeBackupName(ctx, root, r.o.BackupDir, r.start)
	if err != nil {
		return "", fmt.Errorf("backup: choose the archive's name: %w", err)
	}
	return name, nil
}

// freeBackupName is backup_YYYYMMDD_HHMMSS for t, or with -2, -3...: the first that no backup
// of the destination root (at location dir) has, as a folder or an archive of any
// compression, past the highest suffix its folders use for that second (layout.NextSeq), so
// that names keep the order the backups were taken in.
func freeBackupName(ctx context.Context, root *storage.Bucket, dir string, t time.Time) (string, error) {
	folders, err := root.Folders(ctx)
	if err != nil {
		return "", err
	}
	base := layout.Name(t)
	for seq := layout.NextSeq(folders, t); seq < 1000; seq++ {
		name := base
		if seq > 1 {
			name = fmt.Sprintf("%s-%d", base, seq)
		}
		taken, err := nameTaken(ctx, root, dir, name)
		if err != nil {
			return "", err
		}
		if !taken {
			return name, nil
		}
	}
	return "", fmt.Errorf("no free backup name for %s in %s", base, redact.URL(dir))
}

// nameTaken reports whether the destination root (at location dir) holds a backup called
// name: a folder, or an archive of any compression.
func nameTaken(ctx context.Context, root *storage.Bucket, dir, name string) (bool, error) {
	for _, ext := range layout.ArchiveExts {
		_, err := root.Stat(ctx, name+ext)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return false, err
		}
	}
	if root.IsLocal() {
		_, err := os.Lstat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	n, err := countUnder(ctx, root, name+"/", 1)
	return n > 0, err
}

// writeArchiveManifest records the parts to concatenate, before the metadata makes the
// staging area complete. A backup without files gets its name now.
func (r *backupRun) writeArchiveManifest(ctx context.Context) error {
	if !r.o.Compress {
		return nil
	}
	if r.archiveTop == "" {
		top, err := r.chooseArchiveName(ctx)
		if err != nil {
			return err
		}
		r.archiveTop = top
	}
	m := archiveManifest{Top: r.archiveTop, Compression: string(r.compression())}
	for _, t := range r.tasks {
		if t.Copy != nil && t.Copy.Archive != nil {
			m.Parts = append(m.Parts, t.Copy.Archive.Output)
		}
	}
	if r.body != nil {
		// The parts in the order they went into the body; a body that lacks one (a result
		// that never came) is given up, and the publish concatenates in plan order.
		if order := r.body.order(); sameParts(order, m.Parts) {
			m.Parts = order
		} else {
			r.log.Debug("the archive built during the copies lacks parts; the publish concatenates them", "built", len(order), "parts", len(m.Parts))
			r.body.discard()
			r.body = nil
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := r.stage.Bucket().Put(ctx, archiveManifestFile, bytes.NewReader(data), storage.Object{Mode: 0o600}); err != nil {
		return fmt.Errorf("backup: write %s: %w", archiveManifestFile, err)
	}
	return nil
}

// readArchiveManifest reads the staged backup's archive manifest; nil when there is none (a
// staging area assembled by an earlier version, whose files are under files/).
func readArchiveManifest(ctx context.Context, b *storage.Bucket) (*archiveManifest, error) {
	rc, _, err := b.Open(ctx, archiveManifestFile)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", archiveManifestFile, err)
	}
	defer rc.Close()
	var m archiveManifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return nil, fmt.Errorf("read %s: %w", archiveManifestFile, err)
	}
	if _, err := archive.ParseCompression(m.Compression); err != nil || m.Top == "" {
		return nil, fmt.Errorf("read %s: top %q, compression %q", archiveManifestFile, m.Top, m.Compression)
	}
	return &m, nil
}

// publishArchive publishes a local staged backup as an archive: the head, the parts and the
// end copied into one file (copy_file_range between files), linked to its name once whole.
// A predecessor killed after the link left the archive and the staging area: the archive is
// recognised by its run id, and only the staging area is removed.
func (d *localDestination) publishArchive(ctx context.Context, p publishOptions) (string, error) {
	// A predecessor killed while archiving left a partial archive under a temporary name (and
	// perhaps the sidecar of a whole one: publishSealedArchive looks at it).
	leftovers, _ := filepath.Glob(filepath.Join(d.backupDir, ".wnb-archive-"+d.run+"-*.tmp"))
	for _, f := range leftovers {
		if err := os.Remove(f); err != nil {
			return "", fmt.Errorf("remove a partial archive: %w", err)
		}
	}
	m, err := readArchiveManifest(ctx, d.bucket)
	if err != nil {
		return "", err
	}
	if m == nil {
		return d.publishStagedFolder(ctx, p)
	}
	comp, _ := archive.ParseCompression(m.Compression)
	if p.seal != nil {
		return d.publishSealedArchive(ctx, m, comp, p)
	}
	name := m.Top + comp.Ext()
	if done, err := d.publishedBefore(ctx, name); done || err != nil {
		return filepath.Join(d.backupDir, name), err
	}
	if final, ok, err := d.publishBody(ctx, name, m, comp, p); ok || err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("the backup name %s was taken by another backup while this one ran: %w", name, err)
		}
		return final, err
	}
	final, err := d.stage.PublishFile(name, func(f *os.File) error {
		return d.concatParts(ctx, f, m, comp, p)
	})
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("the backup name %s was taken by another backup while this one ran: %w", name, err)
	}
	return final, err
}

// publishedBefore reports whether the archive name exists and is this run's (its leading
// metadata names the run), in which case the staging area is removed.
func (d *localDestination) publishedBefore(ctx context.Context, name string) (bool, error) {
	f, err := storage.OpenRegular(filepath.Join(d.backupDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	meta, err := archive.LeadingMetadata(ctx, f)
	f.Close()
	if err != nil || meta == nil || meta.RunID != d.run {
		return false, nil // another backup's: the link will refuse it, naming it
	}
	return true, d.stage.Abort()
}

// concatParts writes the archive into f: the head from the staging folder (without the run's
// working files), every part as it is, the end.
func (d *localDestination) concatParts(ctx context.Context, f *os.File, m *archiveManifest, comp archive.Compression, p publishOptions) error {
	if p.archiveTotal != nil {
		p.archiveTotal(d.partsSize(m))
	}
	skip := func(rel string) bool { return rel == internalDir }
	if _, err := archive.WriteHead(ctx, f, comp, d.stage.Path(), m.Top, skip); err != nil {
		return fmt.Errorf("write the archive's first part: %w", err)
	}
	for _, key := range m.Parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		part, err := os.Open(filepath.Join(d.stage.Path(), filepath.FromSlash(key)))
		if err != nil {
			return fmt.Errorf("archive part %s: %w", key, err)
		}
		n, err := io.Copy(f, part) // *os.File to *os.File: copy_file_range, no copy through memory
		part.Close()
		if err != nil {
			return fmt.Errorf("archive part %s: %w", key, err)
		}
		if p.archived != nil {
			p.archived(n) // the first call halts there, for the tests that kill a publish
		}
	}
	if err := archive.WriteEnd(f, comp); err != nil {
		return fmt.Errorf("write the archive's end: %w", err)
	}
	return nil
}

// partsSize is the bytes of the staged parts (for progress; a part it cannot see counts 0).
func (d *localDestination) partsSize(m *archiveManifest) int64 {
	var n int64
	for _, key := range m.Parts {
		if fi, err := os.Stat(filepath.Join(d.stage.Path(), filepath.FromSlash(key))); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// publishStagedFolder archives a staging folder whose files were copied under files/ (staged
// by an earlier version), reading it whole.
func (d *localDestination) publishStagedFolder(ctx context.Context, p publishOptions) (string, error) {
	if err := d.bucket.RemoveAll(ctx, internalDir); err != nil {
		return "", fmt.Errorf("remove working files: %w", err)
	}
	return d.stage.PublishArchive(p.start, func(w io.Writer, top string) error {
		_, err := archive.Write(ctx, w, d.stage.Path(), top, p.archive...)
		return err
	})
}

// archiveName is the name a compressed S3 backup is published under: the top folder its
// parts were written with, "" when the staging area has no archive manifest.
func (d *s3Destination) archiveName(ctx context.Context) (string, error) {
	m, err := readArchiveManifest(ctx, d.bucket)
	if err != nil || m == nil {
		return "", err
	}
	return m.Top, nil
}

// publishArchive publishes the staged backup as the object name+ext: the head and the end are
// written into the staging area, then every part is concatenated server-side into one
// multipart upload (visible only once complete). A staging area without a manifest (an
// earlier version's, with files/) is streamed into the archive instead.
func (d *s3Destination) publishArchive(ctx context.Context, name string, objs []storage.Object, p publishOptions) (string, error) {
	m, err := readArchiveManifest(ctx, d.bucket)
	if err != nil {
		return "", err
	}
	if m == nil {
		return name + layout.ArchiveExt, d.streamArchive(ctx, name, objs, p.archive)
	}
	if m.Top != name {
		return "", fmt.Errorf("publish: the archive's parts are under %s/, not %s/", m.Top, name)
	}
	comp, _ := archive.ParseCompression(m.Compression)
	if p.seal != nil {
		return d.publishSealedArchive(ctx, m, comp, objs, p)
	}
	head, end := path.Join(internalDir, "parts", "head"+comp.Ext()), path.Join(internalDir, "parts", "end"+comp.Ext())
	if err := d.writeHead(ctx, head, m, comp, objs); err != nil {
		return "", err
	}
	var tail bytes.Buffer
	if err := archive.WriteEnd(&tail, comp); err != nil {
		return "", err
	}
	if _, err := d.bucket.Put(ctx, end, &tail, storage.Object{Mode: layout.FileMode}); err != nil {
		return "", fmt.Errorf("write the archive's end: %w", err)
	}
	halt(ctx, "archive")
	keys := []string{d.staging + "/" + head}
	for _, k := range m.Parts {
		keys = append(keys, d.staging+"/"+k)
	}
	keys = append(keys, d.staging+"/"+end)
	final := name + comp.Ext()
	obj := storage.Object{Mode: layout.FileMode, ModTime: time.Now()}
	whole, err := d.root.Concat(ctx, final, keys, obj)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if p.archiveTotal != nil && p.archived != nil {
		p.archiveTotal(whole.Size)
		p.archived(whole.Size)
	}
	return final, nil
}

// writeHead writes the archive's first part from the staged objects (metadata, SHA256SUMS,
// restore.sh, fixtures).
func (d *s3Destination) writeHead(ctx context.Context, key string, m *archiveManifest, comp archive.Compression, objs []storage.Object) error {
	aobjs, err := d.archiveObjects(ctx, objs)
	if err != nil {
		return err
	}
	w, err := d.bucket.Create(ctx, key, storage.Object{Mode: layout.FileMode})
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := archive.WriteObjectsHead(ctx, w, comp, m.Top, aobjs, func(key string) (io.ReadCloser, error) {
		r, _, err := d.bucket.Open(ctx, key)
		return r, err
	}); err != nil {
		return fmt.Errorf("write the archive's first part: %w", err)
	}
	return w.Commit()
}

// archiveObjects describes the staged objects for the archive, the run's working files left
// out (Walk has no modes on S3; Stat reads them).
func (d *s3Destination) archiveObjects(ctx context.Context, objs []storage.Object) ([]archive.Object, error) {
	var aobjs []archive.Object
	for _, o := range objs {
		if strings.HasPrefix(o.Key, internalDir+"/") {
			continue
		}
		st, err := d.bucket.Stat(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		aobjs = append(aobjs, archive.Object{Key: o.Key, Size: st.Size, Mode: st.Mode, ModTime: st.ModTime})
	}
	return aobjs, nil
}
