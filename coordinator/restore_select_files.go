package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// liveFiles compares the files a selective restore writes with what the target storage holds
// under their names. A file the storage holds with other content than the backup's copy is a
// conflict, settled as the rows' are: --on-conflict refuse lists it and changes nothing, keep
// leaves the storage's copy (a warning names it), replace writes the backup's. Without this a
// book restored for one deleted chapter reverted the others' files edited since the backup.
type liveFiles struct {
	b      *storage.Bucket
	policy string
	plan   *SubsetPlan
	warn   func(string)
}

// restores tells whether the planner writes e: a file the storage does not hold, or holds
// with e's content (e.SHA256, the restored file's sum), or a conflict the policy replaces.
func (l *liveFiles) restores(ctx context.Context, e messages.FileEntry) (bool, error) {
	sum, held, err := l.sum(ctx, e.Key)
	if err != nil {
		return false, fmt.Errorf("compare %s with the storage's copy: %w", storage.QuoteKey(e.Key), err)
	}
	if !held || (e.SHA256 != "" && sum == e.SHA256) {
		return true, nil
	}
	// A backup without sums (the Python command's) cannot tell: the storage's copy counts as
	// other content.
	l.plan.FileConflicts = append(l.plan.FileConflicts, e.Key)
	if l.policy != ConflictKeep {
		return true, nil
	}
	l.warn(fmt.Sprintf("file %s is in the storage with other content than the backup's: kept (--on-conflict keep)", storage.QuoteKey(e.Key)))
	return false, nil
}

// sum is the SHA-256 of the storage's copy of key; held is false when it has none.
func (l *liveFiles) sum(ctx context.Context, key string) (sum string, held bool, err error) {
	sum, err = l.b.SHA256(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return "", false, nil
	}
	return sum, err == nil, err
}
