package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

// memProfiler samples the heap and keeps the pprof heap profile of the highest heap seen: a
// profile taken at exit would show little, since by then the run has freed what it held.
type memProfiler struct {
	file string
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak uint64
	prof []byte
}

// memProf is the profiler that --memprofile started (nil when none); run stops it.
var memProf *memProfiler

// memSampleEvery is how often the heap is sampled; ReadMemStats stops the world briefly.
const memSampleEvery = 250 * time.Millisecond

// startMemProfile starts sampling the heap for a profile into file ("" does nothing).
func startMemProfile(file string) {
	if file == "" || memProf != nil {
		return
	}
	runtime.MemProfileRate = 64 << 10 // finer than the default 512 KiB: the heap is small
	memProf = &memProfiler{file: file, stop: make(chan struct{}), done: make(chan struct{})}
	go memProf.loop()
}

func (m *memProfiler) loop() {
	defer close(m.done)
	t := time.NewTicker(memSampleEvery)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// sample keeps a heap profile when the live heap is the highest seen so far.
func (m *memProfiler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse <= m.peak {
		return
	}
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		return
	}
	m.mu.Lock()
	m.peak, m.prof = ms.HeapInuse, buf.Bytes()
	m.mu.Unlock()
}

// stopMemProfile stops the sampling and writes the peak profile; errors go to stderr, since
// the command's own outcome is already decided.
func stopMemProfile(stderr io.Writer) {
	m := memProf
	if m == nil {
		return
	}
	memProf = nil
	close(m.stop)
	<-m.done
	if err := os.WriteFile(m.file, m.prof, 0o644); err != nil {
		fmt.Fprintln(stderr, "memory profile:", err)
		return
	}
	fmt.Fprintf(stderr, "memory profile: peak heap in use %d MB, written to %s\n", m.peak>>20, m.file)
}
