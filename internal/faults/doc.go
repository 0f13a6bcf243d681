// Package faults holds fault-injection tests that run the real binaries: nats-server (alone
// or as a three-node JetStream cluster), `webnovel-backup backup` coordinators and
// `webnovel-backup worker` processes, on loopback, and kill or signal them mid-run. It has no
// code of its own; see its _test.go files and internal/proctest.
package faults
