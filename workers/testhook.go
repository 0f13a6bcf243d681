package workers

import (
	"io"
	"os"
	"time"
)

// WNB_TEST_COPY_DELAY slows every file copy of a worker process by that much before its first
// byte, so that tests killing a real worker mid-copy find it there. Unset (as outside those
// tests) it does nothing.
func init() {
	d, err := time.ParseDuration(os.Getenv("WNB_TEST_COPY_DELAY"))
	if err != nil || d <= 0 {
		return
	}
	SetReadHook(func(_ string, r io.Reader) io.Reader { return &delayedReader{r: r, delay: d} })
}

// delayedReader waits once, before its first read.
type delayedReader struct {
	r     io.Reader
	delay time.Duration
	began bool
}

func (d *delayedReader) Read(p []byte) (int, error) {
	if !d.began {
		d.began = true
		time.Sleep(d.delay)
	}
	return d.r.Read(p)
}
