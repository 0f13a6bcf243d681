//go:build !linux

package layout

// syncTree makes everything under root durable, so that a published backup survives a crash:
// all of it is on disk before the rename that publishes it.
func syncTree(root string) error { return syncWalk(root) }
