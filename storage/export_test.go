package storage

import "testing"

// SetCopyLimits lowers the server-side copy limits for one test: objects above objectMax are
// copied in parts of partSize.
func SetCopyLimits(t testing.TB, objectMax, partSize int64) {
	oldMax, oldPart := copyObjectMax, copyPartSize
	copyObjectMax, copyPartSize = objectMax, partSize
	t.Cleanup(func() { copyObjectMax, copyPartSize = oldMax, oldPart })
}
