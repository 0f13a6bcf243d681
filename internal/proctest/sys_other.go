//go:build unix && !linux

package proctest

import "syscall"

// sysProcAttr puts the child in its own process group, so Kill reaches anything it starts.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
