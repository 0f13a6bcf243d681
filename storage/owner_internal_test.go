package storage

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// A refusal to give a file away (EPERM: a root-squashed mount; EINVAL: an id the user
// namespace lacks) passes with one warning naming the owner; any other error is returned.
func TestOwnerToleratesRefusal(t *testing.T) {
	var logged bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	o := &Owner{UID: 4242, GID: 4343}
	for _, refused := range []error{
		&fs.PathError{Op: "lchown", Path: "a", Err: syscall.EPERM},
		&fs.PathError{Op: "fchown", Path: "b", Err: syscall.EINVAL},
	} {
		if err := o.tolerate(refused); err != nil {
			t.Errorf("tolerate(%v) = %v, want nil", refused, err)
		}
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 1 || !strings.Contains(logged.String(), "owner=4242") {
		t.Errorf("want one warning naming the owner, logged %q", logged.String())
	}
	full := &fs.PathError{Op: "fchown", Path: "c", Err: syscall.ENOSPC}
	if err := o.tolerate(full); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("tolerate(ENOSPC) = %v, want it returned", err)
	}
	if err := o.tolerate(nil); err != nil {
		t.Errorf("tolerate(nil) = %v", err)
	}
}
