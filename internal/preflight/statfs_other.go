//go:build !unix

package preflight

import "errors"

// freeBytes is not measured on this system: the free space check is skipped.
func freeBytes(dir string) (int64, error) {
	return 0, errors.New("not measured on this system")
}
