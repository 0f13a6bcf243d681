//go:build !linux

package coordinator

import (
	"errors"
	"os"
)

// insertRange is Linux's only: elsewhere the publish concatenates the parts.
func insertRange(f *os.File, n int64) error { return errors.ErrUnsupported }
