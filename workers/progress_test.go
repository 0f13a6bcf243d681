package workers

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/messages"
)

// pausedReader sleeps before each read.
type pausedReader struct {
	r     io.Reader
	pause time.Duration
}

func (p *pausedReader) Read(b []byte) (int, error) {
	time.Sleep(p.pause)
	return p.r.Read(b)
}

// A copy task publishes its growing byte count on the run's progress subject while it runs,
// never more than it copies, and nothing is left to arrive once it has returned.
func TestCopyPublishesProgressWhileRunning(t *testing.T) {
	old := progressInterval
	progressInterval = 20 * time.Millisecond
	t.Cleanup(func() { progressInterval = old })
	js, _ := startQueue(t, queue.Config{})
	big := strings.Repeat("x", 2<<20) // 8 reads of the copy buffer
	task, src, _ := copyTask(t, map[string]string{"content/big.bin": big, "content/a.json": "{}"},
		[]string{"content/a.json", "content/big.bin"})
	t.Cleanup(SetReadHook(func(key string, r io.Reader) io.Reader {
		return &pausedReader{r: r, pause: 30 * time.Millisecond}
	}))
	sub, err := js.Conn().SubscribeSync(messages.ProgressSubject(task.Run))
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{cfg: Config{StorageURL: src}, js: js, log: slog.Default()}
	res, err := w.copy(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.Conn().Flush(); err != nil { // what was published before the return is here
		t.Fatal(err)
	}
	var counts []int64
	for {
		msg, err := sub.NextMsg(200 * time.Millisecond)
		if err != nil {
			break // none left
		}
		p, err := messages.DecodeProgress(msg.Data)
		if err != nil || p.Task != task.ID || p.Run != task.Run {
			t.Fatalf("progress message %s: %+v, %v", msg.Data, p, err)
		}
		counts = append(counts, p.Bytes)
	}
	time.Sleep(5 * progressInterval) // a publisher left running would publish in this time
	if msg, err := sub.NextMsg(0); err == nil {
		t.Fatalf("progress %s published after the task returned", msg.Data)
	}
	if len(counts) < 3 {
		t.Fatalf("%d progress messages %v, want several while the copy ran", len(counts), counts)
	}
	for i, n := range counts {
		if n <= 0 || n > res.Bytes || (i > 0 && n <= counts[i-1]) {
			t.Fatalf("progress counts %v: want growing counts within the %d bytes copied", counts, res.Bytes)
		}
	}
}

// A file's bytes count once in its task's total: a copy read again or failed takes its bytes
// back; a server-side copy, which writes nothing through the counter, counts its size.
func TestFileCounterCountsEachFileOnce(t *testing.T) {
	cases := []struct {
		name   string
		writes []int
		settle []int64
		want   int64
	}{
		{"copied", []int{100, 50}, []int64{150}, 150},
		{"read again after a change", []int{100, 50}, []int64{0, 120}, 120},
		{"failed", []int{100}, []int64{0}, 0},
		{"server-side copy", nil, []int64{70}, 70},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var task atomic.Int64
			task.Store(1000) // the task's other files
			c := &fileCounter{task: &task}
			for _, n := range tc.writes {
				c.Write(make([]byte, n))
			}
			for _, n := range tc.settle {
				c.settle(n)
			}
			if got := task.Load() - 1000; got != tc.want {
				t.Fatalf("file counted %d bytes, want %d", got, tc.want)
			}
		})
	}
}
